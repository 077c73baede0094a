"""The inputs and results of a delivery (triggers/delivery.py) and of its attempts."""

from __future__ import annotations

from pydantic import BaseModel, Field

from workflows.events import RunEvent


class RetrySchedule(BaseModel):
    """Exponential backoff from `initial_s`, doubling, capped at `max_interval_s`, for as long
    as `for_s` after the delivery started (RUNLANE_EVENT_RETRY_*)."""

    initial_s: float
    max_interval_s: float
    for_s: float

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after attempt number `attempt` (1 for the first) failed."""
        return min(self.initial_s * 2 ** min(attempt - 1, 64), self.max_interval_s)


class DeliveryInput(BaseModel):
    event: RunEvent
    retry: RetrySchedule
    # The run's Temporal execution that emitted the event: the record's `temporal.run_id`.
    temporal_run_id: str | None = None


class AttemptInput(BaseModel):
    event: RunEvent
    temporal_run_id: str | None = None
    attempt: int
    # None on the first attempt: the endpoints subscribed now. Then: those still to retry.
    endpoint_ids: list[str] | None = None
    # Seconds until the next attempt, recorded as the deliveries' `next_attempt_at` when this
    # one fails; None when there will be none (the failures are then final).
    retry_in_s: float | None = None


class AttemptResult(BaseModel):
    delivered: list[str] = Field(default_factory=list)
    # Endpoints that did not accept it: retried when the input had a retry_in_s.
    undelivered: list[str] = Field(default_factory=list)


class DeliveryResult(BaseModel):
    attempts: int
    delivered: list[str]
    failed: list[str]
