"""Typed events of a run's progress stream (``GET /v1/workflows/runs/{run_id}/events``).

The stream is Server-Sent Events, not part of the OpenAPI document, so these three small
wrappers are written here; what they carry (:class:`RunOut`, :class:`StepOut`) is generated.
"""

from __future__ import annotations

from typing import Literal

from httpx_sse import ServerSentEvent
from pydantic import BaseModel

from runlane.client.errors import STATUS_OF_TYPE, status_error
from runlane.client.models import RunOut, StepOut

__all__ = ["EndEvent", "RunEvent", "RunStreamEvent", "StepEvent", "parse_event"]


class RunEvent(BaseModel):
    """The run's status changed; ``run`` is its record at that moment."""

    event: Literal["run"] = "run"
    run: RunOut


class StepEvent(BaseModel):
    """A step changed (status, attempt, end, or a review decided)."""

    event: Literal["step"] = "step"
    step: StepOut


class EndEvent(BaseModel):
    """The run ended with ``status``; the stream closes after it."""

    event: Literal["end"] = "end"
    run_id: str
    status: str


RunStreamEvent = RunEvent | StepEvent | EndEvent


def parse_event(sse: ServerSentEvent) -> RunStreamEvent | None:
    """The typed event, None for one this client does not know (a newer API may add kinds:
    skipping them keeps old clients working). An ``error`` event (the run could no longer
    be read) raises the same typed error a request would have."""
    if sse.event == "run":
        return RunEvent(run=RunOut.model_validate_json(sse.data))
    if sse.event == "step":
        return StepEvent(step=StepOut.model_validate_json(sse.data))
    if sse.event == "end":
        return EndEvent.model_validate_json(sse.data)
    if sse.event == "error":
        body = sse.json()
        kind = body.get("error", {}).get("type") if isinstance(body, dict) else None
        raise status_error(STATUS_OF_TYPE.get(str(kind), 500), body)
    return None
