"""The activities of event webhooks: `EMIT_EVENTS`, which the run workflow calls to hand its
events over to their delivery workflows, and `ATTEMPT_DELIVERY`, one attempt of a delivery
(triggers/delivery.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from runlane.settings import Settings
from store.endpoints import AttemptOutcome, EndpointRepository
from triggers.delivery import ATTEMPT_DELIVERY, EventDeliveryWorkflow
from triggers.delivery_models import AttemptInput, AttemptResult, DeliveryInput, RetrySchedule
from triggers.sender import EventSender, event_body
from workflows.events import EMIT_EVENTS, EmittedEvents, RunEvent

# Requests one attempt sends at once (an organization may have many endpoints).
_CONCURRENT_REQUESTS = 32


def retry_schedule(settings: Settings) -> RetrySchedule:
    return RetrySchedule(
        initial_s=settings.event_retry_initial_s,
        max_interval_s=settings.event_retry_max_interval_s,
        for_s=settings.event_retry_for_s,
    )


class DeliveryActivities:
    def __init__(
        self,
        *,
        client: Client,
        settings: Settings,
        endpoints: EndpointRepository,
        sender: EventSender,
    ) -> None:
        self._client = client
        self._settings = settings
        self._endpoints = endpoints
        self._sender = sender

    @activity.defn(name=EMIT_EVENTS)
    async def emit_events(self, emitted: EmittedEvents) -> None:
        """Start a delivery workflow per event (id = the event's id). Quick, and idempotent:
        the run waits for it, and may run it again after a crash; an event whose delivery was
        started before, running or ended, is not delivered twice."""
        # Called by the run (as its local activity): the execution the record links to.
        temporal_run_id = activity.info().workflow_run_id if activity.in_activity() else None
        await asyncio.gather(
            *(self._start_delivery(event, temporal_run_id) for event in emitted.events)
        )

    async def _start_delivery(self, event: RunEvent, temporal_run_id: str | None) -> None:
        delivery = DeliveryInput(
            event=event, retry=retry_schedule(self._settings), temporal_run_id=temporal_run_id
        )
        try:
            await self._client.start_workflow(
                EventDeliveryWorkflow.run,
                delivery,
                id=event.id,
                task_queue=self._settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"{event.type} of {event.run_id}",
                # Its first task comes back in this call's answer to this worker (it polls
                # the same queue): no task-queue round trip per event.
                request_eager_start=True,
            )
        except WorkflowAlreadyStartedError:
            pass

    @activity.defn(name=ATTEMPT_DELIVERY)
    async def attempt_delivery(self, attempt: AttemptInput) -> AttemptResult:
        """Send the event to the endpoints of this attempt and record each outcome."""
        event = attempt.event
        org = event.organization_id
        targets = await self._endpoints.targets(org, event.type, attempt.endpoint_ids)
        if attempt.endpoint_ids is None:
            await self._endpoints.open_deliveries(
                org,
                event_id=event.id,
                event_type=event.type,
                run_id=event.run_id,
                endpoint_ids=[target.id for target in targets],
            )
        else:
            gone = set(attempt.endpoint_ids) - {target.id for target in targets}
            await self._endpoints.stop_deliveries(
                event.id,
                sorted(gone),
                "not retried: the endpoint was disabled or no longer subscribes to this event",
            )
        body = event_body(event, self._settings, attempt.temporal_run_id)
        limit = asyncio.Semaphore(_CONCURRENT_REQUESTS)

        async def send(target_index: int) -> AttemptOutcome:
            async with limit:
                return await self._sender.send(targets[target_index], event.id, body)

        outcomes = await asyncio.gather(*(send(index) for index in range(len(targets))))
        next_attempt_at = (
            datetime.now(UTC) + timedelta(seconds=attempt.retry_in_s)
            if attempt.retry_in_s is not None
            else None
        )
        await self._endpoints.record_attempts(event.id, outcomes, next_attempt_at=next_attempt_at)
        return AttemptResult(
            delivered=[o.endpoint_id for o in outcomes if o.succeeded],
            undelivered=[o.endpoint_id for o in outcomes if not o.succeeded],
        )
