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
* Cancelling the run cancels the child, which cancels its running items.
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
)

with workflow.unsafe.imports_passed_through():
    from activities.maps import (
        EVALUATE_CHUNK,
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
    from runlane import templating
    from runlane.definition import Node, RetryConfig
    from workflows.models import NodePlan, StepError, StepState
    from workflows.node_inputs import NodeInputs
    from workflows.steps import NodeFailed, describe_failure

MAP_ITEM_FAILED = "MapItemFailed"
# In a map child's workflow id, between the run id and the node id (run ids have no "~").
MAP_CHILD_MARK = "~map~"
_LOCAL_TIMEOUT = timedelta(seconds=60)


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

    @workflow.run
    async def run(self, input: MapInput) -> MapResult:
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
                    index=index, status="cancelled", attempt=input.execution
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
            or ItemOutcome(index=index, status="running" if index in self._running else "pending")
            for index in range(start, end)
        ]

    # ------------------------------------------------------------------ items

    def _failed(self, input: MapInput, outcome: ItemOutcome) -> bool:
        return outcome.status == "error" and input.on_item_error == "fail"

    async def _run_items(self, input: MapInput, indices: list[int]) -> ItemOutcome | None:
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

    async def _item(self, input: MapInput, index: int) -> ItemOutcome:
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

    async def _evaluate(self, input: MapInput, indices: list[int]) -> ItemOutcome | None:
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

    def __init__(self, node_inputs: NodeInputs) -> None:
        self._node_inputs = node_inputs

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
        assert config.node is not None
        inline = config.node
        item_node = Node(
            id=node.id,
            type=inline.type,
            label=node.label,
            config=inline.config,
            retry=inline.retry,
            timeout_s=inline.timeout_s,
        )
        item_reads = {ref.node_id for ref in templating.references(inline.config) if ref.node_id}
        step.map_workflow_id = child_id
        step.progress = MapProgress(total=len(prepared.items), completed=len(prepared.previous))
        child_input = MapInput(
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
