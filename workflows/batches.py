"""Batches of pure work in recorded runs: the ready pure nodes, the nodes that follow from them
without I/O, the ready nodes to skip and the payloads of reviews about to wait go to one local
activity (`runlane.evaluate`, activities/evaluation.py) whose result, a marker event summarised
with the nodes' labels, holds each of their outcomes. The run workflow applies those outcomes
here and routes by them; a replay reads them back and never evaluates again. Used inside the
workflow.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError, FailureError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities import workflow_support
    from activities.models import (
        BatchNode,
        BatchNodeKind,
        NodeOutcome,
        PureBatchInput,
        PureBatchResult,
    )
    from runlane.definition import Edge
    from runlane.frontier import Frontier, taken_edges
    from workflows.attempts import Attempts
    from workflows.models import StepError, StepState
    from workflows.node_inputs import NodeInputs
    from workflows.reviews import Reviews
    from workflows.steps import NodeFailed, RunContext, describe_failure, ms

# Nodes one batch may reach (its result is one payload: Temporal refuses those over 2 MB; the
# activity also stops at a byte budget). A longer stretch takes several batches.
MAX_BATCH_NODES = 1000
BATCH_TIMEOUT = timedelta(seconds=60)
# A batch that fails (not a node: the activity itself, e.g. its history read or a node that
# evaluates for longer than the timeout) is retried a few times, then fails the run visibly
# instead of leaving it running for ever.
BATCH_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3)
_BATCH_SUMMARY_LABELS = 8
# Batches are keyed "batch:<first node>" among the scheduler's running tasks.
_KEY_PREFIX = "batch:"


def _batch_summary(labels: list[str], goes_on: bool) -> str:
    """The marker's summary in the Temporal UI: the labels of the nodes the batch starts from
    (its result lists every node it decided, each with its label, status and output)."""
    shown = ", ".join(labels[:_BATCH_SUMMARY_LABELS])
    more = len(labels) - _BATCH_SUMMARY_LABELS
    return (
        f"Evaluate {shown}"
        + (f" (+{more} more)" if more > 0 else "")
        + (" and the nodes after them" if goes_on else "")
    )


def is_batch(key: str) -> bool:
    """A key of the scheduler's running tasks that is a batch (not a node id)."""
    return key.startswith(_KEY_PREFIX)


class Batches:
    def __init__(
        self, run: RunContext, node_inputs: NodeInputs, reviews: Reviews, attempts: Attempts
    ) -> None:
        self._input = run.input
        self._graph = run.graph
        self._state = run.state
        self._steps = run.steps
        self._outputs = run.outputs
        self._clock = run.clock
        self._node_inputs = node_inputs
        self._reviews = reviews
        self._attempts = attempts
        # Nodes whose outcome a batch recorded (insertion-ordered, used as a set).
        self._applied: dict[str, None] = {}
        # Batches in flight by key: the ready nodes they were given, and the workflow task
        # that scheduled them (their steps' start, so a retry resets to it).
        self._in_flight: dict[str, tuple[list[str], int, datetime]] = {}
        # The workflow task in which a retry from a node applied its request: its batches
        # take nothing back from the replaced execution (see `keep_nothing_back`).
        self._no_take_back_task: int | None = None
        # Batches started for an earlier workflow task than their own (`started_for_task`).
        self._for_task: int | None = None
        self._origin_task: dict[str, int] = {}

    def recorded(self, node_id: str) -> bool:
        """A batch recorded the node's outcome already."""
        return node_id in self._applied

    def takes(self, node_id: str, frontier: Frontier) -> bool:
        """The ready node goes to a batch: pure, a review to prepare, or a node to skip."""
        return self._kind(node_id) != "other" or frontier.skips(node_id)

    def _kind(self, node_id: str) -> BatchNodeKind:
        plan = self._input.plans[node_id]
        if plan.role == "review":
            return "review"
        return "pure" if plan.execution == "batch" else "other"

    def start(
        self, node_ids: list[str], frontier: Frontier
    ) -> dict[str, asyncio.Task[PureBatchResult]]:
        """Batches for the ready nodes, by key, in the order started."""
        started: dict[str, asyncio.Task[PureBatchResult]] = {}
        for start in range(0, len(node_ids), MAX_BATCH_NODES):
            chunk = node_ids[start : start + MAX_BATCH_NODES]
            # Unique within an execution: a node is the first of at most one batch.
            key = f"{_KEY_PREFIX}{chunk[0]}"
            self._in_flight[key] = (chunk, self._clock.task_event_id(), self._clock.now())
            if self._for_task is not None:
                self._origin_task[key] = self._for_task
            started[key] = asyncio.create_task(self._evaluate(key, frontier))
        self._for_task = None
        return started

    def keep_nothing_back(self) -> None:
        """A retry from a node applied its request in this task: what it keeps is in the
        request and everything else runs again, so the batches starting now (they may run in
        the reset task itself) take nothing back from the replaced execution's history."""
        self._no_take_back_task = self._clock.task_event_id()

    def started_for_task(self, task_event_id: int) -> None:
        """The next batches are those workflow task `task_event_id` would have started (a
        reset execution waited for its retry request there): they take back the outcomes
        the replaced execution recorded in it, as if they had started in it."""
        self._for_task = task_event_id

    async def _evaluate(self, key: str, frontier: Frontier) -> PureBatchResult:
        ready, scheduled_in, _ = self._in_flight[key]
        batch = self._batch_input(ready, frontier)
        if key in self._origin_task:
            batch.task_event_id = self._origin_task.pop(key)
        labels = [self._graph.nodes[n].label or n for n in ready]
        try:
            return await workflow.execute_local_activity(
                workflow_support.EVALUATE,
                batch,
                result_type=PureBatchResult,
                activity_id=key,
                start_to_close_timeout=BATCH_TIMEOUT,
                retry_policy=BATCH_RETRY,
                summary=_batch_summary(labels, goes_on=len(batch.nodes) > len(ready)),
            )
        except (asyncio.CancelledError, CancelledError):
            self._cancel(ready, scheduled_in)
            raise
        except FailureError as err:
            # (Live, a local activity's failure is an ActivityError; replayed from its marker,
            # it may be the cause itself.)
            cause = err.cause if isinstance(err, ActivityError) else err
            if isinstance(cause, CancelledError):
                self._cancel(ready, scheduled_in)
                raise asyncio.CancelledError() from err
            # Nodes report their own errors as outcomes: this is the batch itself failing
            # (a node evaluating for longer than the timeout, every time), shown on its first
            # node (a retry resets to the task that scheduled it).
            step = self._steps[ready[0]]
            step.attempt, step.started_at = self._state.attempt, self._clock.now()
            step.started_event_id = scheduled_in
            step.error = describe_failure(err)
            if isinstance(cause, TemporalTimeoutError):
                step.error = StepError(
                    type="Timeout",
                    message="evaluating the pure nodes from this one on took longer than "
                    f"{BATCH_TIMEOUT.total_seconds():g} s ({BATCH_RETRY.maximum_attempts} tries)",
                )
            self._clock.close_step(step, "error")
            raise NodeFailed(ready[0], step.error) from None

    def _cancel(self, ready: list[str], scheduled_in: int) -> None:
        """The run was cancelled while a batch evaluated: its nodes read as cancelled, so a
        retry finds where to resume (the task that scheduled the batch)."""
        for node_id in ready:
            step = self._steps[node_id]
            if step.status == "pending":
                step.attempt, step.started_at = self._state.attempt, self._clock.now()
                step.started_event_id = scheduled_in
                self._clock.close_step(step, "cancelled")

    def _batch_input(self, ready: list[str], frontier: Frontier) -> PureBatchInput:
        """The ready nodes and the nodes below them that the batch may reach without I/O: it
        passes an I/O node or a review only when it could skip it (a condition decides)."""
        reach: dict[str, None] = dict.fromkeys(ready)
        branching = any(
            frontier.skips(n) or self._input.plans[n].role == "condition" for n in ready
        )
        queue = deque(ready)
        kept = self._attempts.kept
        while queue and len(reach) < MAX_BATCH_NODES:
            node_id = queue.popleft()
            kind = self._kind(node_id)
            if kind == "review" or (kind == "other" and not branching):
                continue
            for edge in self._graph.outgoing[node_id]:
                target = edge.target
                # (A node a retry from a node keeps is resolved by the workflow, unevaluated.)
                if target in reach or target in kept or len(reach) >= MAX_BATCH_NODES:
                    continue
                reach[target] = None
                queue.append(target)
                branching = branching or self._input.plans[target].role == "condition"
        nodes: list[BatchNode] = []
        read_outside: dict[str, None] = {}
        for node_id in reach:
            node = self._graph.nodes[node_id]
            plan = self._input.plans[node_id]
            reads = self._node_inputs.reads(node)
            read_outside.update((name, None) for name in reads if name in self._outputs)
            nodes.append(
                BatchNode(
                    node=node,
                    role=plan.role,
                    kind=self._kind(node_id),
                    unresolved=frontier.unresolved[node_id],
                    taken=frontier.taken[node_id],
                    has_incoming=bool(self._graph.incoming[node_id]),
                    reads=reads,
                    input=self._node_inputs.start_input(node) if plan.role == "start" else None,
                )
            )
        info = workflow.info()
        return PureBatchInput(
            run_id=self._input.run_id,
            workflow_id=self._input.workflow.workflow_id,
            organization_id=self._input.organization_id,
            vars=self._input.definition.vars,
            attempt=self._state.attempt,
            ready=ready,
            nodes=nodes,
            edges=[
                edge
                for node_id in reach
                for edge in self._graph.outgoing[node_id]
                if edge.target in reach
            ],
            outputs={name: self._outputs[name] for name in read_outside},
            temporal_run_id=info.run_id,
            first_execution_run_id=info.first_execution_run_id,
            task_event_id=self._clock.task_event_id(),
            take_back=self._clock.task_event_id() != self._no_take_back_task,
        )

    def apply(self, key: str, result: PureBatchResult, frontier: Frontier) -> list[str]:
        """Apply the recorded outcomes in the order they were produced. Returns the nodes
        that are ready now: those the batch left for the next one come first."""
        if not result.outcomes:  # never: a batch evaluates at least its first node
            node_id = key.removeprefix(_KEY_PREFIX)
            raise NodeFailed(node_id, StepError(type="EvaluationError", message="no outcome"))
        members, scheduled_in, scheduled_at = self._in_flight.pop(key)
        fresh = [o.completed_at for o in result.outcomes if o.completed_at and not o.reused]
        # Until the scheduler waits again, what is recorded takes the batch's time and task.
        self._clock.hold(max([scheduled_at, *fresh]), scheduled_in)
        finished_event_id = scheduled_in
        newly_ready: list[str] = []
        for outcome in result.outcomes:
            self._applied[outcome.node_id] = None
            # (A review prepared before a reset waits for a new decision: it runs again.)
            if outcome.reused and outcome.status != "waiting_for_human":
                self._attempts.reused[outcome.node_id] = None
            if outcome.status == "waiting_for_human":
                self._reviews.prepare(outcome)
                newly_ready.append(outcome.node_id)  # starts waiting for its decision
                continue
            step = self._apply_outcome(outcome, scheduled_in, finished_event_id)
            if outcome.status == "error":
                assert step.error is not None
                raise NodeFailed(outcome.node_id, step.error)
            edges: list[Edge] = []
            if outcome.status == "completed":
                self._outputs[outcome.node_id] = outcome.output
                edges = taken_edges(
                    self._input.plans[outcome.node_id].role,
                    self._graph.outgoing[outcome.node_id],
                    outcome.output,
                )
            newly_ready.extend(frontier.resolve(outcome.node_id, edges))
        left = [node_id for node_id in members if node_id not in self._applied]
        return [*left, *newly_ready]

    def _apply_outcome(
        self, outcome: NodeOutcome, scheduled_in: int, finished_event_id: int
    ) -> StepState:
        step = self._steps[outcome.node_id]
        step.status = outcome.status  # type: ignore[assignment]
        step.attempt = outcome.attempt if outcome.reused else self._state.attempt
        step.started_at, step.completed_at = outcome.started_at, outcome.completed_at
        if outcome.started_at is not None and outcome.completed_at is not None:
            step.duration_ms = ms(outcome.started_at, outcome.completed_at)
        step.started_event_id = scheduled_in
        step.finished_event_id = finished_event_id
        if outcome.status == "completed":
            step.output = outcome.output
        if outcome.error is not None:
            step.error = StepError(type=outcome.error.type, message=outcome.error.message)
        if outcome.status == "skipped":
            step.attempt, step.started_event_id = 0, None
        return step
