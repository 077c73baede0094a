"""RunWorkflow: one deterministic interpreter for every workflow definition.

A node becomes ready when all its incoming edges are resolved; it runs if at least one of them
was taken and is skipped otherwise (so the untaken side of a condition is skipped and a join
after both sides runs once). Ready nodes run concurrently.

History is the source of truth: every node's outcome is recorded in the run's history the first
time it is produced, and a replay (cache eviction, worker restart, reset) reads it back rather
than computing it again with the code installed at replay time.

* I/O nodes are regular activities named after the node type, with the node's label as the
  summary; delays are durable timers; human reviews wait for the `review` signal.
* Everything else that is decided without I/O goes in batches: the pure nodes ready together
  (inputs, transforms, conditions, ends), the nodes that follow from them without I/O, the
  ready nodes to skip, and the payloads of reviews about to wait are handed to one local
  activity (`runlane.evaluate`, activities/evaluation.py) whose result, a marker event summarised
  with the nodes' labels, holds each of their outcomes. A run of ten pure nodes costs one marker
  and no server round trip. The workflow only applies recorded outcomes and routes by them.
* A reset (retry) executes the reset task again: its batches then take the outcomes the reset
  execution recorded in that task from its history instead of evaluating again
  (activities/recorded.py), so steps that completed before the failure point keep their
  outputs, times and attempt.
* What the workflow records while acting on a batch's result takes the batch's recorded time
  and the task that scheduled it (`_now`, `_task_event_id`): Temporal may hand a local
  activity's result over in another workflow task live than on replay.

Which engine a run uses is frozen in its input, like everything about how its nodes execute:
pure nodes planned "batch" mark a recorded run. Runs started before recording replay as they
ran: pure nodes evaluated in the workflow (plan "workflow") or as one local activity each (plan
"local"), skips decided and review payloads rendered in the workflow, a search-attribute upsert
per change. (Not a `workflow.patched` marker: Temporal's SDK then upserts the
TemporalChangeVersion search attribute too, a second upsert in the first task.)

The Temporal UI's current details show every node's status, and at most one search-attribute
upsert is written per workflow task (recorded runs).

Decisions arrive only as signals, never updates: an update runs in a speculative workflow task,
which Temporal writes to history in one batch with what it scheduled, so no reset could target
it and a retry after a review would be impossible. The API answers "not waiting" synchronously
from the run's state and a slot per decision instead (api/routes/reviews.py).
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities import inputs as input_nodes
    from activities import pure as pure_nodes
    from activities import workflow_support
    from activities.control import DelayConfig, HumanReviewConfig
    from activities.models import (
        BatchNode,
        BatchNodeKind,
        NodeError,
        NodeOutcome,
        NodeTaskInput,
        NodeTaskOutput,
        PureBatchInput,
        PureBatchResult,
    )
    from runlane import expressions, search_attributes, templating
    from runlane.definition import Edge, Graph, Node, RetryConfig
    from runlane.frontier import Frontier, taken_edges
    from workflows.models import (
        AttemptRecord,
        ErrorStage,
        KeptStep,
        NodePlan,
        PendingReview,
        RetryRequest,
        ReviewDecision,
        ReviewRecord,
        RunError,
        RunInput,
        RunState,
        RunStatus,
        StepError,
        StepState,
        initial_state,
        node_behaviour,
    )

RUN_FAILED = "RunFailed"
# How long a reset execution waits, before it ends, for the retry bookkeeping signal.
RETRY_SIGNAL_WAIT = timedelta(seconds=10)
# Nodes one batch may reach (its result is one payload: Temporal refuses those over 2 MB; the
# activity also stops at a byte budget). A longer stretch takes several batches.
MAX_BATCH_NODES = 1000
BATCH_TIMEOUT = timedelta(seconds=60)
# A batch that fails (not a node: the activity itself, e.g. its history read or a node that
# evaluates for longer than the timeout) is retried a few times, then fails the run visibly
# instead of leaving it running for ever.
BATCH_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3)
_BATCH_SUMMARY_LABELS = 8

# Runs started before recording: pure node types the workflow evaluated itself (plan execution
# "workflow"), at most this many per activation (the SDK fails a workflow task whose code runs
# 2 s without yielding); then a no-op local activity resumed them in a new activation.
_EVALUATORS = {
    t.name: t.evaluate for t in (*input_nodes.NODE_TYPES, *pure_nodes.NODE_TYPES) if t.evaluate
}
INLINE_NODES_PER_TASK = 1000
_PAUSE_PATCH = "pause-between-long-pure-stretches"

# Rows of the step table shown in the Temporal UI's current details (the `state` query has all).
_DETAILS_ROWS = 60

# The stage an error is reported in follows the failing node's role.
_STAGE_BY_ROLE: dict[str, ErrorStage] = {
    "start": "input_collection",
    "condition": "routing",
    "end": "output_storage",
}


class NodeFailed(Exception):
    def __init__(self, node_id: str, error: StepError) -> None:
        super().__init__(f"node '{node_id}' failed: {error.message}")
        self.node_id = node_id
        self.error = error


def _ms(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds() * 1000)


def _describe_failure(err: BaseException) -> StepError:
    cause: BaseException = err
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return StepError(type=cause.type or "ApplicationError", message=cause.message)
    if isinstance(cause, TemporalTimeoutError):
        return StepError(type="Timeout", message=f"node timed out ({cause.type})")
    return StepError(type=type(cause).__name__, message=str(cause))


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


@workflow.defn
class RunWorkflow:
    @workflow.init
    def __init__(self, input: RunInput) -> None:
        self._input = input
        self._graph = Graph(input.definition)
        # What each node needs beyond its execution (a timer, a run input...), by node id.
        self._behaviour = {
            node_id: node_behaviour(plan, self._graph.nodes[node_id].type)
            for node_id, plan in input.plans.items()
        }
        self._outputs: dict[str, Any] = {}
        self._state = initial_state(input)
        # Steps are updated in place; the query copies them out.
        self._steps = {step.node_id: step for step in self._state.steps}
        self._waiting: list[str] = []
        self._pending_reviews: dict[str, PendingReview] = {}
        self._decisions: dict[str, tuple[ReviewDecision, datetime]] = {}
        # Recorded runs: every node's outcome in history (see the module docstring).
        self._recorded = any(plan.execution == "batch" for plan in input.plans.values())
        # Recorded runs: nodes whose outcome a batch recorded (insertion-ordered, used as a set).
        self._applied: dict[str, None] = {}
        # ... of which taken from the history of the execution a reset replaced.
        self._reused: dict[str, None] = {}
        # Rendered payloads of reviews a batch prepared, waiting for their decision.
        self._review_payloads: dict[str, Any] = {}
        # Batches in flight by key: the ready nodes they were given, and the workflow task
        # that scheduled them (their steps' start, so a retry resets to it).
        self._batches: dict[str, tuple[list[str], int, datetime]] = {}
        # Runs started before recording: records a retry kept for the steps its reset task
        # computed again (RetryRequest.kept_steps, which retries no longer send).
        self._kept: dict[str, KeptStep] = {}
        # Set while the workflow acts on a batch's result: (time, workflow task) to record.
        self._moment: tuple[datetime, int] | None = None
        # Search-attribute changes not written yet (recorded runs write them once per task).
        self._unsent_attributes: dict[str, SearchAttributeUpdate] = {}

    # ----------------------------------------------------------------- entry point

    @workflow.run
    async def run(self, input: RunInput) -> RunState:
        now = workflow.now()
        self._state.timing.started_at = now
        self._state.first_task_event_id = workflow.info().get_current_history_length()
        if input.retry is not None:  # a retry from the start: a new execution, same run id
            self._apply_retry(input.retry)
        elif not self._state.attempts:
            # (A reset to the very first task delivers the `retry` signal before this runs.)
            self._state.attempts = [
                AttemptRecord(
                    attempt=1,
                    temporal_run_id=workflow.info().first_execution_run_id,
                    started_at=now,
                )
            ]
        self._set_status("running")
        try:
            await self._execute_graph()
        except asyncio.CancelledError:
            await self._settle_attempts()
            self._finish("cancelled")
            raise
        except NodeFailed as failure:
            role = self._input.plans[failure.node_id].role
            self._state.error = RunError(
                stage=_STAGE_BY_ROLE.get(role, "execution"),
                node_id=failure.node_id,
                type=failure.error.type,
                message=failure.error.message,
            )
            await self._settle_attempts()
            self._finish("error")
            await workflow.wait_condition(workflow.all_handlers_finished)
            # Failing the Temporal execution shows operators a failed run in the UI, and the
            # failed node's events are what "retry from the failure point" resets to.
            # The final state rides along so the API can read an ended run without a worker.
            raise ApplicationError(
                str(failure), self.state(), type=RUN_FAILED, non_retryable=True
            ) from None
        self._state.final_outputs = self._final_outputs()
        await self._settle_attempts()
        self._finish("completed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    # ----------------------------------------------------------------- handlers

    @workflow.query
    def state(self) -> RunState:
        return self._state.model_copy(
            update={
                "steps": [step.model_copy() for step in self._steps.values()],
                "waiting_for_node_ids": list(self._waiting),
                "pending_reviews": [self._pending_reviews[n] for n in self._waiting],
            }
        )

    @workflow.signal
    def review(self, decision: ReviewDecision) -> None:
        """Operators may send this from the Temporal UI or CLI; invalid or repeated decisions
        are ignored (a decision applies at most once per node)."""
        problem = self._review_problem(decision)
        if problem:
            workflow.logger.warning("review signal ignored: %s", problem)
            return
        self._decisions[decision.node_id] = (decision, workflow.now())

    @workflow.signal
    def retry(self, request: RetryRequest) -> None:
        """Sent by the API to the execution its reset created. The reset excludes signals,
        updates and cancel requests received after the reset point, so decisions for nodes
        that run again are not applied twice and a retried cancelled run stays alive."""
        if any(a.request_id == request.request_id for a in self._state.attempts):
            return
        self._apply_retry(request)

    def _apply_retry(self, request: RetryRequest) -> None:
        self._state.attempt = request.attempt
        self._state.attempts = [
            *request.previous_attempts,
            AttemptRecord(
                attempt=request.attempt,
                temporal_run_id=workflow.info().run_id,
                started_at=workflow.now(),
                resumed_from_node_id=request.resumed_from_node_id,
                request_id=request.request_id,
            ),
        ]
        if request.reset_event_id is not None:
            # Steps this execution produced anew belong to the new attempt (the signal may
            # arrive after the reset task); outcomes reused from before the reset keep theirs.
            for step in self._steps.values():
                started = step.started_event_id
                if (
                    started is not None
                    and started >= request.reset_event_id
                    and step.node_id not in self._reused
                ):
                    step.attempt = request.attempt
        self._kept = {kept.node_id: kept for kept in request.kept_steps}
        for node_id in self._kept:
            if node_id in self._steps:
                self._keep_record(self._steps[node_id])

    def _keep_record(self, step: StepState) -> None:
        """Runs started before recording: a step the reset task computed again reads as the
        retry's signal recorded it (replays of those runs must rebuild what they showed)."""
        kept = self._kept.get(step.node_id)
        if kept is None or kept.status != step.status:
            return
        step.attempt = kept.attempt
        step.started_at, step.completed_at = kept.started_at, kept.completed_at
        step.duration_ms = kept.duration_ms
        step.started_event_id, step.finished_event_id = (
            kept.started_event_id,
            kept.finished_event_id,
        )

    async def _settle_attempts(self) -> None:
        """After a reset the new execution has a new run id. Wait (bounded) for the API's
        `retry` signal; a reset made by an operator in the Temporal UI sends none, so it is
        recorded as an attempt of its own."""
        attempts = self._state.attempts
        run_id = workflow.info().run_id
        if not attempts or attempts[-1].temporal_run_id == run_id:
            return
        try:
            await workflow.wait_condition(
                lambda: self._state.attempts[-1].temporal_run_id == run_id,
                timeout=RETRY_SIGNAL_WAIT,
            )
        except builtins.TimeoutError:
            previous = self._state.attempts
            self._state.attempt = previous[-1].attempt + 1
            self._state.attempts = [
                *previous,
                AttemptRecord(
                    attempt=self._state.attempt,
                    temporal_run_id=run_id,
                    started_at=workflow.now(),
                ),
            ]

    def _review_problem(self, decision: ReviewDecision) -> str | None:
        if decision.node_id not in self._waiting:
            return f"node '{decision.node_id}' is not waiting for a review"
        if decision.node_id in self._decisions:
            return f"node '{decision.node_id}' already has a decision"
        return None

    # ----------------------------------------------------------------- scheduling

    async def _execute_graph(self) -> None:
        frontier = Frontier.start(self._graph.outgoing, self._graph.incoming)
        ready = deque(n for n in self._graph.topological_order if frontier.unresolved[n] == 0)
        # Node ids, or batch keys ("batch:<first node>"); insertion-ordered: never iterate a
        # set in workflow code.
        running: dict[str, asyncio.Task[Any]] = {}
        try:
            while ready or running:
                if self._recorded:
                    self._dispatch(ready, running, frontier)
                    if running and not any(key.startswith("batch:") for key in running):
                        # About to wait for something outside this workflow task (a batch's
                        # result comes back within it): write the table and the search
                        # attributes that changed, once. (An ending run writes them in _finish.)
                        self._checkpoint()
                elif await self._dispatch_unrecorded(ready, running, frontier):
                    continue
                if not running:
                    break
                self._moment = None
                await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
                for key, task in list(running.items()):
                    if task.done():
                        del running[key]
                        result = task.result()  # re-raises NodeFailed
                        if isinstance(result, PureBatchResult):
                            ready.extend(self._apply_batch(key, result, frontier, running))
                        else:
                            ready.extend(frontier.resolve(key, result))
        except GeneratorExit:
            # The coroutine is being closed (garbage-collected without an eviction, e.g. at
            # worker shutdown): awaiting now would raise "coroutine ignored GeneratorExit".
            raise
        except BaseException:
            # A failed node or a cancelled run stops its siblings (their activities receive a
            # cancellation request) before the run ends.
            for task in running.values():
                task.cancel()
            if running:
                await asyncio.gather(*running.values(), return_exceptions=True)
            raise

    def _dispatch(
        self, ready: deque[str], running: dict[str, asyncio.Task[Any]], frontier: Frontier
    ) -> None:
        """Recorded runs: start the ready nodes that wait on something of their own (activity,
        timer, signal) and hand the rest to batches."""
        batch: list[str] = []
        while ready:
            node_id = ready.popleft()
            if node_id in running:
                continue
            if node_id in self._review_payloads:  # prepared by a batch: wait for the decision
                running[node_id] = asyncio.create_task(self._run_node(node_id))
            elif node_id in self._applied:
                continue  # a batch recorded its outcome already
            elif self._in_batch(node_id, frontier):
                batch.append(node_id)
            else:
                running[node_id] = asyncio.create_task(self._run_node(node_id))
        for start in range(0, len(batch), MAX_BATCH_NODES):
            chunk = batch[start : start + MAX_BATCH_NODES]
            # Unique within an execution: a node is the first of at most one batch.
            key = f"batch:{chunk[0]}"
            self._batches[key] = (chunk, self._task_event_id(), self._now())
            running[key] = asyncio.create_task(self._evaluate_batch(key, frontier))

    def _in_batch(self, node_id: str, frontier: Frontier) -> bool:
        kind = self._batch_kind(node_id)
        return kind != "other" or frontier.skips(node_id)

    def _batch_kind(self, node_id: str) -> BatchNodeKind:
        plan = self._input.plans[node_id]
        if plan.role == "review":
            return "review"
        return "pure" if plan.execution == "batch" else "other"

    async def _dispatch_unrecorded(
        self, ready: deque[str], running: dict[str, asyncio.Task[Any]], frontier: Frontier
    ) -> bool:
        """Runs started before recording, as they ran. True when the scheduler should look at
        the ready nodes again before waiting (the per-activation budget ran out)."""
        evaluated = 0  # in this activation
        while ready and evaluated < INLINE_NODES_PER_TASK:
            node_id = ready.popleft()
            if frontier.skips(node_id):
                self._steps[node_id].status = "skipped"
                self._steps[node_id].finished_event_id = self._task_event_id()
                self._keep_record(self._steps[node_id])
                ready.extend(frontier.resolve(node_id, []))
            elif self._evaluated_inline(node_id):
                ready.extend(frontier.resolve(node_id, self._evaluate_node(node_id)))
                evaluated += 1
            else:
                running[node_id] = asyncio.create_task(self._run_node(node_id))
        self._publish_details()
        if not ready:
            return False
        # The per-task budget ran out. (Patched: runs recorded before the pause existed replay
        # without it.)
        if workflow.patched(_PAUSE_PATCH):
            await workflow.execute_local_activity(
                workflow_support.PAUSE,
                start_to_close_timeout=timedelta(seconds=10),
                summary=f"Pause after {evaluated} pure nodes",
            )
        return True

    # ----------------------------------------------------------------- batches (recorded runs)

    async def _evaluate_batch(self, key: str, frontier: Frontier) -> PureBatchResult:
        ready, scheduled_in, _ = self._batches[key]
        batch = self._batch_input(ready, frontier)
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
            self._cancel_batch(ready, scheduled_in)
            raise
        except FailureError as err:
            # (Live, a local activity's failure is an ActivityError; replayed from its marker,
            # it may be the cause itself.)
            cause = err.cause if isinstance(err, ActivityError) else err
            if isinstance(cause, CancelledError):
                self._cancel_batch(ready, scheduled_in)
                raise asyncio.CancelledError() from err
            # Nodes report their own errors as outcomes: this is the batch itself failing
            # (a node evaluating for longer than the timeout, every time), shown on its first
            # node (a retry resets to the task that scheduled it).
            step = self._steps[ready[0]]
            step.attempt, step.started_at = self._state.attempt, self._now()
            step.started_event_id = scheduled_in
            step.error = _describe_failure(err)
            if isinstance(cause, TemporalTimeoutError):
                step.error = StepError(
                    type="Timeout",
                    message="evaluating the pure nodes from this one on took longer than "
                    f"{BATCH_TIMEOUT.total_seconds():g} s ({BATCH_RETRY.maximum_attempts} tries)",
                )
            self._close_step(step, "error")
            raise NodeFailed(ready[0], step.error) from None

    def _cancel_batch(self, ready: list[str], scheduled_in: int) -> None:
        """The run was cancelled while a batch evaluated: its nodes read as cancelled, so a
        retry finds where to resume (the task that scheduled the batch)."""
        for node_id in ready:
            step = self._steps[node_id]
            if step.status == "pending":
                step.attempt, step.started_at = self._state.attempt, self._now()
                step.started_event_id = scheduled_in
                self._close_step(step, "cancelled")

    def _batch_input(self, ready: list[str], frontier: Frontier) -> PureBatchInput:
        """The ready nodes and the nodes below them that the batch may reach without I/O: it
        passes an I/O node or a review only when it could skip it (a condition decides)."""
        reach: dict[str, None] = dict.fromkeys(ready)
        branching = any(
            frontier.skips(n) or self._input.plans[n].role == "condition" for n in ready
        )
        queue = deque(ready)
        while queue and len(reach) < MAX_BATCH_NODES:
            node_id = queue.popleft()
            kind = self._batch_kind(node_id)
            if kind == "review" or (kind == "other" and not branching):
                continue
            for edge in self._graph.outgoing[node_id]:
                target = edge.target
                if target in reach or len(reach) >= MAX_BATCH_NODES:
                    continue
                reach[target] = None
                queue.append(target)
                branching = branching or self._input.plans[target].role == "condition"
        nodes: list[BatchNode] = []
        read_outside: dict[str, None] = {}
        for node_id in reach:
            node = self._graph.nodes[node_id]
            plan = self._input.plans[node_id]
            reads = self._reads(node)
            read_outside.update((name, None) for name in reads if name in self._outputs)
            nodes.append(
                BatchNode(
                    node=node,
                    role=plan.role,
                    kind=self._batch_kind(node_id),
                    unresolved=frontier.unresolved[node_id],
                    taken=frontier.taken[node_id],
                    has_incoming=bool(self._graph.incoming[node_id]),
                    reads=reads,
                    input=self._start_input(node) if plan.role == "start" else None,
                )
            )
        info = workflow.info()
        return PureBatchInput(
            run_id=self._input.run_id,
            workflow_id=self._input.workflow.workflow_id,
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
            task_event_id=self._task_event_id(),
        )

    def _apply_batch(
        self,
        key: str,
        result: PureBatchResult,
        frontier: Frontier,
        running: dict[str, asyncio.Task[Any]],
    ) -> list[str]:
        """Apply the recorded outcomes in the order they were produced. Returns the nodes
        that are ready now: those the batch left for the next one come first."""
        if not result.outcomes:  # never: a batch evaluates at least its first node
            node_id = key.removeprefix("batch:")
            raise NodeFailed(node_id, StepError(type="EvaluationError", message="no outcome"))
        members, scheduled_in, scheduled_at = self._batches.pop(key)
        fresh = [o.completed_at for o in result.outcomes if o.completed_at and not o.reused]
        self._moment = (max([scheduled_at, *fresh]), scheduled_in)
        finished_event_id = scheduled_in
        newly_ready: list[str] = []
        for outcome in result.outcomes:
            self._applied[outcome.node_id] = None
            # (A review prepared before a reset waits for a new decision: it runs again.)
            if outcome.reused and outcome.status != "waiting_for_human":
                self._reused[outcome.node_id] = None
            if outcome.status == "waiting_for_human":
                self._begin_review(outcome)
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
            step.duration_ms = _ms(outcome.started_at, outcome.completed_at)
        step.started_event_id = scheduled_in
        step.finished_event_id = finished_event_id
        if outcome.status == "completed":
            step.output = outcome.output
        if outcome.error is not None:
            step.error = StepError(type=outcome.error.type, message=outcome.error.message)
        if outcome.status == "skipped":
            step.attempt, step.started_event_id = 0, None
        return step

    def _begin_review(self, outcome: NodeOutcome) -> None:
        """A review a batch prepared: it waits from now on, showing the recorded payload."""
        node = self._graph.nodes[outcome.node_id]
        config = HumanReviewConfig.model_validate(node.config)
        step = self._steps[node.id]
        step.status = "waiting_for_human"
        step.attempt = self._state.attempt
        step.started_at = self._now()
        step.started_event_id = self._task_event_id()
        step.output = outcome.output
        self._review_payloads[node.id] = outcome.output
        self._pending_reviews[node.id] = PendingReview(
            node_id=node.id,
            label=node.label,
            instructions=config.instructions,
            payload=outcome.output,
            waiting_since=self._now(),
        )
        self._begin_waiting(node.id)

    # ----------------------------------------------------------------- runs before recording

    def _evaluated_inline(self, node_id: str) -> bool:
        plan = self._input.plans[node_id]
        return plan.execution == "workflow" and self._graph.nodes[node_id].type in _EVALUATORS

    def _evaluate_node(self, node_id: str) -> list[Edge]:
        """A pure node of a run started before recording, evaluated right here."""
        node = self._graph.nodes[node_id]
        plan = self._input.plans[node_id]
        step = self._steps[node_id]
        step.attempt = self._state.attempt
        step.started_at = workflow.now()
        step.started_event_id = self._task_event_id()
        try:
            output = _EVALUATORS[node.type](self._task_input(node, plan))
        except NodeError as err:
            step.error = StepError(type=err.type, message=err.message)
            self._close_step(step, "error")
            raise NodeFailed(node_id, step.error) from None
        step.output = output
        self._outputs[node_id] = output
        self._close_step(step, "completed")
        self._keep_record(step)
        return taken_edges(plan.role, self._graph.outgoing[node_id], output)

    # ----------------------------------------------------------------- nodes of their own

    async def _run_node(self, node_id: str) -> list[Edge]:
        node = self._graph.nodes[node_id]
        plan = self._input.plans[node_id]
        step = self._steps[node_id]
        if node_id not in self._review_payloads:  # (a prepared review is waiting already)
            step.status = "running"
            # The run attempt that produced this step's result (reused steps keep theirs).
            step.attempt = self._state.attempt
            step.started_at = self._now()
            step.started_event_id = self._task_event_id()
        finished_at: datetime | None = None
        try:
            if plan.role == "review":
                output, edges = await self._review_node(node)
            else:
                if self._behaviour[node_id].timer:
                    config = DelayConfig.model_validate(node.config)
                    await workflow.sleep(config.seconds, summary=node.label or node.id)
                    output = {}
                else:
                    result = await self._activity_node(node, plan)
                    output, finished_at = result.output, result.finished_at
                edges = taken_edges(plan.role, self._graph.outgoing[node_id], output)
        except (asyncio.CancelledError, CancelledError):
            self._close_step(step, "cancelled")
            raise
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                self._close_step(step, "cancelled")
                raise asyncio.CancelledError() from err
            step.error = _describe_failure(err)
            self._close_step(step, "error")
            raise NodeFailed(node_id, step.error) from None
        except NodeFailed as failure:
            step.error = failure.error
            self._close_step(step, "error")
            raise
        step.output = output
        self._outputs[node_id] = output
        self._close_step(step, "completed", finished_at)
        return edges

    def _task_event_id(self) -> int:
        """The workflow task that produces what is being recorded now (see `_now`)."""
        if self._moment is not None:
            return self._moment[1]
        return workflow.info().get_current_history_length()

    def _now(self) -> datetime:
        """The time of what is being recorded now. After a batch's result, the batch's own
        (recorded) time: Temporal may hand a local activity's result to the workflow in a later
        workflow task live than on replay (a query arriving meanwhile makes it so), so the
        clock and history length of that activation are not what a replay sees."""
        if self._moment is not None:
            return self._moment[0]
        return workflow.now()

    def _close_step(
        self, step: StepState, status: Any, finished_at: datetime | None = None
    ) -> None:
        step.status = status
        step.finished_event_id = self._task_event_id()
        step.completed_at = finished_at or self._now()
        if step.started_at is not None:
            step.duration_ms = _ms(step.started_at, step.completed_at)

    def _reads(self, node: Node) -> list[str]:
        """The ancestors whose outputs the node reads (only those travel to its activity)."""
        names = {ref.node_id for ref in templating.references(node.config) if ref.node_id}
        field = self._behaviour[node.id].expression_field
        expression = node.config.get(field) if field else None
        if isinstance(expression, str):
            names |= expressions.field_names(expression)
        return [name for name in sorted(names) if self._graph.is_ancestor(name, node.id)]

    def _start_input(self, node: Node) -> Any:
        inputs = self._input.inputs
        kind = self._behaviour[node.id].run_input
        if kind == "document":
            document = inputs.documents.get(node.id)
            return document.model_dump() if document else None
        if kind == "json":
            return inputs.json_data.get(node.id)
        if kind == "text":
            return inputs.text_data.get(node.id)
        return None

    def _task_input(self, node: Node, plan: NodePlan) -> NodeTaskInput:
        reads = self._reads(node)
        return NodeTaskInput(
            run_id=self._input.run_id,
            workflow_id=self._input.workflow.workflow_id,
            node=node,
            outputs={name: self._outputs[name] for name in reads if name in self._outputs},
            vars=self._input.definition.vars,
            input=self._start_input(node) if plan.role == "start" else None,
        )

    async def _activity_node(self, node: Node, plan: NodePlan) -> NodeTaskOutput:
        task = self._task_input(node, plan)
        retry = node.retry or RetryConfig()
        policy = RetryPolicy(
            initial_interval=timedelta(seconds=retry.initial_interval_s),
            backoff_coefficient=retry.backoff,
            maximum_attempts=retry.max_attempts,
        )
        # Runs started before pure nodes ran in the workflow have local-activity plans.
        execute = (
            workflow.execute_local_activity
            if plan.execution == "local"
            else workflow.execute_activity
        )
        result = await execute(
            node.type,
            task,
            result_type=NodeTaskOutput,
            activity_id=node.id,
            start_to_close_timeout=timedelta(seconds=plan.timeout_s),
            retry_policy=policy,
            summary=node.label or node.id,
        )
        return result

    async def _review_node(self, node: Node) -> tuple[Any, list[Edge]]:
        config = HumanReviewConfig.model_validate(node.config)
        step = self._steps[node.id]
        if node.id in self._review_payloads:
            payload = self._review_payloads[node.id]
        else:  # a run started before recording renders the payload here
            context = templating.TemplateContext(
                outputs={
                    k: v for k, v in self._outputs.items() if self._graph.is_ancestor(k, node.id)
                },
                run={"id": self._input.run_id, "workflow_id": self._input.workflow.workflow_id},
                vars=self._input.definition.vars,
            )
            payload = templating.render(config.payload, context)
            step.status = "waiting_for_human"
            step.output = payload
            self._pending_reviews[node.id] = PendingReview(
                node_id=node.id,
                label=node.label,
                instructions=config.instructions,
                payload=payload,
                waiting_since=workflow.now(),
            )
            self._begin_waiting(node.id)
            self._publish_details()
        # No `finally` here: on cache eviction the coroutine is closed outside the workflow's
        # event loop; a cancelled run's waits are closed by _finish instead.
        try:
            await workflow.wait_condition(
                lambda: node.id in self._decisions, timeout=config.timeout_s
            )
        except TimeoutError:
            self._decisions[node.id] = (
                ReviewDecision(
                    node_id=node.id,
                    decision=config.on_timeout or "reject",
                    reviewer="timeout",
                    comment=f"no decision within {config.timeout_s:g}s",
                ),
                workflow.now(),
            )
        self._pending_reviews.pop(node.id, None)
        self._review_payloads.pop(node.id, None)
        self._end_waiting(node.id)
        decision, decided_at = self._decisions[node.id]
        step.review = ReviewRecord(
            decision=decision.decision,
            reviewer=decision.reviewer,
            comment=decision.comment,
            decided_at=decided_at,
        )
        outgoing = self._graph.outgoing[node.id]
        if decision.decision == "approve":
            output = decision.data if decision.data is not None else payload
            return output, [edge for edge in outgoing if edge.branch is None]
        rejected = [edge for edge in outgoing if edge.branch == "rejected"]
        if not rejected:
            who = f" by {decision.reviewer}" if decision.reviewer else ""
            why = f": {decision.comment}" if decision.comment else ""
            raise NodeFailed(
                node.id, StepError(type="ReviewRejected", message=f"rejected{who}{why}")
            )
        return {"decision": "reject", "comment": decision.comment}, rejected

    # ----------------------------------------------------------------- run state

    def _begin_waiting(self, node_id: str) -> None:
        if not self._waiting:
            self._state.timing.human_waiting_started_at = self._now()
        self._waiting.append(node_id)
        self._upsert_waiting()
        self._set_status("waiting_for_human")

    def _end_waiting(self, node_id: str) -> None:
        if node_id in self._waiting:
            self._waiting.remove(node_id)
        timing = self._state.timing
        if not self._waiting and timing.human_waiting_started_at is not None:
            timing.accumulated_human_waiting_ms += _ms(timing.human_waiting_started_at, self._now())
            timing.human_waiting_started_at = None
        self._upsert_waiting()
        if self._state.status == "waiting_for_human" and not self._waiting:
            self._set_status("running")

    def _upsert_waiting(self) -> None:
        key = search_attributes.WAITING_NODES
        self._upsert(key.value_set(list(self._waiting)) if self._waiting else key.value_unset())

    def _set_status(self, status: RunStatus) -> None:
        if self._state.status != status:
            self._state.status = status
            self._upsert(search_attributes.RUN_STATUS.value_set(status))

    def _upsert(self, update: SearchAttributeUpdate) -> None:
        if self._recorded:  # written once per workflow task, at the checkpoint
            self._unsent_attributes[update.key.name] = update
        else:
            workflow.upsert_search_attributes([update])

    def _checkpoint(self) -> None:
        """Before the workflow task ends: the table of steps and the search attributes that
        changed during it, in one upsert."""
        self._publish_details()
        if self._unsent_attributes:
            workflow.upsert_search_attributes(list(self._unsent_attributes.values()))
            self._unsent_attributes.clear()

    def _publish_details(self) -> None:
        """Every node's status in the Temporal UI (current details), whether it ran as an
        activity, in a batch, or waits for a timer or a decision."""
        # Runs once per activation: only the rows shown are visited, not every step.
        rows = [
            f"| {s.label or s.node_id} | `{s.node_id}` | {s.node_type} | {s.status} |"
            for s in itertools.islice(self._steps.values(), _DETAILS_ROWS)
        ]
        more = len(self._steps) - _DETAILS_ROWS
        details = "\n".join(
            [
                f"**{self._state.status}** · attempt {self._state.attempt}",
                "",
                "| node | id | type | status |",
                "|---|---|---|---|",
                *rows,
                *([f"\n… and {more} more (query `state`)"] if more > 0 else []),
            ]
        )
        workflow.set_current_details(details)

    def _finish(self, status: RunStatus) -> None:
        for node_id in list(self._waiting):
            step = self._steps[node_id]
            if step.status == "waiting_for_human":  # prepared, but the run ended first
                self._close_step(step, "cancelled")
            self._end_waiting(node_id)
        now = self._now()
        timing = self._state.timing
        timing.completed_at = now
        if timing.started_at is not None:
            timing.duration_ms = _ms(timing.started_at, now)
            timing.active_duration_ms = timing.duration_ms - timing.accumulated_human_waiting_ms
        if self._state.attempts:
            self._state.attempts[-1].ended_at = now
            self._state.attempts[-1].status = status
        self._set_status(status)
        if self._recorded:
            self._checkpoint()
        else:
            self._publish_details()

    def _final_outputs(self) -> Any:
        ends = [n for n, plan in self._input.plans.items() if plan.role == "end"]
        if len(ends) == 1:
            return self._outputs.get(ends[0])
        return {n: self._outputs[n] for n in ends if n in self._outputs}
