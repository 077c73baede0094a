"""`map`: one node run once per element of a rendered list (API.md "Map").

The run workflow hands a map node to a child workflow of its own (workflows/maps.py,
`MapWorkflow`), which runs the inline node per item. This module holds what both sides and the
API share: the config, the item records, and the two local activities of a map:

* `runlane.map_prepare` (in the run workflow, before the child starts): renders `items`, and
  reads back the item outcomes the previous execution of this map recorded, when a retry
  runs the map again (completed items are then not executed again);
* `runlane.map_evaluate` (in the child): evaluates a chunk of items of a pure node type at once,
  so that 10,000 `transform` items cost a few markers, not 10,000 activities.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.models import NodeError, NodeTaskInput, NodeTaskOutput, OutcomeError
from activities.node_type import NodeBehaviour, NodeType
from activities.recorded import LOCAL_ACTIVITY_MARKER
from activities.subworkflow import PreparedChild
from activities.usage import Ledger, chunk_record
from runlane import ids, templating
from runlane.definition import RetryConfig

MAP_PREPARE = "runlane.map_prepare"
MAP_EVALUATE = "runlane.map_evaluate"
MAX_CONCURRENCY = 1000
# Items of a pure node type one `runlane.map_evaluate` call takes at most, and the JSON size
# of outputs after which it stops early (its result is one Temporal payload).
EVALUATE_CHUNK = 500
EVALUATE_BUDGET_BYTES = 1024 * 1024
_MESSAGE_CHARS = 2000
# MapInput.item_execution of a workflow_id map: each item is a child run.
ITEM_CHILD_RUN = "child_run"


class InlineNode(BaseModel):
    """The node a map runs per item: any node type that runs as an activity."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)
    retry: RetryConfig | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)


class MapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: Any = Field(description="A template that must render to a list")
    node: InlineNode | None = Field(
        default=None,
        description="Run per item; its config may use {{$item}} and {{$index}}",
    )
    workflow_id: str | None = Field(
        default=None, description="A child run of this published workflow per item"
    )
    config_source: Literal["published", "draft"] = "published"
    input_node: str | None = Field(
        default=None,
        description="workflow_id maps: the start_json node of the child that receives the "
        "item (default: its only start_json node)",
    )
    concurrency: int = Field(default=10, ge=1, le=MAX_CONCURRENCY)
    on_item_error: Literal["fail", "continue"] = "fail"

    @model_validator(mode="after")
    def _one_kind(self) -> MapConfig:
        whole_reference = isinstance(self.items, str) and templating.is_whole_reference(self.items)
        if not (isinstance(self.items, list) or whole_reference):
            raise ValueError(
                'items must be a list or one {{reference}} to a list (e.g. "{{node.values}}")'
            )
        if self.node is None and self.workflow_id is None:
            raise ValueError("give either node or workflow_id")
        if self.node is not None and self.workflow_id is not None:
            raise ValueError("give node or workflow_id, not both")
        if self.workflow_id is None and self.input_node is not None:
            raise ValueError("input_node goes with workflow_id")
        return self

    @field_validator("workflow_id")
    @classmethod
    def _workflow_id(cls, value: str | None) -> str | None:
        if value is not None and not ids.is_valid(ids.WORKFLOW, value):
            raise ValueError("must be a workflow id (wf_...)")
        return value


ItemStatus = Literal["pending", "running", "completed", "error", "cancelled"]


class ItemOutcome(BaseModel):
    """One item of a map, as the items endpoint shows it."""

    index: int
    status: ItemStatus
    # The map execution that produced it: 1, then one more per retry that ran it again.
    attempt: int = 0
    output: Any = None
    error: OutcomeError | None = None
    # workflow_id maps: the item's child run (its run id).
    child_run_id: str | None = None


class MapProgress(BaseModel):
    total: int = 0
    completed: int = 0
    failed: int = 0
    running: int = 0


class MapInput(BaseModel):
    """The input of a map's child workflow (workflows/maps.py), again at each continue-as-new
    with the outcomes settled so far in `done`."""

    run_id: str
    node_id: str
    label: str = ""
    # The inline node's task: the node (its id is the map's), the outputs and vars it reads.
    task: NodeTaskInput
    # How the inline node's type runs (its plan, frozen by `runlane.map_prepare`).
    item_execution: str
    item_timeout_s: float
    items: list[Any]
    concurrency: int
    on_item_error: Literal["fail", "continue"]
    items_per_execution: int
    # 1 for a map's first execution, one more for each retry that runs it again.
    execution: int = 1
    done: list[ItemOutcome] = Field(default_factory=list)


class MapItemsQuery(BaseModel):
    offset: int = 0
    limit: int = 50


class MapPrepareInput(BaseModel):
    # The map node's task: its config and the outputs its templates read.
    task: NodeTaskInput
    child_workflow_id: str


class MapPrepareResult(BaseModel):
    items: list[Any] | None = None
    # Why `items` is None: the template did not render to a list.
    error: OutcomeError | None = None
    # Completed items of the previous execution of this map (a retry reuses them).
    previous: list[ItemOutcome] = Field(default_factory=list)
    execution: int = 1
    items_per_execution: int = 1000
    item_execution: str = "remote"
    item_timeout_s: float = 30.0


class MapEvaluateInput(BaseModel):
    task: NodeTaskInput  # the inline node's task, without item
    indices: list[int]
    items: list[Any]
    attempt: int


class MapEvaluateResult(BaseModel):
    """Outcomes of the first items of the chunk (all of them unless the size budget ran out)."""

    outcomes: list[ItemOutcome] = Field(default_factory=list)


class MapResult(BaseModel):
    """What a map child records when it ends: every settled item, in order."""

    total: int
    outcomes: list[ItemOutcome] = Field(default_factory=list)
    execution: int = 1


def map_output(result: MapResult) -> dict[str, Any]:
    """The node's output: results in item order (null for items that failed), and the errors."""
    items: list[Any] = [None] * result.total
    errors: list[dict[str, Any]] = []
    for outcome in result.outcomes:
        if outcome.status == "completed":
            items[outcome.index] = outcome.output
        elif outcome.status == "error" and outcome.error is not None:
            errors.append(
                {
                    "index": outcome.index,
                    "type": outcome.error.type,
                    "message": outcome.error.message,
                }
            )
    return {"items": items, "errors": errors}


def progress_of(result: MapResult, running: int = 0) -> MapProgress:
    return MapProgress(
        total=result.total,
        completed=sum(1 for o in result.outcomes if o.status == "completed"),
        failed=sum(1 for o in result.outcomes if o.status == "error"),
        running=running,
    )


def _short(message: str) -> str:
    return message if len(message) <= _MESSAGE_CHARS else message[:_MESSAGE_CHARS] + "…"


class MapActivities:
    def __init__(
        self,
        client: Client,
        registry: Mapping[str, NodeType],
        *,
        items_per_execution: int = 1000,
        ledger: Ledger | None = None,
    ) -> None:
        self._client = client
        self._registry = registry
        self._items_per_execution = items_per_execution
        # Counts the items each chunk of pure items evaluated (usage's nodes_executed).
        self._ledger = ledger

    @activity.defn(name=MAP_PREPARE)
    async def prepare(self, request: MapPrepareInput) -> MapPrepareResult:
        config = MapConfig.model_validate(request.task.node.config)
        try:
            items = templating.render(config.items, request.task.template_context())
        except templating.RenderedTooLarge as err:
            return MapPrepareResult(error=OutcomeError(type="InputTooLarge", message=str(err)))
        if not isinstance(items, list):
            kind = "null" if items is None else type(items).__name__
            return MapPrepareResult(
                error=OutcomeError(
                    type="MapItemsNotAList", message=f"items rendered to {kind}, not a list"
                )
            )
        if config.node is None:  # workflow_id: a child run per item (workflows/maps.py)
            item_execution, timeout = ITEM_CHILD_RUN, 0.0
        else:
            spec = self._registry[config.node.type]
            item_execution = spec.execution
            timeout = config.node.timeout_s or spec.default_timeout_s
            own_timeout = config.node.config.get("timeout_s")
            if config.node.timeout_s is None and spec.execution == "remote" and own_timeout:
                timeout = float(own_timeout) + 5.0  # room for the node's own request timeout
        previous = await self._previous(request.child_workflow_id, len(items))
        return MapPrepareResult(
            item_execution=item_execution,
            item_timeout_s=timeout,
            items=items,
            previous=[o for o in previous.outcomes if o.status == "completed"],
            execution=previous.execution + 1 if previous.total else 1,
            items_per_execution=self._items_per_execution,
        )

    async def _previous(self, child_workflow_id: str, total: int) -> MapResult:
        """What the last execution of this map recorded (none on a first run): its result or
        failure's details when it ended so; when it was cancelled or terminated, the outcomes
        its last run started with plus the items that run completed (activity results and
        chunks of pure items, child runs of a workflow_id map, in its history). Only when it
        mapped as many items."""
        handle = self._client.get_workflow_handle(child_workflow_id)
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return MapResult(total=0)
            raise
        if description.status == WorkflowExecutionStatus.RUNNING:
            return MapResult(total=0)
        last = self._client.get_workflow_handle(child_workflow_id, run_id=description.run_id)
        decode = self._client.data_converter.decode
        result: MapResult | None = None
        outcomes: dict[int, ItemOutcome] = {}
        scheduled: dict[int, str] = {}  # ActivityTaskScheduled event id -> activity id
        child_items: dict[str, int] = {}  # child run id -> item index (workflow_id maps)
        execution = 1
        async for event in last.fetch_history_events():
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                [started] = await decode(payloads, [MapInput])
                if not isinstance(started, MapInput):
                    return MapResult(total=0)
                execution = started.execution
                outcomes = {outcome.index: outcome for outcome in started.done}
                result = MapResult(total=len(started.items), execution=execution)
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled[event.event_id] = (
                    event.activity_task_scheduled_event_attributes.activity_id
                )
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                completed = event.activity_task_completed_event_attributes
                activity_id = scheduled.get(completed.scheduled_event_id, "")
                if activity_id.startswith("item-") and activity_id[5:].isdigit():
                    [output] = await decode(completed.result.payloads, [NodeTaskOutput])
                    if isinstance(output, NodeTaskOutput):
                        index = int(activity_id[5:])
                        outcomes[index] = ItemOutcome(
                            index=index, status="completed", attempt=execution, output=output.output
                        )
            elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
                marker = event.marker_recorded_event_attributes
                if marker.marker_name != LOCAL_ACTIVITY_MARKER or "result" not in marker.details:
                    continue
                [data] = marker.details["data"].payloads
                recorded = json.loads(data.data)
                local_id = str(recorded.get("activity_id", ""))
                if recorded.get("activity_type") == MAP_EVALUATE:
                    [chunk] = await decode(marker.details["result"].payloads, [MapEvaluateResult])
                    if isinstance(chunk, MapEvaluateResult):
                        outcomes.update((outcome.index, outcome) for outcome in chunk.outcomes)
                elif local_id.startswith("child-") and local_id[6:].isdigit():
                    # A workflow_id map's item: the run id its child run was prepared with.
                    [prepared] = await decode(marker.details["result"].payloads, [PreparedChild])
                    if isinstance(prepared, PreparedChild):
                        child_items[prepared.run_id] = int(local_id[6:])
            elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
                ended_child = event.child_workflow_execution_completed_event_attributes
                child_run_id = ended_child.workflow_execution.workflow_id
                index = child_items.get(child_run_id, -1)
                if index >= 0:
                    [state] = await decode(ended_child.result.payloads, [dict])
                    outcomes[index] = ItemOutcome(
                        index=index,
                        status="completed",
                        attempt=execution,
                        output=state.get("final_outputs") if isinstance(state, dict) else None,
                        child_run_id=child_run_id,
                    )
            elif kind in (
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
            ):
                if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                    closed = event.workflow_execution_completed_event_attributes
                    payloads = closed.result.payloads
                else:
                    failure = event.workflow_execution_failed_event_attributes.failure
                    payloads = failure.application_failure_info.details.payloads
                if payloads:
                    [ended] = await decode(payloads, [MapResult])
                    if isinstance(ended, MapResult):
                        return ended if ended.total == total else MapResult(total=0)
        if result is None or result.total != total:
            return MapResult(total=0)
        result.outcomes = [outcomes[index] for index in sorted(outcomes)]
        return result

    @activity.defn(name=MAP_EVALUATE)
    async def evaluate(self, request: MapEvaluateInput) -> MapEvaluateResult:
        evaluate = self._registry[request.task.node.type].evaluate
        assert evaluate is not None
        outcomes: list[ItemOutcome] = []
        used = 0
        for index, item in zip(request.indices, request.items, strict=True):
            task = request.task.model_copy(update={"item": item, "index": index})
            try:
                output = evaluate(task)
            except NodeError as err:
                outcomes.append(
                    ItemOutcome(
                        index=index,
                        status="error",
                        attempt=request.attempt,
                        error=OutcomeError(type=err.type, message=_short(err.message)),
                    )
                )
                continue
            except templating.RenderedTooLarge as err:
                outcomes.append(
                    ItemOutcome(
                        index=index,
                        status="error",
                        attempt=request.attempt,
                        error=OutcomeError(type="OutputTooLarge", message=str(err)),
                    )
                )
                continue
            used += len(json.dumps(output, default=str))
            if outcomes and used > EVALUATE_BUDGET_BYTES:
                break  # the rest goes to the next call
            outcomes.append(
                ItemOutcome(index=index, status="completed", attempt=request.attempt, output=output)
            )
        if self._ledger is not None and outcomes:
            await self._ledger.record(chunk_record(request.task, len(outcomes)))
        return MapEvaluateResult(outcomes=outcomes)


NODE_TYPES = (
    NodeType(
        name="map",
        role="task",
        config_model=MapConfig,
        execution="workflow",
        description="Runs `node` once per element of `items` (a child workflow); "
        "output {items, errors} in item order",
        default_timeout_s=86_400.0,
        behaviour=NodeBehaviour(map=True),
        inline_node_field="node",
    ),
)
