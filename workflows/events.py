"""Run events (API.md "Outbound event webhooks"): what a run emits, and how.

The run workflow emits an event when its status changes or a review is requested, decided or
escalated, for the event types its organization's endpoints subscribed to when it started
(`RunInput.events`). Emitting records the events in the run's history through one local
activity per workflow task (`EMIT_EVENTS`, triggers/delivery.py), which starts a delivery
workflow per event (its id is the event's id): the run waits for nothing but that start, never
for a delivery, and a delivery that fails never fails the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal, get_args

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.models import RunInput, RunInputs, RunState, RunStatus
    from workflows.steps import Clock

EventType = Literal[
    "run.started",
    "run.waiting_for_human",
    "run.completed",
    "run.failed",
    "run.cancelled",
    "run.retried",
    "review.requested",
    "review.decided",
    "review.escalated",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

# The local activity that hands a workflow task's events over to their delivery workflows.
EMIT_EVENTS = "runlane.emit_events"


class RunEvent(BaseModel):
    # "evt_" + 32 hex digits: the `webhook-id` of every delivery of this event (retries
    # included), and the id of the workflow that delivers it.
    id: str
    type: EventType
    timestamp: datetime
    organization_id: str
    run_id: str
    # The review node, for review.* and run.waiting_for_human events.
    node_id: str | None = None
    # The run as it was at the event, without its steps and review payloads; without its
    # inputs and final outputs too when those are large (`trimmed`).
    run: RunState
    trimmed: bool = False


class EmittedEvents(BaseModel):
    """The input of `EMIT_EVENTS`."""

    events: list[RunEvent]


# An event's run snapshot is trimmed (no inputs, no final outputs) above this size: it rides
# in the delivery workflow's input, which Temporal takes up to 2 MiB, and in every request.
MAX_EVENT_RUN_BYTES = 256 * 1024
# Handing events over is a workflow start: retried while Temporal answers, then given up
# (logged) rather than holding the run's end for ever.
_HAND_OVER_TIMEOUT = timedelta(seconds=10)
_HAND_OVER_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)
_HAND_OVER_FOR = timedelta(minutes=10)


class Events:
    """The events a run emits. `emit` notes an event with the run as it is now; `flush` hands
    the noted ones over in one local activity that runs beside whatever the run does next;
    `handed_over` (before the run ends) waits for every hand-over. A run whose input subscribes
    to nothing (every run started before events existed) schedules nothing: its history and
    its replays are unchanged, so no patch marker is needed.

    An event's id is derived from the Temporal execution (`workflow.info().run_id`) and the
    event's place among those it emitted: the same on every replay of that execution, and new
    in the execution a reset (retry) creates, so an event emitted after a reset is never taken
    for one of the execution it replaced. (Not `workflow.uuid4()`: a reset keeps the
    workflow's random seed, and a retry's events came out under the ids of the events the
    reset dropped.) The reset task itself runs again, and what it emits is emitted again:
    delivered at least once. `run.started` alone has an id derived from the run id, so a
    retry that runs the first task again does not start the run twice for its subscribers (a
    delivery workflow id is used once)."""

    def __init__(
        self,
        run_input: RunInput,
        state: RunState,
        clock: Clock,
        waiting: Callable[[], list[str]],
    ) -> None:
        # Insertion-ordered, used as a set: never iterate a set in workflow code.
        self._subscribed = dict.fromkeys(run_input.events)
        self._state = state
        self._clock = clock
        self._waiting = waiting
        self._noted: list[RunEvent] = []
        # Events this execution emitted so far (replays count them again the same).
        self._emitted = 0
        self._hand_overs: list[asyncio.Task[None]] = []

    def emit(
        self, type: EventType, node_id: str | None = None, *, status: RunStatus | None = None
    ) -> None:
        """Note an event with the run as it is now (with `status`, when the run is about to
        take it)."""
        if type not in self._subscribed:
            return
        run, trimmed = self._snapshot(status)
        self._emitted += 1
        if type == "run.started":
            source = f"{self._state.run_id}\x1f{type}"
        else:
            source = f"{workflow.info().run_id}\x1f{self._emitted}"
        event_id = f"evt_{hashlib.sha256(source.encode()).hexdigest()[:32]}"
        self._noted.append(
            RunEvent(
                id=event_id,
                type=type,
                timestamp=self._clock.now(),
                organization_id=self._state.organization_id,
                run_id=self._state.run_id,
                node_id=node_id,
                run=run,
                trimmed=trimmed,
            )
        )

    def _snapshot(self, status: RunStatus | None) -> tuple[RunState, bool]:
        """The run now, without steps and review payloads (a copy: the run goes on changing
        before the hand-over's input is serialized)."""
        run = self._state.model_copy(
            update={
                "steps": [],
                "pending_reviews": [],
                "waiting_for_node_ids": self._waiting(),
                "status": status or self._state.status,
            },
        ).model_copy(deep=True)
        size = len(json.dumps(run.model_dump(mode="json"), ensure_ascii=False, default=str))
        if size <= MAX_EVENT_RUN_BYTES:
            return run, False
        return run.model_copy(update={"inputs": RunInputs(), "final_outputs": None}), True

    def flush(self) -> None:
        """Hand the noted events over, without waiting for it."""
        if not self._noted:
            return
        events, self._noted = self._noted, []
        self._hand_overs.append(asyncio.create_task(self._hand_over(events)))

    async def handed_over(self) -> None:
        """Every event noted so far is handed over (or given up on, logged)."""
        self.flush()
        if self._hand_overs:
            await asyncio.gather(*self._hand_overs)

    async def _hand_over(self, events: list[RunEvent]) -> None:
        try:
            await workflow.execute_local_activity(
                EMIT_EVENTS,
                EmittedEvents(events=events),
                start_to_close_timeout=_HAND_OVER_TIMEOUT,
                schedule_to_close_timeout=_HAND_OVER_FOR,
                retry_policy=_HAND_OVER_RETRY,
                summary="Emit " + ", ".join(event.type for event in events),
            )
        except ActivityError as err:
            # Never the run's failure: its events are lost, said where operators look.
            workflow.logger.error(
                "events %s of run %s not handed over: %s",
                ", ".join(event.id for event in events),
                self._state.run_id,
                err,
            )
