"""Retry planning: what a reset would reuse and re-run. Pure: no Temporal calls (the reset
itself is runs/reset.py), so it is tested on recorded histories alone.

The run workflow records, for every step, the workflow task in which it started and the one
in which it reached its final status (their WorkflowTaskStarted event ids). Retrying from the
failure point resets the execution to the workflow task that started the earliest failed or
cancelled step, so the plan below is exactly what Temporal then does:

* a step whose result was recorded before that task is replayed from history: reused;
* pure nodes and skips that a batch recorded in the reset task itself are reused too: the new
  execution's batch takes their outcomes from the replaced execution's history instead of
  evaluating again (activities/recorded.py), so they keep their outputs, times and attempt;
* pure nodes and skips of runs started before outcomes were recorded (pure nodes planned
  "workflow" or "local" rather than "batch") are computed again in the reset task: they run
  again;
* everything else runs again; side-effecting node types among those that already ran are
  listed as `repeated_side_effects`.

The reset excludes signals, updates and cancel requests received after the reset point from
being re-applied: a review decided for a node that runs again must be decided again, and a
retried cancelled run is not cancelled again. A cancel request at or before the reset point,
though, stays in the new execution's history, which then ends cancelled again; so the reset
point is always a task started before the execution's cancel request (see
`TaskBoundaries.before_cancel_request`), and steps that ended after that task run again. The
attempt reaches the new execution as the `retry` signal right after the reset.

Retrying from the start is not a reset: the run's workflow id gets a fresh execution whose
input carries the attempts so far and the overriding inputs, so nothing can race them.

Retrying from a chosen node (any ended run, completed too) resets the run to its first task,
the first of its chain (`TaskBoundaries.first`): the `retry` signal then carries the recorded
outcomes of every completed step not downstream of that node, and the new execution waits for
it before it runs anything (RunWorkflow._await_retry_request), so those steps keep their
outputs and are not executed again, parallel branches included, wherever in the history they
ran. The node, everything downstream of it, the start nodes whose inputs the retry overrides
and the steps that had not completed run again. Resetting to a later point would not do:
whatever started after it would run again, downstream of the node or not. Nor would the first
task of an execution that an earlier retry made by a reset to the first task (the run's
`first_task_event_id` then): that retry's signal may have reached Temporal before the task
started, a reset keeps every event before its point, and the new execution would take that old
request for its own, keep nothing and run everything again before its own signal came.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from activities.registry import NodeRegistry, NodeType
from runlane.definition import Graph
from workflows.models import OUTPUTS_NOT_RECORDED, RetryRequest, RunInputs, RunState, StepState

RetryFrom = Literal["failure_point", "start", "node"]
RETRYABLE_STATUSES = ("error", "cancelled")
# A retry from a node: any ended run.
ENDED_STATUSES = ("completed", "error", "cancelled")


@dataclass(frozen=True)
class RetryPlan:
    from_: RetryFrom
    allowed: bool
    reason: str | None = None
    reuse: list[str] = field(default_factory=list)
    rerun: list[str] = field(default_factory=list)
    repeated_side_effects: list[str] = field(default_factory=list)
    reset_event_id: int | None = None
    resumed_from_node_id: str | None = None
    # A retry from a node: the node, and the steps whose recorded outcomes the retry keeps.
    node_id: str | None = None
    kept: list[str] = field(default_factory=list)
    # The plan's token (runs/plan_tokens.py): a retry given it does exactly this.
    plan_id: str | None = None


class TaskBoundaries:
    """The WorkflowTaskStarted event ids of an execution: the only valid reset points.

    A step records the history length seen by its workflow task; for a speculative task (one
    an update runs in; the workflow defines none today) that length can fall short of
    the task's WorkflowTaskStarted event, which is only written when the task completes.
    Snapping to the first task start at or after the recorded length finds the task that
    really did the work.

    A task that outlives its timeout while a local activity runs (a batch held for seconds)
    is completed by the SDK with nothing in it and goes on as a new task straight away: a
    heartbeat. Temporal cannot reset to such a continuation, and a replay reports the last
    one as the task's length, so every continuation snaps to the task it continues.

    A task that failed or timed out is left out by a replay: the next task takes in everything
    that arrived since the last one completed, and is reported as where that work started (a
    reset point of its own, whose reset keeps those events). When the run's cancel request is
    among them (it arrived while a task heartbeating a held batch was in flight, and that task
    failed), a reset there would keep the request: see `before_cancel_request`.
    `cancel_requested` is the execution's first cancel request.
    """

    def __init__(
        self,
        started_event_ids: list[int],
        heads: dict[int, int] | None = None,
        cancel_requested: int | None = None,
    ) -> None:
        self._ids = sorted(started_event_ids)
        self._heads = heads or {}
        self.cancel_requested = cancel_requested

    @classmethod
    def from_events(cls, events: Iterable[HistoryEvent]) -> TaskBoundaries:
        """Read from an execution's history (in event order)."""
        started: list[int] = []
        heads: dict[int, int] = {}
        # Since the last task completed: only the next task's scheduling (a heartbeat), or more.
        quiet_since_completed = False
        for_head: int | None = None
        cancel_requested: int | None = None
        for event in events:
            kind = event.event_type
            if (
                kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
                and cancel_requested is None
            ):
                cancel_requested = event.event_id
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                if quiet_since_completed and for_head is not None:
                    heads[event.event_id] = for_head
                else:
                    for_head = event.event_id
                started.append(event.event_id)
                quiet_since_completed = False
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                quiet_since_completed = True
            elif kind != EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                quiet_since_completed = False
        return cls(started, heads, cancel_requested)

    def first(self) -> int | None:
        """The first workflow task of the execution's chain (a reset keeps the history up to
        its point, so every execution of a run starts with it); None when no task started.
        Nothing but the run's start comes before it: no `retry` signal of an earlier retry."""
        return self._ids[0] if self._ids else None

    def snap(self, recorded: int | None) -> int | None:
        if recorded is None:
            return None
        index = bisect.bisect_left(self._ids, recorded)
        if index == len(self._ids):
            return None
        return self._heads.get(self._ids[index], self._ids[index])

    def before_cancel_request(self, reset_event_id: int) -> int | None:
        """`reset_event_id`, or the last reset point before the cancel request if it is not
        before it: a reset keeps every event up to its point, a cancel request included, and
        the new execution would end cancelled again. None when no task started before the
        request (only a retry from the start can leave it out)."""
        cancel = self.cancel_requested
        if cancel is None or reset_event_id < cancel:
            return reset_event_id
        index = bisect.bisect_left(self._ids, cancel)
        if index == 0:
            return None
        last = self._ids[index - 1]
        return self._heads.get(last, last)


def _reused(step: StepState, finished: int | None, reset_event_id: int, how: str) -> bool:
    """Whether a reset to `reset_event_id` keeps the step's result rather than running it
    again. `how` is the step's node kind (`_kind`)."""
    if step.status not in ("completed", "skipped") or finished is None:
        return False
    if finished != reset_event_id:
        return finished < reset_event_id  # replayed from history, or ended after the reset
    # Finished in the reset task itself, which the new execution runs again. A batch takes
    # the outcomes it recorded there back from the replaced execution's history; activities,
    # timers and decisions finished with an event before the task started. Runs from before
    # recording compute their pure nodes and skips again (a local activity is executed again:
    # its marker was written when that task completed).
    if how == "batch":
        return True
    return step.status != "skipped" and how == "event"


def _kind(execution: str, node_type: NodeType | None, recorded: bool, skipped: bool) -> str:
    """batch: outcome recorded by a batch (pure nodes, and every skip of a recorded run);
    evaluated / local: pure nodes of runs from before recording; event: everything else."""
    if execution == "batch" or (recorded and skipped):
        return "batch"
    if execution == "local":
        return "local"
    pure = execution == "workflow" and node_type is not None and node_type.evaluate is not None
    return "evaluated" if pure else "event"


def plan_retry(
    state: RunState,
    plans: Mapping[str, str],
    registry: NodeRegistry,
    from_: RetryFrom,
    boundaries: TaskBoundaries,
    side_effecting: Collection[str] = (),
) -> RetryPlan:
    """`plans` maps node id to its execution (local/remote/workflow) as the run froze it;
    `side_effecting` names nodes whose re-run repeats effects beyond their type's own (a map
    whose items are side-effecting)."""
    if state.status not in RETRYABLE_STATUSES:
        return RetryPlan(
            from_=from_,
            allowed=False,
            reason=f"Only runs in error or cancelled can be retried; this run is {state.status}. "
            + (
                "To run it again with the same inputs, use restart or rerun."
                if state.status == "completed"
                else "Wait for it to end, or cancel it and then retry it."
            ),
        )
    steps = state.steps
    recorded = "batch" in plans.values()
    if from_ == "start":
        # Not a reset: a fresh execution under the run id, so no reset point is needed.
        reset_event_id = boundaries.snap(state.first_task_event_id)
        resumed_from: str | None = None
        reuse: list[str] = []
    else:
        started = {s.node_id: boundaries.snap(s.started_event_id) for s in steps}
        unfinished = [
            s for s in steps if s.status in RETRYABLE_STATUSES and started[s.node_id] is not None
        ]
        if not unfinished and any(
            s.status in RETRYABLE_STATUSES and s.started_event_id is None for s in steps
        ):
            return RetryPlan(
                from_=from_,
                allowed=False,
                reason="This run ended before Runlane recorded where each step started, so it "
                'has no failure point to resume from; retry it with {"from": "start"} or '
                "restart it.",
            )
        if not unfinished:
            return RetryPlan(
                from_=from_,
                allowed=False,
                reason="No step failed or was cancelled, so there is no failure point to resume "
                'from; retry with {"from": "start"} or restart the run.',
            )
        first = min(unfinished, key=lambda s: started[s.node_id] or 0)
        first_started = started[first.node_id]
        assert first_started is not None
        reset_event_id = boundaries.before_cancel_request(first_started)
        if reset_event_id is None:
            return RetryPlan(
                from_=from_,
                allowed=False,
                reason="This run was cancelled before any of its workflow tasks started, so "
                "resetting it would cancel it again; retry it with "
                '{"from": "start"} or restart it.',
            )
        resumed_from = (state.error.node_id if state.error else None) or first.node_id
        reuse = [
            s.node_id
            for s in steps
            if _reused(
                s,
                boundaries.snap(s.finished_event_id),
                reset_event_id,
                _kind(
                    plans.get(s.node_id, "local"),
                    registry.get(s.node_type),
                    recorded,
                    s.status == "skipped",
                ),
            )
        ]
    if reset_event_id is None and from_ == "failure_point":
        return RetryPlan(from_=from_, allowed=False, reason="The run never started executing.")
    reused = set(reuse)
    rerun = [s.node_id for s in steps if s.node_id not in reused]
    repeated = [
        s.node_id
        for s in steps
        if s.node_id in rerun
        and s.started_at is not None
        and (
            s.node_id in side_effecting
            or ((spec := registry.get(s.node_type)) is not None and spec.side_effecting)
        )
    ]
    return RetryPlan(
        from_=from_,
        allowed=True,
        reason=_child_runs_reason(steps, rerun, registry),
        reuse=reuse,
        rerun=rerun,
        repeated_side_effects=repeated,
        reset_event_id=reset_event_id,
        resumed_from_node_id=resumed_from,
    )


def downstream(graph: Graph, node_id: str) -> list[str]:
    """The nodes reachable from `node_id` (not itself), in topological order."""
    seen: set[str] = set()
    queue = [node_id]
    while queue:
        for edge in graph.outgoing[queue.pop()]:
            if edge.target not in seen:
                seen.add(edge.target)
                queue.append(edge.target)
    return [n for n in graph.topological_order if n in seen and n != node_id]


def plan_from_node(
    state: RunState,
    descendants: Collection[str],
    registry: NodeRegistry,
    node_id: str,
    boundaries: TaskBoundaries,
    side_effecting: Collection[str] = (),
    overridden: Collection[str] = (),
) -> RetryPlan:
    """A retry from `node_id`: `descendants` are the nodes downstream of it, `overridden` the
    start nodes whose inputs the retry replaces (they run again with the new values)."""
    if state.status not in ENDED_STATUSES:
        return RetryPlan(
            from_="node",
            node_id=node_id,
            allowed=False,
            reason=f"Only ended runs can be retried; this run is {state.status}. Wait for it "
            "to end, or cancel it and then retry it.",
        )
    if state.error is not None and state.error.message.endswith(OUTPUTS_NOT_RECORDED):
        return RetryPlan(
            from_="node",
            node_id=node_id,
            allowed=False,
            reason="This run's outputs were too large to record, so there are none to keep; "
            'retry it with {"from": "start"} or restart it.',
        )
    # The chain's first task, not the run's `first_task_event_id`: after a retry that reset
    # the run to its first task, that is the new execution's first task, which may come after
    # the retry's `retry` signal (see the module docstring). (A run recorded before task ids
    # has no `first_task_event_id` and still no reset point.)
    reset_event_id = boundaries.first() if state.first_task_event_id is not None else None
    if reset_event_id is not None:
        reset_event_id = boundaries.before_cancel_request(reset_event_id)
    if reset_event_id is None:
        return RetryPlan(
            from_="node",
            node_id=node_id,
            allowed=False,
            reason="This run was cancelled before its first workflow task started, so "
            'resetting it would cancel it again; retry it with {"from": "start"} or restart it.',
        )
    again = {node_id, *descendants, *overridden}
    # Skips are decided again, the same way (what decides them is kept or runs again).
    kept_steps = [s for s in state.steps if s.node_id not in again]
    reuse = [s.node_id for s in kept_steps if s.status in ("completed", "skipped")]
    kept = [s.node_id for s in kept_steps if s.status == "completed"]
    reused = set(reuse)
    rerun = [s.node_id for s in state.steps if s.node_id not in reused]
    repeated = [
        s.node_id
        for s in state.steps
        if s.node_id in again
        and s.started_at is not None
        and (
            s.node_id in side_effecting
            or ((spec := registry.get(s.node_type)) is not None and spec.side_effecting)
        )
    ]
    return RetryPlan(
        from_="node",
        node_id=node_id,
        allowed=True,
        reason=_child_runs_reason(state.steps, rerun, registry),
        reuse=reuse,
        rerun=rerun,
        repeated_side_effects=repeated,
        reset_event_id=reset_event_id,
        resumed_from_node_id=node_id,
        kept=kept,
    )


def _child_runs_reason(
    steps: list[StepState], rerun: list[str], registry: NodeRegistry
) -> str | None:
    """Subworkflow nodes run again as new child runs: say so, naming the failure inside the
    child when that is where the run failed."""
    again = set(rerun)
    notes: list[str] = []
    for step in steps:
        spec = registry.get(step.node_type)
        if step.node_id not in again or spec is None or not spec.behaviour.child_run:
            continue
        if step.status == "error" and step.child_run_id and step.error is not None:
            notes.append(
                f"Node '{step.node_id}' failed inside its child run {step.child_run_id} "
                f"({step.error.type}: {step.error.message}); the retry runs '{step.node_id}' "
                "again as a new child run, which executes the child workflow from its start."
            )
        elif step.child_run_id:
            notes.append(
                f"Node '{step.node_id}' runs again as a new child run (its child run "
                f"{step.child_run_id} is not resumed)."
            )
    return " ".join(notes) or None


def retry_request(
    state: RunState, plan: RetryPlan, request_id: str, inputs: RunInputs | None = None
) -> RetryRequest:
    """What the new execution is told: its attempt, and for a retry from a node the steps it
    keeps (as the run recorded them) and its inputs with the overrides applied."""
    kept = set(plan.kept)
    return RetryRequest(
        request_id=request_id,
        attempt=state.attempt + 1,
        previous_attempts=state.attempts,
        resumed_from_node_id=plan.resumed_from_node_id,
        reset_event_id=plan.reset_event_id if plan.from_ != "start" else None,
        kept_outcomes=[step for step in state.steps if step.node_id in kept],
        inputs=inputs if plan.from_ == "node" else None,
        from_=plan.from_,
    )
