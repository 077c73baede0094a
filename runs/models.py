"""What the run service answers with (beside `runs.reader.RunView`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from runs.inputs import RequestedInputs
from runs.reader import RunView
from runs.retry_plan import RetryFrom
from workflows.models import PendingReview, RunState


class EventSubscriptions(Protocol):
    """Which events an organization's enabled endpoints subscribe to (store/endpoints.py)."""

    async def subscribed_event_types(self, organization_id: str) -> list[str]: ...


@dataclass(frozen=True)
class Outcome:
    """The run a command produced or acted on; `replayed` when an earlier identical command
    (same `command_id`) already did it and nothing new happened."""

    view: RunView
    replayed: bool


@dataclass(frozen=True)
class RetrySpec:
    """What a retry asks for: where from (`node_id` with "node"), or the plan it carries out
    (`plan_id`, which then names both)."""

    from_: RetryFrom | None = None  # (None: the plan's, else the failure point)
    node_id: str | None = None
    # From the start or a node: inputs overriding the run's own.
    overrides: RequestedInputs | None = None
    plan_id: str | None = None


@dataclass(frozen=True)
class WaitingReview:
    view: RunView
    review: PendingReview


def last_change(state: RunState) -> datetime:
    """When the run's state last changed: the latest of the moments it records (created,
    started, ended, each step's start and end, review decisions and waits, attempts). The
    workflow keeps no such field, and need not: every change it makes stamps one of these."""
    timing = state.timing
    moments = [
        timing.created_at,
        timing.started_at,
        timing.completed_at,
        timing.human_waiting_started_at,
    ]
    for step in state.steps:
        moments += [step.started_at, step.completed_at]
        if step.review is not None:
            moments.append(step.review.decided_at)
    moments += [review.waiting_since for review in state.pending_reviews]
    for attempt in state.attempts:
        moments += [attempt.started_at, attempt.ended_at]
    return max(moment for moment in moments if moment is not None)
