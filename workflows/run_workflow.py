"""RunWorkflow: one deterministic interpreter for every workflow definition.

A node becomes ready when all its incoming edges are resolved; it runs if at least one of them
was taken and is skipped otherwise (so the untaken side of a condition is skipped and a join
after both sides runs once). Ready nodes run concurrently. Pure nodes (inputs, transforms,
conditions, ends) are evaluated by the workflow itself: no round trip, no history event; a
reset replays those of earlier workflow tasks and computes those of the reset task again, as
a replay would (deterministic, no side effects), keeping the records the `retry` signal hands
back (api/recovery.py plans exactly that). I/O nodes are
activities named after the node type with the node label as the summary; delays are durable
timers and human reviews wait for the `review` signal. The Temporal UI's current details show
every node's status.

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
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities import inputs as input_nodes
    from activities import pure as pure_nodes
    from activities import workflow_support
    from activities.control import DelayConfig, HumanReviewConfig
    from activities.models import NodeError, NodeTaskInput, NodeTaskOutput
    from runlane import expressions, search_attributes, templating
    from runlane.definition import Edge, Graph, Node, RetryConfig
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
    )

RUN_FAILED = "RunFailed"
# How long a reset execution waits, before it ends, for the retry bookkeeping signal.
RETRY_SIGNAL_WAIT = timedelta(seconds=10)

# Pure node types the workflow evaluates itself (plan execution "workflow").
_EVALUATORS = {
    t.name: t.evaluate for t in (*input_nodes.NODE_TYPES, *pure_nodes.NODE_TYPES) if t.evaluate
}
# Pure nodes evaluated in one activation at most: the SDK fails a workflow task whose code
# runs 2 s without yielding, and a long chain of pure nodes would (20,000 take about 2 s
# here). After this many the run calls a no-op local activity, whose result resumes it in a
# new activation (one marker event; no server round trip, unlike a timer).
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


@workflow.defn
class RunWorkflow:
    @workflow.init
    def __init__(self, input: RunInput) -> None:
        self._input = input
        self._graph = Graph(input.definition)
        self._outputs: dict[str, Any] = {}
        self._state = initial_state(input)
        # Steps are updated in place; the query copies them out.
        self._steps = {step.node_id: step for step in self._state.steps}
        self._waiting: list[str] = []
        self._pending_reviews: dict[str, PendingReview] = {}
        self._decisions: dict[str, tuple[ReviewDecision, datetime]] = {}
        # Records a retry keeps for the steps its reset task computes again.
        self._kept: dict[str, KeptStep] = {}

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
            for step in self._steps.values():
                started = step.started_event_id
                if started is not None and started >= request.reset_event_id:
                    step.attempt = request.attempt
        # The reset task may already have computed them again (the signal follows the reset).
        self._kept = {kept.node_id: kept for kept in request.kept_steps}
        for node_id in self._kept:
            if node_id in self._steps:
                self._keep_record(self._steps[node_id])

    def _keep_record(self, step: StepState) -> None:
        """A step the reset task computed again reads as it did before the retry: the same
        computation on the same inputs, like a replay, not a second execution. (Only if it
        came out the same way; a changed node type would not.)"""
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
        incoming = self._graph.incoming
        unresolved = {node_id: len(edges) for node_id, edges in incoming.items()}
        taken = dict.fromkeys(incoming, 0)
        ready = deque(n for n in self._graph.topological_order if unresolved[n] == 0)
        # Insertion-ordered; never iterate a set in workflow code.
        running: dict[str, asyncio.Task[list[Edge]]] = {}

        def resolve(node_id: str, taken_edges: list[Edge]) -> None:
            for edge in self._graph.outgoing[node_id]:
                unresolved[edge.target] -= 1
                if any(edge is chosen for chosen in taken_edges):
                    taken[edge.target] += 1
                if unresolved[edge.target] == 0:
                    ready.append(edge.target)

        try:
            while ready or running:
                evaluated = 0  # in this activation
                while ready and evaluated < INLINE_NODES_PER_TASK:
                    node_id = ready.popleft()
                    if incoming[node_id] and taken[node_id] == 0:
                        self._steps[node_id].status = "skipped"
                        self._steps[node_id].finished_event_id = self._task_event_id()
                        self._keep_record(self._steps[node_id])
                        resolve(node_id, [])
                    elif self._evaluated_inline(node_id):
                        resolve(node_id, self._evaluate_node(node_id))
                        evaluated += 1
                    else:
                        running[node_id] = asyncio.create_task(self._run_node(node_id))
                self._publish_details()
                if ready:  # the per-task budget ran out
                    # (patched: runs recorded before the pause existed replay without it.)
                    if workflow.patched(_PAUSE_PATCH):
                        await workflow.execute_local_activity(
                            workflow_support.PAUSE,
                            start_to_close_timeout=timedelta(seconds=10),
                            summary=f"Pause after {evaluated} pure nodes",
                        )
                    continue
                if not running:
                    break
                await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
                for node_id, task in list(running.items()):
                    if task.done():
                        del running[node_id]
                        resolve(node_id, task.result())  # re-raises NodeFailed
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

    def _evaluated_inline(self, node_id: str) -> bool:
        plan = self._input.plans[node_id]
        return plan.execution == "workflow" and self._graph.nodes[node_id].type in _EVALUATORS

    def _evaluate_node(self, node_id: str) -> list[Edge]:
        """A pure node, evaluated right here: deterministic, so replays recompute it."""
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
        return self._taken_edges(node, plan, output)

    async def _run_node(self, node_id: str) -> list[Edge]:
        node = self._graph.nodes[node_id]
        plan = self._input.plans[node_id]
        step = self._steps[node_id]
        step.status = "running"
        # The run attempt that produced this step's result (reused steps keep theirs).
        step.attempt = self._state.attempt
        step.started_at = workflow.now()
        step.started_event_id = self._task_event_id()
        finished_at: datetime | None = None
        try:
            if plan.role == "review":
                output, edges = await self._review_node(node)
            else:
                if node.type == "delay":
                    config = DelayConfig.model_validate(node.config)
                    await workflow.sleep(config.seconds, summary=node.label or node.id)
                    output = {}
                else:
                    result = await self._activity_node(node, plan)
                    output, finished_at = result.output, result.finished_at
                edges = self._taken_edges(node, plan, output)
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

    def _taken_edges(self, node: Node, plan: NodePlan, output: Any) -> list[Edge]:
        edges = self._graph.outgoing[node.id]
        if plan.role == "condition":
            branch = "true" if output.get("result") else "false"
            return [edge for edge in edges if edge.branch == branch]
        return [edge for edge in edges if edge.branch is None]

    @staticmethod
    def _task_event_id() -> int:
        return workflow.info().get_current_history_length()

    def _close_step(
        self, step: StepState, status: Any, finished_at: datetime | None = None
    ) -> None:
        step.status = status
        step.finished_event_id = self._task_event_id()
        step.completed_at = finished_at or workflow.now()
        if step.started_at is not None:
            step.duration_ms = _ms(step.started_at, step.completed_at)

    # ----------------------------------------------------------------- node kinds

    def _referenced_outputs(self, node: Node) -> dict[str, Any]:
        """Only the ancestor outputs this node reads travel in its activity input."""
        names = {ref.node_id for ref in templating.references(node.config) if ref.node_id}
        expression = node.config.get("expression")
        if node.type == "condition" and isinstance(expression, str):
            names |= expressions.field_names(expression)
        return {
            name: self._outputs[name]
            for name in sorted(names)
            if name in self._outputs and self._graph.is_ancestor(name, node.id)
        }

    def _start_input(self, node: Node) -> Any:
        inputs = self._input.inputs
        if node.type == "start":
            document = inputs.documents.get(node.id)
            return document.model_dump() if document else None
        if node.type == "start_json":
            return inputs.json_data.get(node.id)
        if node.type == "start_text":
            return inputs.text_data.get(node.id)
        return None

    def _task_input(self, node: Node, plan: NodePlan) -> NodeTaskInput:
        return NodeTaskInput(
            run_id=self._input.run_id,
            workflow_id=self._input.workflow.workflow_id,
            node=node,
            outputs=self._referenced_outputs(node),
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
        context = templating.TemplateContext(
            outputs={k: v for k, v in self._outputs.items() if self._graph.is_ancestor(k, node.id)},
            run={"id": self._input.run_id, "workflow_id": self._input.workflow.workflow_id},
            vars=self._input.definition.vars,
        )
        payload = templating.render(config.payload, context)
        step = self._steps[node.id]
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
            self._state.timing.human_waiting_started_at = workflow.now()
        self._waiting.append(node_id)
        self._upsert_waiting()
        self._set_status("waiting_for_human")

    def _end_waiting(self, node_id: str) -> None:
        if node_id in self._waiting:
            self._waiting.remove(node_id)
        timing = self._state.timing
        if not self._waiting and timing.human_waiting_started_at is not None:
            timing.accumulated_human_waiting_ms += _ms(
                timing.human_waiting_started_at, workflow.now()
            )
            timing.human_waiting_started_at = None
        self._upsert_waiting()
        if self._state.status == "waiting_for_human" and not self._waiting:
            self._set_status("running")

    def _upsert_waiting(self) -> None:
        key = search_attributes.WAITING_NODES
        update = key.value_set(list(self._waiting)) if self._waiting else key.value_unset()
        workflow.upsert_search_attributes([update])

    def _set_status(self, status: RunStatus) -> None:
        if self._state.status != status:
            self._state.status = status
            workflow.upsert_search_attributes([search_attributes.RUN_STATUS.value_set(status)])

    def _publish_details(self) -> None:
        """Every node's status in the Temporal UI (current details): pure nodes run inside
        the workflow and have no event of their own, yet operators see the whole graph."""
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
            self._end_waiting(node_id)
        now = workflow.now()
        timing = self._state.timing
        timing.completed_at = now
        if timing.started_at is not None:
            timing.duration_ms = _ms(timing.started_at, now)
            timing.active_duration_ms = timing.duration_ms - timing.accumulated_human_waiting_ms
        if self._state.attempts:
            self._state.attempts[-1].ended_at = now
            self._state.attempts[-1].status = status
        self._set_status(status)
        self._publish_details()

    def _final_outputs(self) -> Any:
        ends = [n for n, plan in self._input.plans.items() if plan.role == "end"]
        if len(ends) == 1:
            return self._outputs.get(ends[0])
        return {n: self._outputs[n] for n in ends if n in self._outputs}
