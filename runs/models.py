"""What the run service answers with (beside `runs.reader.RunView`)."""

from __future__ import annotations

from dataclasses import dataclass

from runs.inputs import RequestedInputs
from runs.reader import RunView
from runs.retry_plan import RetryFrom
from workflows.models import PendingReview


@dataclass(frozen=True)
class Outcome:
    """The run a command produced or acted on; `replayed` when an earlier identical command
    (same `command_id`) already did it and nothing new happened."""

    view: RunView
    replayed: bool


@dataclass(frozen=True)
class RetrySpec:
    from_: RetryFrom = "failure_point"
    # From the start only: inputs overriding the run's own.
    overrides: RequestedInputs | None = None


@dataclass(frozen=True)
class WaitingReview:
    view: RunView
    review: PendingReview
