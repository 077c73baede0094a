"""RunWorkflow: one deterministic interpreter for every workflow definition.

A node becomes ready when all its incoming edges are resolved; it runs if at least one of them
was taken and is skipped otherwise (so the untaken side of a condition is skipped and a join
after both sides runs once). Ready nodes run concurrently.

History is the source of truth: every node's outcome is recorded in the run's history the first
time it is produced, and a replay (cache eviction, worker restart, reset) reads it back rather
than computing it again with the code installed at replay time.

* I/O nodes are regular activities named after the node type, with the node's label as the
  summary; delays are durable timers; human reviews wait for the `review` signal; subworkflow
  nodes are child workflows (child runs).
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
  and the task that scheduled it (workflows/steps.py, `Clock`): Temporal may hand a local
  activity's result over in another workflow task live than on replay.

Which engine a run uses is frozen in its input, like everything about how its nodes execute:
pure nodes planned "batch" mark a recorded run. Runs started before recording replay as they
ran: pure nodes evaluated in the workflow (plan "workflow") or as one local activity each (plan
"local"), skips decided and review payloads rendered in the workflow, a search-attribute upsert
per change. (Not a `workflow.patched` marker: Temporal's SDK then upserts the
TemporalChangeVersion search attribute too, a second upsert in the first task.)

This module is the scheduler: it dispatches ready nodes, waits, routes by what they produced
and finishes the run. It composes the parts beside it: the batches of pure work
(workflows/batches.py), human review (workflows/reviews.py), retry bookkeeping
(workflows/attempts.py), what operators see in visibility and the Temporal UI
(workflows/visibility.py), what a node is given (workflows/node_inputs.py), the recording
of steps (workflows/steps.py) and child runs (workflows/children.py: nodes whose plan says
`child_run`, run as Temporal child workflows).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections import deque
from datetime import datetime, timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities import inputs as input_nodes
    from activities import pure as pure_nodes
    from activities import workflow_support
    from activities.control import DelayConfig
    from activities.models import NodeError, NodeTaskOutput, PureBatchResult
    from runlane.definition import Edge, Graph, Node, RetryConfig
    from runlane.frontier import Frontier, taken_edges
    from workflows.attempts import RETRY_SIGNAL_WAIT, Attempts
    from workflows.batches import Batches, is_batch
    from workflows.children import Children
    from workflows.events import Events, EventType
    from workflows.maps import Maps
    from workflows.models import (
        OUTPUTS_NOT_RECORDED,
        ErrorStage,
        NodePlan,
        RetryRequest,
        ReviewDecision,
        RunError,
        RunInput,
        RunInputs,
        RunState,
        RunStatus,
        StepError,
        initial_state,
        node_behaviour,
    )
    from workflows.node_inputs import NodeInputs
    from workflows.reviews import Reviews
    from workflows.steps import Clock, NodeFailed, RunContext, describe_failure, ms
    from workflows.visibility import Visibility

RUN_FAILED = "RunFailed"

# Runs started before recording: pure node types the workflow evaluated itself (plan execution
# "workflow"), at most this many per activation (the SDK fails a workflow task whose code runs
# 2 s without yielding); then a no-op local activity resumed them in a new activation.
_EVALUATORS = {
    t.name: t.evaluate for t in (*input_nodes.NODE_TYPES, *pure_nodes.NODE_TYPES) if t.evaluate
}
INLINE_NODES_PER_TASK = 1000
_PAUSE_PATCH = "pause-between-long-pure-stretches"
_STATE_SIZE_PATCH = "final-state-within-payload-limit"
_INPUT_SIZE_PATCH = "activity-input-within-payload-limit"
# An execution made by a reset to the run's first task waits for its retry request before it
# runs anything (runs before this replay as they ran: they never waited).
_RETRY_REQUEST_PATCH = "reset-to-first-task-waits-for-retry-request"

# Temporal refuses a payload over 2 MiB (and the SDK then fails the workflow task, again at
# every retry): the final state a run records, compressed as the payload codec does, stays
# under this, with room for the codec's envelope and the failure around it.
MAX_STATE_PAYLOAD_BYTES = 1792 * 1024


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode(
        "utf-8", "surrogatepass"
    )


def _payload_size(value: Any) -> int:
    """The size of `value` as a payload, compressed when the codec would compress it
    (runlane/converter.py); compressed only when its JSON alone is over the limit."""
    data = workflow.payload_converter().to_payload(value).SerializeToString()
    if len(data) <= MAX_STATE_PAYLOAD_BYTES:
        return len(data)
    return len(zlib.compress(data, 6))


# The event a run emits when it ends with each status.
_ENDED_EVENTS: dict[RunStatus, EventType] = {
    "completed": "run.completed",
    "error": "run.failed",
    "cancelled": "run.cancelled",
}

# The stage an error is reported in follows the failing node's role.
_STAGE_BY_ROLE: dict[str, ErrorStage] = {
    "start": "input_collection",
    "condition": "routing",
    "end": "output_storage",
}


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
        # Recorded runs: every node's outcome in history (see the module docstring).
        self._recorded = any(plan.execution == "batch" for plan in input.plans.values())
        self._clock = Clock()
        self._node_inputs = NodeInputs(input, self._graph, self._behaviour, self._outputs)
        self._visibility = Visibility(self._state, self._steps, once_per_task=self._recorded)
        self._events = Events(input, self._state, self._clock, lambda: list(self._reviews.waiting))
        self._attempts = Attempts(self._state, self._steps, self._events)
        run = RunContext(input, self._graph, self._state, self._steps, self._outputs, self._clock)
        self._reviews = Reviews(run, self._visibility, self._events)
        self._batches = Batches(run, self._node_inputs, self._reviews, self._attempts)
        self._children = Children(input, self._node_inputs)
        self._maps = Maps(self._node_inputs, input)

    # ----------------------------------------------------------------- entry point

    @workflow.run
    async def run(self, input: RunInput) -> RunState:
        now = workflow.now()
        self._state.timing.started_at = now
        self._state.first_task_event_id = workflow.info().get_current_history_length()
        self._attempts.begin(input.retry, now)
        await self._await_retry_request()
        self._visibility.set_status("running")
        if self._state.attempt == 1:  # (a retry emits run.retried instead)
            self._events.emit("run.started")
        try:
            await self._execute_graph()
        except asyncio.CancelledError:
            await self._attempts.settle()
            await self._finish("cancelled")
            raise
        except NodeFailed as failure:
            role = self._input.plans[failure.node_id].role
            error = RunError(
                stage=_STAGE_BY_ROLE.get(role, "execution"),
                node_id=failure.node_id,
                type=failure.error.type,
                message=failure.error.message,
            )
            await self._end_in_error(error, str(failure))
        self._state.final_outputs = self._final_outputs()
        # (Patched: a run that completed before the check replays as it completed.)
        too_large = self._too_large_to_record()
        if too_large is not None and workflow.patched(_STATE_SIZE_PATCH):
            await self._end_in_error(too_large, too_large.message)
        await self._attempts.settle()
        await self._finish("completed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def _end_in_error(self, error: RunError, message: str) -> NoReturn:
        self._state.error = error
        await self._attempts.settle()
        await self._finish("error")
        await workflow.wait_condition(workflow.all_handlers_finished)
        # Failing the Temporal execution shows operators a failed run in the UI, and the
        # failed node's events are what "retry from the failure point" resets to.
        # The final state rides along so the API can read an ended run without a worker.
        raise ApplicationError(
            message, self._recordable(self.state()), type=RUN_FAILED, non_retryable=True
        ) from None

    # ----------------------------------------------------------------- state size

    def _too_large_to_record(self) -> RunError | None:
        """The run's final state goes to Temporal as one payload: over the limit, the last
        workflow task would fail for ever. The node with the largest output is named."""
        size = _payload_size(self.state())
        if size <= MAX_STATE_PAYLOAD_BYTES:
            return None
        largest = max(self._steps.values(), key=lambda step: len(_json(step.output)), default=None)
        return RunError(
            stage="output_storage",
            node_id=largest.node_id if largest is not None else None,
            type="RunStateTooLarge",
            message=f"the run's outputs together are {size:,} bytes compressed, more than "
            f"Temporal records in one payload ({MAX_STATE_PAYLOAD_BYTES:,}); this node's output "
            "is the largest (pass large data as documents)",
        )

    def _recordable(self, state: RunState) -> RunState:
        """The final state, or when it is too large to record, the state without the outputs,
        inputs and review payloads (the inputs stay in the run's start event)."""
        if _payload_size(state) <= MAX_STATE_PAYLOAD_BYTES:
            return state
        error = state.error
        if error is not None:
            note = f" {OUTPUTS_NOT_RECORDED}"
            error = error.model_copy(update={"message": error.message + note})
        return state.model_copy(
            update={
                "error": error,
                "inputs": RunInputs(),
                "final_outputs": None,
                "steps": [step.model_copy(update={"output": None}) for step in state.steps],
                "pending_reviews": [],
            }
        )

    # ----------------------------------------------------------------- handlers

    @workflow.query
    def state(self) -> RunState:
        return self._state.model_copy(
            update={
                "steps": [step.model_copy() for step in self._steps.values()],
                "waiting_for_node_ids": list(self._reviews.waiting),
                "pending_reviews": self._reviews.pending(),
            }
        )

    @workflow.signal
    def review(self, decision: ReviewDecision) -> None:
        """Operators may send this from the Temporal UI or CLI; invalid or repeated decisions
        are ignored (a decision applies at most once per node)."""
        self._reviews.receive(decision)

    @workflow.signal
    def retry(self, request: RetryRequest) -> None:
        """Sent by the API to the execution its reset created. The reset excludes signals,
        updates and cancel requests received after the reset point, so decisions for nodes
        that run again are not applied twice and a retried cancelled run stays alive."""
        self._attempts.receive(request)

    # ----------------------------------------------------------------- retry from a node

    async def _await_retry_request(self) -> None:
        """A retry from a node resets the run to its first task, then sends the `retry` signal
        saying which recorded outcomes the new attempt keeps: the new execution waits for it
        (bounded) before it runs anything, since whatever it scheduled before would run again.

        Live, only an execution a reset made (its run id is not its chain's first) waits, and
        records the patch marker saying so. A replay follows the marker alone: it asks for the
        patch whatever the run ids (a replayer knows only the chain's first), and the SDK
        answers whether the marker is in the history. An execution reset to a later point
        replays its first task as it ran: no marker, no wait. A reset to the first task made
        by an operator in the Temporal UI sends no signal: after the wait, everything runs
        again."""
        info = workflow.info()
        reset_task = self._clock.task_event_id()
        if (
            self._attempts.request is None  # (its signal may come with the first task)
            and (workflow.unsafe.is_replaying() or info.run_id != info.first_execution_run_id)
            and workflow.patched(_RETRY_REQUEST_PATCH)
        ):
            try:
                await workflow.wait_condition(
                    lambda: self._attempts.request is not None, timeout=RETRY_SIGNAL_WAIT
                )
            except TimeoutError:
                pass
            request = self._attempts.request
            if request is None or request.from_ != "node":
                # Any other reset to the first task: the batches about to start are those the
                # reset task would have started, and take back what they recorded there.
                self._batches.started_for_task(reset_task)
        request = self._attempts.request
        if request is not None and request.from_ == "node":
            self._batches.keep_nothing_back()
            self._keep_outcomes(request)

    def _keep_outcomes(self, request: RetryRequest) -> None:
        """Apply a retry from a node: the overriding inputs, and the kept steps as the run
        recorded them (the scheduler resolves a kept node by its recorded outcome when it
        becomes ready instead of executing it; batches never evaluate one)."""
        if request.inputs is not None:
            # NodeInputs and the batches read the inputs through this same RunInput.
            self._input.inputs = request.inputs
            self._state.inputs = request.inputs
        task = self._clock.task_event_id()
        for kept in request.kept_outcomes:
            step = self._steps.get(kept.node_id)
            if step is None or kept.status != "completed":
                continue
            for name in type(kept).model_fields:
                setattr(step, name, getattr(kept, name))
            # Recorded in this task, for the reset points of later retries.
            step.started_event_id = step.finished_event_id = task
            self._outputs[kept.node_id] = kept.output
            self._attempts.kept[kept.node_id] = None
            self._attempts.reused[kept.node_id] = None

    def _kept_edges(self, node_id: str) -> list[Edge]:
        """The edges a kept node took when it ran: a rejected review its `rejected` ones."""
        step = self._steps[node_id]
        outgoing = self._graph.outgoing[node_id]
        if step.review is not None and step.review.decision == "reject":
            return [edge for edge in outgoing if edge.branch == "rejected"]
        return taken_edges(self._input.plans[node_id].role, outgoing, step.output)

    # ----------------------------------------------------------------- scheduling

    async def _execute_graph(self) -> None:
        frontier = Frontier.start(self._graph.outgoing, self._graph.incoming)
        ready = deque(n for n in self._graph.topological_order if frontier.unresolved[n] == 0)
        # Node ids, or batch keys (workflows/batches.py); insertion-ordered: never iterate a
        # set in workflow code.
        running: dict[str, asyncio.Task[Any]] = {}
        try:
            while ready or running:
                if self._recorded:
                    self._dispatch(ready, running, frontier)
                    if running and not any(is_batch(key) for key in running):
                        # About to wait for something outside this workflow task (a batch's
                        # result comes back within it): write the table and the search
                        # attributes that changed, once, and hand over the events it
                        # emitted. (An ending run does both in _finish.)
                        self._visibility.checkpoint()
                        self._events.flush()
                elif await self._dispatch_unrecorded(ready, running, frontier):
                    continue
                if not running:
                    break
                self._clock.release()
                await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
                for key, task in list(running.items()):
                    if task.done():
                        del running[key]
                        result = task.result()  # re-raises NodeFailed
                        if isinstance(result, PureBatchResult):
                            ready.extend(self._batches.apply(key, result, frontier))
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
            if node_id in self._attempts.kept:
                ready.extend(frontier.resolve(node_id, self._kept_edges(node_id)))
            elif self._reviews.is_prepared(node_id):  # by a batch: wait for the decision
                running[node_id] = asyncio.create_task(self._run_node(node_id))
            elif self._batches.recorded(node_id):
                continue
            elif self._batches.takes(node_id, frontier):
                batch.append(node_id)
            else:
                running[node_id] = asyncio.create_task(self._run_node(node_id))
        running.update(self._batches.start(batch, frontier))

    async def _dispatch_unrecorded(
        self, ready: deque[str], running: dict[str, asyncio.Task[Any]], frontier: Frontier
    ) -> bool:
        """Runs started before recording, as they ran. True when the scheduler should look at
        the ready nodes again before waiting (the per-activation budget ran out)."""
        evaluated = 0  # in this activation
        while ready and evaluated < INLINE_NODES_PER_TASK:
            node_id = ready.popleft()
            if node_id in self._attempts.kept:
                ready.extend(frontier.resolve(node_id, self._kept_edges(node_id)))
            elif frontier.skips(node_id):
                self._steps[node_id].status = "skipped"
                self._steps[node_id].finished_event_id = self._clock.task_event_id()
                self._attempts.keep_record(self._steps[node_id])
                ready.extend(frontier.resolve(node_id, []))
            elif self._evaluated_inline(node_id):
                ready.extend(frontier.resolve(node_id, self._evaluate_node(node_id)))
                evaluated += 1
            else:
                running[node_id] = asyncio.create_task(self._run_node(node_id))
        self._visibility.publish_details()
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
        step.started_event_id = self._clock.task_event_id()
        try:
            output = _EVALUATORS[node.type](self._node_inputs.task(node, plan))
        except NodeError as err:
            step.error = StepError(type=err.type, message=err.message)
            self._clock.close_step(step, "error")
            raise NodeFailed(node_id, step.error) from None
        step.output = output
        self._outputs[node_id] = output
        self._clock.close_step(step, "completed")
        self._attempts.keep_record(step)
        return taken_edges(plan.role, self._graph.outgoing[node_id], output)

    # ----------------------------------------------------------------- nodes of their own

    async def _run_node(self, node_id: str) -> list[Edge]:
        node = self._graph.nodes[node_id]
        plan = self._input.plans[node_id]
        step = self._steps[node_id]
        if not self._reviews.is_prepared(node_id):  # (then it is waiting already)
            step.status = "running"
            # The run attempt that produced this step's result (reused steps keep theirs).
            step.attempt = self._state.attempt
            step.started_at = self._clock.now()
            step.started_event_id = self._clock.task_event_id()
        finished_at: datetime | None = None
        try:
            if plan.role == "review":
                output, edges = await self._reviews.decision(node)
            else:
                if self._behaviour[node_id].map:
                    output = await self._maps.run(node, plan, step, self._input.run_id)
                elif self._behaviour[node_id].timer:
                    config = DelayConfig.model_validate(node.config)
                    await workflow.sleep(config.seconds, summary=node.label or node.id)
                    output = {}
                elif self._behaviour[node_id].child_run:
                    output = await self._children.run(node, plan, step)
                else:
                    result = await self._activity_node(node, plan)
                    output, finished_at = result.output, result.finished_at
                edges = taken_edges(plan.role, self._graph.outgoing[node_id], output)
        except (asyncio.CancelledError, CancelledError):
            self._clock.close_step(step, "cancelled")
            raise
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                self._clock.close_step(step, "cancelled")
                raise asyncio.CancelledError() from err
            step.error = describe_failure(err)
            self._clock.close_step(step, "error")
            raise NodeFailed(node_id, step.error) from None
        except NodeFailed as failure:
            step.error = failure.error
            self._clock.close_step(step, "error")
            raise
        step.output = output
        self._outputs[node_id] = output
        self._clock.close_step(step, "completed", finished_at)
        return edges

    async def _activity_node(self, node: Node, plan: NodePlan) -> NodeTaskOutput:
        task = self._node_inputs.task(node, plan)
        # A node reading more than Temporal takes in one payload could never be scheduled:
        # the SDK would fail this workflow task at every retry. It is the node's error instead.
        # The patch marker is written only for such a node (which no earlier code could
        # schedule), so every other run replays exactly as before.
        size = _payload_size(task)
        if size > MAX_STATE_PAYLOAD_BYTES and workflow.patched(_INPUT_SIZE_PATCH):
            raise NodeFailed(
                node.id,
                StepError(
                    type="InputTooLarge",
                    message=f"the node's input (the outputs it reads) is {size:,} bytes "
                    f"compressed, more than Temporal takes in one payload "
                    f"({MAX_STATE_PAYLOAD_BYTES:,}); pass large data as documents",
                ),
            )
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

    # ----------------------------------------------------------------- the end

    async def _finish(self, status: RunStatus) -> None:
        self._reviews.end()
        now = self._clock.now()
        timing = self._state.timing
        timing.completed_at = now
        if timing.started_at is not None:
            timing.duration_ms = ms(timing.started_at, now)
            timing.active_duration_ms = timing.duration_ms - timing.accumulated_human_waiting_ms
        self._attempts.end(status, now)
        # The run reads as ended (its status, its search attributes) only once the events
        # saying so are handed over: a caller who sees it ended may retry it at once, and a
        # reset then would drop a hand-over still in flight. (A run with no subscription
        # hands nothing over and ends in this task, as it always did.)
        self._events.emit(_ENDED_EVENTS[status], status=status)
        await self._events.handed_over()
        self._visibility.set_status(status)
        self._visibility.ended()

    def _final_outputs(self) -> Any:
        ends = [n for n, plan in self._input.plans.items() if plan.role == "end"]
        if len(ends) == 1:
            return self._outputs.get(ends[0])
        return {n: self._outputs[n] for n in ends if n in self._outputs}
