"""Recording a run's steps: the time and workflow task a record belongs to, and how a node
failed. Used by the run workflow and the parts it composes (workflows/*.py), inside the
workflow: only workflow APIs, no clock or randomness of its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from runlane.definition import Graph
    from workflows.models import RunInput, RunState, StepError, StepState, StepStatus


class NodeFailed(Exception):
    def __init__(self, node_id: str, error: StepError) -> None:
        super().__init__(f"node '{node_id}' failed: {error.message}")
        self.node_id = node_id
        self.error = error


def ms(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds() * 1000)


def describe_failure(err: BaseException) -> StepError:
    cause: BaseException = err
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return StepError(type=cause.type or "ApplicationError", message=cause.message)
    if isinstance(cause, TemporalTimeoutError):
        return StepError(type="Timeout", message=f"node timed out ({cause.type})")
    return StepError(type=type(cause).__name__, message=str(cause))


class Clock:
    """The time and workflow task of what is being recorded now.

    While the workflow acts on a batch's result, the batch's own (recorded) time and the task
    that scheduled it: Temporal may hand a local activity's result to the workflow in a later
    workflow task live than on replay (a query arriving meanwhile makes it so), so the clock
    and history length of that activation are not what a replay sees. Otherwise the current
    workflow time and task."""

    def __init__(self) -> None:
        self._held: tuple[datetime, int] | None = None

    def hold(self, at: datetime, task_event_id: int) -> None:
        self._held = (at, task_event_id)

    def release(self) -> None:
        self._held = None

    def now(self) -> datetime:
        if self._held is not None:
            return self._held[0]
        return workflow.now()

    def task_event_id(self) -> int:
        if self._held is not None:
            return self._held[1]
        return workflow.info().get_current_history_length()

    def close_step(
        self, step: StepState, status: StepStatus, finished_at: datetime | None = None
    ) -> None:
        """The step reached its final status now (or at `finished_at`, an activity's own)."""
        step.status = status
        step.finished_event_id = self.task_event_id()
        step.completed_at = finished_at or self.now()
        if step.started_at is not None:
            step.duration_ms = ms(step.started_at, step.completed_at)


@dataclass(frozen=True)
class RunContext:
    """What the parts of the run workflow share: the run's input and graph, its state and
    steps (updated in place), the outputs so far, and the clock of what is recorded now."""

    input: RunInput
    graph: Graph
    state: RunState
    steps: Mapping[str, StepState]
    outputs: dict[str, Any]
    clock: Clock
