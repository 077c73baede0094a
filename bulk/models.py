"""The inputs and results of a bulk operation's workflow (bulk/workflow.py) and of its
activities (bulk/activities.py): one model each, so fields can be added compatibly."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

BULK = "bulk"
# The activity that applies an action to a batch of runs (bulk/activities.py).
APPLY_BATCH = "runlane.bulk_apply_batch"
_BULK_ID = re.compile(r"^bulk_[0-9a-f]{32}$")

BulkAction = Literal["retry", "cancel", "restart", "rerun"]
ACTIONS: tuple[BulkAction, ...] = ("retry", "cancel", "restart", "rerun")
# What the operation did to one run: `skipped` when the run no longer exists (it matched
# when the operation started, and was gone when its turn came).
OutcomeStatus = Literal["succeeded", "failed", "skipped"]


def is_bulk_id(value: str) -> bool:
    """Whether `value` looks like an id this service gives (anything else is missing)."""
    return _BULK_ID.match(value) is not None


class BulkFilter(BaseModel):
    """Which runs: the run listing's filters (all given ones must hold), or explicit run ids
    (each of the organization), or both (the listed ids that also pass the filters)."""

    workflow_id: str | None = None
    status: str | None = None
    trigger_type: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    run_ids: list[str] | None = None

    def is_empty(self) -> bool:
        return all(value is None for value in self.model_dump().values())


class Pace(BaseModel):
    """How fast an operation goes, frozen at its start (RUNLANE_BULK_*): at most `rate_per_s`
    actions a second, `concurrency` at once, `batch_size` per activity."""

    rate_per_s: float
    concurrency: int
    batch_size: int


class Progress(BaseModel):
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0

    def plus(self, other: Progress) -> Progress:
        return Progress(
            done=self.done + other.done,
            succeeded=self.succeeded + other.succeeded,
            failed=self.failed + other.failed,
            skipped=self.skipped + other.skipped,
        )


class BulkInput(BaseModel):
    bulk_id: str
    organization_id: str
    action: BulkAction
    matched: int
    pace: Pace
    # Where this execution starts (continue-as-new carries them on).
    offset: int = 0
    progress: Progress = Field(default_factory=Progress)


class BatchInput(BaseModel):
    bulk_id: str
    organization_id: str
    action: BulkAction
    offset: int
    limit: int
    concurrency: int


class BatchResult(BaseModel):
    """The batch's outcomes by status (those recorded by an earlier attempt included)."""

    progress: Progress


class BulkResult(BaseModel):
    matched: int
    progress: Progress
