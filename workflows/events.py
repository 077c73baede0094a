"""Run events (API.md "Outbound event webhooks"): what a run emits, and how.

The run workflow emits an event when its status changes or a review is requested, decided or
escalated, for the event types its organization's endpoints subscribed to when it started
(`RunInput.events`). Emitting records the events in the run's history through one local
activity per workflow task (`EMIT_EVENTS`, triggers/delivery.py), which starts a delivery
workflow per event (its id is the event's id): the run waits for nothing but that start, never
for a delivery, and a delivery that fails never fails the run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel

from workflows.models import RunState

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
