"""Delivering one run event to the endpoints subscribed to it (API.md "Outbound event
webhooks"): `EventDeliveryWorkflow`, started by the run's `EMIT_EVENTS` activity with the
event's id as its workflow id.

* The first attempt is one local activity (`ATTEMPT_DELIVERY`, triggers/delivery_activities.py)
  that picks the organization's enabled endpoints subscribed to the event's type at that
  moment, opens a delivery in their log, POSTs to all of them at once and records each outcome.
  It answers which endpoints are still to be retried.
* Then durable timers (`workflow.sleep`) with exponential backoff, capped at the max interval,
  and another attempt for those endpoints only, until every one of them answered 2xx or the
  retry horizon passed (their deliveries are then `failed`). An endpoint disabled, deleted or
  no longer subscribed meanwhile is not retried.
* It never fails: a delivery problem is recorded in the log, not raised. Timers and local
  activities are in the history, so a worker that dies between attempts loses nothing: the
  next one resumes where it stopped.

The retry schedule is frozen into the input from the settings of the worker that emitted the
event, so a delivery keeps the schedule it started with whatever later workers are set to.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    # Passed through, not re-imported by every delivery's sandbox: building pydantic models
    # costs milliseconds, and a delivery workflow is started per event.
    from triggers.delivery_models import (
        AttemptInput,
        AttemptResult,
        DeliveryInput,
        DeliveryResult,
    )

# The local activity of one attempt (triggers/delivery_activities.py).
ATTEMPT_DELIVERY = "runlane.attempt_event_delivery"
# An attempt sends to its endpoints (many at once), each request bounded (10 s, up to 5
# redirects: 1 min per endpoint); this bounds the whole attempt.
_ATTEMPT_TIMEOUT = timedelta(minutes=5)
# Retries of an attempt that could not even run (the store unreachable, the worker dying): a
# few quick ones, then the attempt counts as failed and waits for the next one like the rest.
_ATTEMPT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2, maximum_attempts=3
)


@workflow.defn
class EventDeliveryWorkflow:
    """See the module docstring."""

    @workflow.run
    async def run(self, delivery: DeliveryInput) -> DeliveryResult:
        event, schedule = delivery.event, delivery.retry
        started = workflow.now()
        pending: list[str] | None = None
        delivered: list[str] = []
        attempt = 1
        while True:
            delay = schedule.delay_after(attempt)
            elapsed = (workflow.now() - started).total_seconds()
            retry_in = delay if elapsed + delay <= schedule.for_s else None
            try:
                result = await workflow.execute_local_activity(
                    ATTEMPT_DELIVERY,
                    AttemptInput(
                        event=event,
                        temporal_run_id=delivery.temporal_run_id,
                        attempt=attempt,
                        endpoint_ids=pending,
                        retry_in_s=retry_in,
                    ),
                    result_type=AttemptResult,
                    start_to_close_timeout=_ATTEMPT_TIMEOUT,
                    retry_policy=_ATTEMPT_RETRY,
                    summary=f"Deliver {event.type} (attempt {attempt})",
                )
            except ActivityError as error:
                # Recorded nowhere else: the log keeps the previous attempt's state, and the
                # same endpoints are tried again after the same wait.
                workflow.logger.warning(
                    "attempt %d of event %s could not run: %s", attempt, event.id, error.cause
                )
            else:
                delivered += result.delivered
                pending = result.undelivered
            if pending == [] or retry_in is None:
                return DeliveryResult(
                    attempts=attempt, delivered=delivered, failed=list(pending or [])
                )
            await workflow.sleep(
                timedelta(seconds=retry_in), summary=f"Retry {event.type} in {retry_in:g} s"
            )
            attempt += 1
