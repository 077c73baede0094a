"""Runlane's own worker metrics, through the Temporal SDK's metric meter: they come out on the
same Prometheus endpoint as the SDK's (`RUNLANE_WORKER_METRICS_PORT`, runlane/temporal.py).

A worker interceptor (wired in worker.py) counts and times every activity execution by its
type — node activities are named after their node type (`http_request`, `llm_call`, ...), so
this is node outcomes by node type; the workflow's own activities (pure batches, maps, a
schedule's run preparation) appear under their names:

- `runlane_activities{activity_type, outcome, local}`: executions (attempts) ended
  `completed`, `failed` or `cancelled`;
- `runlane_activity_duration{activity_type, outcome, local}`: their durations (a histogram,
  in milliseconds as the SDK's own durations are).

Nothing here runs in workflow code: activities are not replayed, so every count is a real
execution.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)


class ActivityMetrics(Interceptor):
    def __init__(self, meter: MetricMeter) -> None:
        self.executions = meter.create_counter(
            "runlane_activities", "Activity executions by type and outcome"
        )
        self.duration = meter.create_histogram_timedelta(
            "runlane_activity_duration", "Activity execution time by type and outcome", "ms"
        )

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountedActivity(next, self)


class _CountedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, metrics: ActivityMetrics) -> None:
        super().__init__(next)
        self._metrics = metrics

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        started = time.monotonic()
        outcome = "failed"
        try:
            result = await super().execute_activity(input)
            outcome = "completed"
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            attributes = {
                "activity_type": info.activity_type,
                "outcome": outcome,
                "local": "true" if info.is_local else "false",
            }
            self._metrics.executions.add(1, attributes)
            elapsed = timedelta(seconds=time.monotonic() - started)
            self._metrics.duration.record(elapsed, attributes)
