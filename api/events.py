"""Run progress as Server-Sent Events.

Each open stream polls the run with short requests (describe + query) instead of holding a
Temporal long-poll: the namespace allows only ~1,200 long-running requests in all, shared
with the workers' own polls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from api import run_views
from runlane.settings import Settings
from runs.service import RunService
from workflows.models import TERMINAL_STATUSES

POLL_INTERVAL_S = 0.5
KEEPALIVE_EVERY_S = 15.0


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


async def run_events(
    runs: RunService,
    settings: Settings,
    org: str,
    run_id: str,
    is_disconnected: Callable[[], Awaitable[bool]],
    poll_interval_s: float = POLL_INTERVAL_S,
) -> AsyncIterator[str]:
    """`run` when the run's status changes, `step` when a step changes, `end` at the end."""
    yield f"retry: {int(poll_interval_s * 2000)}\n\n"
    last_status: str | None = None
    last_steps: dict[str, tuple[Any, ...]] = {}
    quiet_s = 0.0
    while not await is_disconnected():
        view = await runs.get(org, run_id)
        state = view.state
        sent = False
        for step in run_views.step_records(state):
            key = (step.status, step.attempt, step.completed_at, step.review is not None)
            if last_steps.get(step.node_id) != key:
                last_steps[step.node_id] = key
                yield sse("step", step.model_dump(mode="json"))
                sent = True
        if state.status != last_status:
            last_status = state.status
            record = run_views.run_record(
                state, settings=settings, temporal_run_id=view.temporal_run_id
            )
            yield sse("run", record.model_dump(mode="json"))
            sent = True
        if state.status in TERMINAL_STATUSES:
            yield sse("end", {"run_id": run_id, "status": state.status})
            return
        quiet_s = 0.0 if sent else quiet_s + poll_interval_s
        if quiet_s >= KEEPALIVE_EVERY_S:
            quiet_s = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll_interval_s)
