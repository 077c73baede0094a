"""`map` nodes: a child workflow per map node, which runs the inline node once per item.

Why a child workflow: a map of 10,000 items is 10,000 activities (30,000+ events), more than
one history should hold (Temporal warns at 10,240 events and refuses past 51,200). The run
workflow records one child start and its result; the child, `MapWorkflow`, runs at most
`items_per_execution` items per execution and then continues as new, carrying only what it
must: the items, and the outcome of each settled item (an output or an error). Each item
outcome is recorded in the history of the execution that ran it (an activity's result, or a
chunk of pure items evaluated by one local activity, `runlane.map_evaluate`).

* At most `concurrency` items run at once (the window refills as items settle; it drains at
  the end of each execution before continuing as new).
* `on_item_error: "fail"`: once an item fails for good (after its retries), no further item
  starts; the running ones settle (their outcomes are kept), then the child fails with every
  outcome in its failure's details. `"continue"`: the error is recorded and the map goes on.
* `workflow_id` maps: each item is a child run of the target frozen into the run's input,
  started as a subworkflow node starts one (workflows/children.py: a recorded local activity
  renders the item into the `input_node` and picks the run id), its trigger naming the run;
  the item's output is the child's final_outputs, a failed child a failed item.
* Cancelling the run cancels the child, which cancels its running items (child runs too).
* Retry: the run's reset goes back to the task that started the map; there the run workflow's
  `runlane.map_prepare` reads what the previous child recorded (its result, its failure's
  details, or for a cancelled one the outcomes its last execution started with) and the new
  child starts with those completed items done: they are not executed again.

The child's workflow id is `<run id>~map~<node id>~<first 8 of the run's first execution id>`:
a retry's new child reuses it (and so finds the previous one), a retry from the start does not.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
)

with workflow.unsafe.imports_passed_through():
    from pydantic import Field

    from activities import subworkflow
    from activities.maps import (
        EVALUATE_CHUNK,
        ITEM_CHILD_RUN,
        MAP_EVALUATE,
        MAP_PREPARE,
        ItemOutcome,
        MapConfig,
        MapEvaluateInput,
        MapEvaluateResult,
        MapInput,
        MapItemsQuery,
        MapPrepareInput,
        MapPrepareResult,
        MapProgress,
        MapResult,
        map_output,
        progress_of,
    )
    from activities.models import NodeTaskOutput, OutcomeError
    from activities.subworkflow import PreparedChild, SubworkflowTask
    from runlane import templating
    from runlane.definition import Node, RetryConfig
    from workflows.children import (
        PREPARE_RETRY,
        PREPARE_TIMEOUT,
        child_targets,
        execute_child,
        run_target,
        starts,
    )
    from workflows.models import (
        FrozenWorkflow,
        NodePlan,
        RunInput,
        StepError,
        StepState,
        node_behaviour,
    )
    from workflows.node_inputs import NodeInputs
    from workflows.steps import NodeFailed, describe_failure

MAP_ITEM_FAILED = "MapItemFailed"
# In a map child's workflow id, between the run id and the node id (run ids have no "~").
MAP_CHILD_MARK = "~map~"
_LOCAL_TIMEOUT = timedelta(seconds=60)


class MapRunInput(MapInput):
    """A map child's input, with what a `workflow_id` map's items need to start child runs
    (absent for an inline node): the target frozen when the run started, the targets its own
    child runs need, and the start_json node that receives each item."""

    organization_id: str = ""
    target: FrozenWorkflow | None = None
    known: dict[str, FrozenWorkflow] = Field(default_factory=dict)
    input_node: str = ""
    # The event types the items' child runs emit (the run's: RunInput.events).
    events: list[str] = Field(default_factory=list)


def child_workflow_id(run_id: str, node_id: str) -> str:
    return f"{run_id}{MAP_CHILD_MARK}{node_id}~{workflow.info().first_execution_run_id[:8]}"


@workflow.defn
class MapWorkflow:
    """Runs a map's inline node once per item; see the module docstring."""

    def __init__(self) -> None:
        self._total = 0
        self._outcomes: dict[int, ItemOutcome] = {}
        # Insertion-ordered, used as a set: never iterate a set in workflow code.
        self._running: dict[int, None] = {}
        # workflow_id maps: the child run of each item started by this execution.
        self._child_runs: dict[int, str] = {}

    @workflow.run
    async def run(self, input: MapRunInput) -> MapResult:
        self._total = len(input.items)
        for outcome in input.done:
            self._outcomes[outcome.index] = outcome
        todo = [index for index in range(self._total) if index not in self._outcomes]
        now = todo[: input.items_per_execution]
        try:
            if input.item_execution == "batch":
                failed = await self._evaluate(input, now)
            else:
                failed = await self._run_items(input, now)
        except asyncio.CancelledError:
            for index in self._running:
                self._outcomes[index] = ItemOutcome(
                    index=index,
                    status="cancelled",
                    attempt=input.execution,
                    child_run_id=self._child_runs.get(index),
                )
            self._running.clear()
            raise
        result = self._result(input.execution)
        if failed is not None:
            error = failed.error or OutcomeError(type="Error", message="")
            raise ApplicationError(
                f"item {failed.index} failed: {error.message}",
                result,
                type=MAP_ITEM_FAILED,
                non_retryable=True,
            )
        if len(todo) > len(now):
            workflow.continue_as_new(input.model_copy(update={"done": result.outcomes}))
        return result

    def _result(self, execution: int) -> MapResult:
        return MapResult(
            total=self._total,
            outcomes=[self._outcomes[i] for i in sorted(self._outcomes)],
            execution=execution,
        )

    # ------------------------------------------------------------------ queries

    @workflow.query
    def progress(self) -> MapProgress:
        return progress_of(self._result(0), running=len(self._running))

    @workflow.query
    def items(self, page: MapItemsQuery) -> list[ItemOutcome]:
        """Items `offset` to `offset + limit`, in item order."""
        start = max(page.offset, 0)
        end = min(self._total, start + max(page.limit, 0))
        return [
            self._outcomes.get(index)
            or ItemOutcome(
                index=index,
                status="running" if index in self._running else "pending",
                child_run_id=self._child_runs.get(index),
            )
            for index in range(start, end)
        ]

    # ------------------------------------------------------------------ items

    def _failed(self, input: MapInput, outcome: ItemOutcome) -> bool:
        return outcome.status == "error" and input.on_item_error == "fail"

    async def _run_items(self, input: MapRunInput, indices: list[int]) -> ItemOutcome | None:
        """Activities, at most `concurrency` at once; the first failure (in fail mode) stops
        new items and is returned once the running ones settled."""
        pending = deque(indices)
        tasks: dict[int, asyncio.Task[ItemOutcome]] = {}
        failed: ItemOutcome | None = None
        try:
            while tasks or (pending and failed is None):
                while pending and failed is None and len(tasks) < input.concurrency:
                    index = pending.popleft()
                    self._running[index] = None
                    tasks[index] = asyncio.create_task(self._item(input, index))
                await workflow.wait(list(tasks.values()), return_when=asyncio.FIRST_COMPLETED)
                for index, task in list(tasks.items()):
                    if task.done():
                        del tasks[index]
                        del self._running[index]
                        outcome = task.result()
                        self._outcomes[index] = outcome
                        if failed is None and self._failed(input, outcome):
                            failed = outcome
        except BaseException:
            for task in tasks.values():
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks.values(), return_exceptions=True)
            raise
        return failed

    async def _item(self, input: MapRunInput, index: int) -> ItemOutcome:
        if input.item_execution == ITEM_CHILD_RUN:
            return await self._child_item(input, index)
        node = input.task.node
        task = input.task.model_copy(
            update={
                "item": input.items[index],
                "index": index,
                # Distinct per item: http_request sends Idempotency-Key <run id>:<map>[<index>].
                "node": node.model_copy(update={"id": f"{input.node_id}[{index}]"}),
            }
        )
        retry = node.retry or RetryConfig()
        execute = (
            workflow.execute_local_activity
            if input.item_execution == "local"
            else workflow.execute_activity
        )
        try:
            result = await execute(
                node.type,
                task,
                result_type=NodeTaskOutput,
                activity_id=f"item-{index}",
                start_to_close_timeout=timedelta(seconds=input.item_timeout_s),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=retry.initial_interval_s),
                    backoff_coefficient=retry.backoff,
                    maximum_attempts=retry.max_attempts,
                ),
                summary=f"{input.label or input.node_id} [{index}]",
            )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                raise asyncio.CancelledError() from err
            failure = describe_failure(err)
            return ItemOutcome(
                index=index,
                status="error",
                attempt=input.execution,
                error=OutcomeError(type=failure.type, message=failure.message),
            )
        return ItemOutcome(
            index=index, status="completed", attempt=input.execution, output=result.output
        )

    async def _child_item(self, input: MapRunInput, index: int) -> ItemOutcome:
        """A child run of the map's target per item, as a subworkflow node starts one: a local
        activity renders the item into the input node and picks the run id (recorded), then the
        run starts as a child of this workflow, its trigger naming the map's run."""
        assert input.target is not None
        item_id = f"{input.node_id}[{index}]"
        task = input.task.model_copy(
            update={
                "item": input.items[index],
                "index": index,
                "node": input.task.node.model_copy(update={"id": item_id}),
            }
        )
        try:
            prepared = await workflow.execute_local_activity(
                subworkflow.NODE_TYPE,
                SubworkflowTask(task=task, starts=starts(input.target)),
                result_type=PreparedChild,
                activity_id=f"child-{index}",
                start_to_close_timeout=PREPARE_TIMEOUT,
                retry_policy=PREPARE_RETRY,
                summary=f"Prepare the child run of {input.label or input.node_id} [{index}]",
            )
        except FailureError as err:
            # (A local activity's failure may arrive as its cause itself: batches.py.)
            cause = err.cause if isinstance(err, ActivityError) else err
            if isinstance(cause, CancelledError):
                raise asyncio.CancelledError() from err
            failure = describe_failure(err)
            return ItemOutcome(
                index=index,
                status="error",
                attempt=input.execution,
                error=OutcomeError(type=failure.type, message=failure.message),
            )
        self._child_runs[index] = prepared.run_id
        try:
            output = await execute_child(
                organization_id=input.organization_id,
                parent_run_id=input.run_id,
                known=input.known,
                events=input.events,
                node_id=item_id,
                target=input.target,
                prepared=prepared,
            )
        except NodeFailed as failed:
            return ItemOutcome(
                index=index,
                status="error",
                attempt=input.execution,
                error=OutcomeError(type=failed.error.type, message=failed.error.message),
                child_run_id=prepared.run_id,
            )
        return ItemOutcome(
            index=index,
            status="completed",
            attempt=input.execution,
            output=output,
            child_run_id=prepared.run_id,
        )

    async def _evaluate(self, input: MapRunInput, indices: list[int]) -> ItemOutcome | None:
        """A pure node type: chunks of items evaluated by one local activity each."""
        failed: ItemOutcome | None = None
        pending = list(indices)
        while pending and failed is None:
            chunk = pending[:EVALUATE_CHUNK]
            for index in chunk:
                self._running[index] = None
            result = await workflow.execute_local_activity(
                MAP_EVALUATE,
                MapEvaluateInput(
                    task=input.task,
                    indices=chunk,
                    items=[input.items[index] for index in chunk],
                    attempt=input.execution,
                ),
                result_type=MapEvaluateResult,
                start_to_close_timeout=_LOCAL_TIMEOUT,
                summary=f"{input.label or input.node_id} [{chunk[0]}..{chunk[-1]}]",
            )
            for index in chunk:
                del self._running[index]
            for outcome in result.outcomes:
                self._outcomes[outcome.index] = outcome
                if failed is None and self._failed(input, outcome):
                    failed = outcome
            pending = pending[len(result.outcomes) :]
        return failed


class Maps:
    """The run workflow's side of a map node: prepare, start the child, read its result."""

    def __init__(self, node_inputs: NodeInputs, run_input: RunInput) -> None:
        self._node_inputs = node_inputs
        self._run_input = run_input

    async def run(self, node: Node, plan: NodePlan, step: StepState, run_id: str) -> Any:
        task = self._node_inputs.task(node, plan)
        child_id = child_workflow_id(run_id, node.id)
        prepared = await workflow.execute_local_activity(
            MAP_PREPARE,
            MapPrepareInput(task=task, child_workflow_id=child_id),
            result_type=MapPrepareResult,
            start_to_close_timeout=_LOCAL_TIMEOUT,
            summary=f"Prepare {node.label or node.id}",
        )
        if prepared.items is None:
            error = prepared.error or OutcomeError(type="MapItemsNotAList", message="")
            raise NodeFailed(node.id, StepError(type=error.type, message=error.message))
        config = MapConfig.model_validate(node.config)
        children: dict[str, Any] = {}  # (MapRunInput's child run fields: an inline node has none)
        if config.node is None:
            item_node, children = self._child_runs(node, plan, config)
            item_reads: set[str] = set()
        else:
            inline = config.node
            item_node = Node(
                id=node.id,
                type=inline.type,
                label=node.label,
                config=inline.config,
                retry=inline.retry,
                timeout_s=inline.timeout_s,
            )
            item_reads = {
                ref.node_id for ref in templating.references(inline.config) if ref.node_id
            }
        step.map_workflow_id = child_id
        step.progress = MapProgress(total=len(prepared.items), completed=len(prepared.previous))
        child_input = MapRunInput(
            run_id=run_id,
            node_id=node.id,
            label=node.label,
            # Only the outputs the inline node reads: every item's activity input carries
            # them, and the list the items come from is usually the largest of all.
            task=task.model_copy(
                update={
                    "node": item_node,
                    "outputs": {k: v for k, v in task.outputs.items() if k in item_reads},
                }
            ),
            item_execution=prepared.item_execution,
            item_timeout_s=prepared.item_timeout_s,
            items=prepared.items,
            concurrency=config.concurrency,
            on_item_error=config.on_item_error,
            items_per_execution=prepared.items_per_execution,
            execution=prepared.execution,
            done=prepared.previous,
            **children,
        )
        try:
            result = await workflow.execute_child_workflow(
                MapWorkflow.run,
                child_input,
                id=child_id,
                static_summary=f"Map {node.label or node.id}: {len(prepared.items)} items",
            )
        except ChildWorkflowError as err:
            cause = err.cause
            if isinstance(cause, CancelledError):
                raise asyncio.CancelledError() from err
            if isinstance(cause, ApplicationError) and cause.type == MAP_ITEM_FAILED:
                failed = MapResult.model_validate(cause.details[0])
                step.progress = progress_of(failed)
                step.output = map_output(failed)
                first = next(o for o in failed.outcomes if o.status == "error")
                assert first.error is not None
                raise NodeFailed(
                    node.id,
                    StepError(
                        type=first.error.type, message=f"item {first.index}: {first.error.message}"
                    ),
                ) from None
            raise NodeFailed(node.id, describe_failure(err)) from None
        step.progress = progress_of(result)
        return map_output(result)

    def _child_runs(
        self, node: Node, plan: NodePlan, config: MapConfig
    ) -> tuple[Node, dict[str, Any]]:
        """A workflow_id map: the node each item's child run is prepared as (a subworkflow
        passing the item to the input node), and the target frozen when the run started."""
        target_config = run_target(node, node_behaviour(plan, node.type))
        assert target_config is not None and config.workflow_id is not None
        target = self._run_input.subworkflows.get(subworkflow.target_key(target_config))
        if target is None:  # (the run service resolves every target before the run starts)
            raise NodeFailed(
                node.id,
                StepError(
                    type="SubworkflowUnavailable",
                    message=f"workflow {config.workflow_id} ({config.config_source}) was not "
                    "resolved when this run started",
                ),
            )
        json_starts = [start.node_id for start in starts(target) if start.kind == "json"]
        input_node = config.input_node
        if input_node is None and len(json_starts) == 1:
            input_node = json_starts[0]
        if input_node is None or input_node not in json_starts:
            raise NodeFailed(
                node.id,
                StepError(
                    type="MapInputNode", message=input_node_problem(config.input_node, json_starts)
                ),
            )
        item_node = Node(
            id=node.id,
            type=subworkflow.NODE_TYPE,
            label=node.label,
            config={
                "workflow_id": config.workflow_id,
                "config_source": config.config_source,
                "json_inputs": {input_node: "{{$item}}"},
            },
        )
        children = {
            "organization_id": self._run_input.organization_id,
            "target": target,
            "known": child_targets(target.definition, target.plans, self._run_input.subworkflows),
            "input_node": input_node,
            "events": self._run_input.events,
        }
        return item_node, children


def input_node_problem(input_node: str | None, json_starts: list[str]) -> str:
    """Why a map's target cannot take its items (also checked when a workflow is published)."""
    if input_node is not None:
        return (
            f"input_node '{input_node}' is not a start_json node of the target "
            f"(its start_json nodes: {', '.join(json_starts) or 'none'})"
        )
    if not json_starts:
        return "the target has no start_json node to receive the items"
    return (
        f"the target has several start_json nodes ({', '.join(json_starts)}): "
        "name the one that receives the items in input_node"
    )
