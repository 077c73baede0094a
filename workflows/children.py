"""Child runs: a node that runs another workflow as a run of its own, a Temporal child workflow
of this one (operators see it as such in the Temporal UI). Used inside the run workflow.

The child's definition and plans were frozen into this run's input when it started
(`RunInput.subworkflows`): workflow code reads no store. A local activity prepares the child
(its inputs rendered and checked, its run id; activities/subworkflow.py), recorded in history,
then the child starts with `trigger = {"type": "parent", "parent_run_id": ...}` and the search
attributes of any run plus `RunlaneParentRunId`. The node's output is the child's
`final_outputs`; a child that fails fails the node with the child's error; cancelling this run
cancels the child (and so does this run closing any other way: REQUEST_CANCEL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities import subworkflow
    from activities.maps import MapConfig
    from activities.node_type import NodeBehaviour
    from activities.subworkflow import (
        ChildStart,
        PreparedChild,
        SubworkflowConfig,
        SubworkflowTask,
        target_key,
    )
    from runlane import search_attributes
    from runlane.definition import Definition, Node
    from workflows.models import (
        FrozenWorkflow,
        NodePlan,
        RunInput,
        RunInputs,
        StepError,
        StepState,
        Trigger,
        node_behaviour,
    )
    from workflows.node_inputs import NodeInputs
    from workflows.steps import NodeFailed, describe_failure

WORKFLOW_TYPE = "RunWorkflow"
PREPARE_TIMEOUT = timedelta(seconds=30)
PREPARE_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3)


def child_targets(
    definition: Definition, plans: Mapping[str, NodePlan], known: Mapping[str, FrozenWorkflow]
) -> dict[str, FrozenWorkflow]:
    """The targets a run of `definition` needs, its children's included (from `known`)."""
    found: dict[str, FrozenWorkflow] = {}
    pending = [(definition, plans)]
    while pending:
        current, current_plans = pending.pop()
        for node in current.nodes:
            plan = current_plans.get(node.id)
            if plan is None:
                continue
            config = run_target(node, node_behaviour(plan, node.type))
            if config is None:
                continue
            key = target_key(config)
            target = known.get(key)
            if target is not None and key not in found:
                found[key] = target
                pending.append((target.definition, target.plans))
    return found


def run_target(node: Node, behaviour: NodeBehaviour) -> SubworkflowConfig | None:
    """The workflow a node runs child runs of: a subworkflow's, or a map's `workflow_id`."""
    if behaviour.child_run:
        return SubworkflowConfig.model_validate(node.config)
    if behaviour.map:
        config = MapConfig.model_validate(node.config)
        if config.workflow_id is not None:
            return SubworkflowConfig(
                workflow_id=config.workflow_id, config_source=config.config_source
            )
    return None


def starts(target: FrozenWorkflow) -> list[ChildStart]:
    starts: list[ChildStart] = []
    for node in target.definition.nodes:
        kind = node_behaviour(target.plans[node.id], node.type).run_input
        if kind is None:
            continue
        schema = node.config.get("schema") if kind == "json" else None
        starts.append(
            ChildStart(
                node_id=node.id, kind=kind, json_schema=schema if isinstance(schema, dict) else None
            )
        )
    return starts


class Children:
    def __init__(self, run_input: RunInput, node_inputs: NodeInputs) -> None:
        self._input = run_input
        self._node_inputs = node_inputs

    def target(self, config: SubworkflowConfig) -> FrozenWorkflow | None:
        """The target frozen into this run's input for a node naming `config`'s workflow."""
        return self._input.subworkflows.get(target_key(config))

    async def run(self, node: Node, plan: NodePlan, step: StepState) -> Any:
        """Run the node's child to its end: its final outputs, or NodeFailed with its error."""
        config = SubworkflowConfig.model_validate(node.config)
        target = self.target(config)
        if target is None:  # (the run service resolves every target before the run starts)
            raise NodeFailed(
                node.id,
                StepError(
                    type="SubworkflowUnavailable",
                    message=f"workflow {config.workflow_id} ({config.config_source}) was not "
                    "resolved when this run started",
                ),
            )
        try:
            prepared = await workflow.execute_local_activity(
                subworkflow.NODE_TYPE,
                SubworkflowTask(task=self._node_inputs.task(node, plan), starts=starts(target)),
                result_type=PreparedChild,
                activity_id=node.id,
                start_to_close_timeout=PREPARE_TIMEOUT,
                retry_policy=PREPARE_RETRY,
                summary=f"Prepare the child run of {node.label or node.id}",
            )
        except FailureError as err:
            # (A local activity's failure may arrive as its cause itself: batches.py.)
            cause = err.cause if isinstance(err, ActivityError) else err
            if isinstance(cause, CancelledError):
                raise asyncio.CancelledError() from err
            raise NodeFailed(node.id, describe_failure(err)) from None
        step.child_run_id = prepared.run_id
        return await self.execute(node.id, target, prepared, timeout_s=node.timeout_s)

    async def execute(
        self,
        node_id: str,
        target: FrozenWorkflow,
        prepared: PreparedChild,
        *,
        timeout_s: float | None = None,
    ) -> Any:
        """Start a child run of `target` with the prepared id and inputs (recorded by an
        activity before: never picked in workflow code), and wait for its end: its final
        outputs, NodeFailed naming `node_id` with the child's error, or CancelledError when
        this run is cancelled (the child is cancelled with it)."""
        return await execute_child(
            organization_id=self._input.organization_id,
            parent_run_id=self._input.run_id,
            known=self._input.subworkflows,
            events=self._input.events,
            node_id=node_id,
            target=target,
            prepared=prepared,
            timeout_s=timeout_s,
        )


async def execute_child(
    *,
    organization_id: str,
    parent_run_id: str,
    known: Mapping[str, FrozenWorkflow],
    events: list[str],
    node_id: str,
    target: FrozenWorkflow,
    prepared: PreparedChild,
    timeout_s: float | None = None,
) -> Any:
    """`Children.execute` for any workflow: a child run of `target` whose trigger names the
    run `parent_run_id` (a map's child workflow starts its items' runs so, for the run it
    belongs to); `known` holds the targets the child's own child runs need, `events` the
    event types the organization subscribed when the parent started (the child emits them).
    """
    child_input = RunInput(
        run_id=prepared.run_id,
        organization_id=organization_id,
        workflow=target.workflow,
        definition=target.definition,
        plans=target.plans,
        inputs=RunInputs(json_data=prepared.json_data, text_data=prepared.text_data),
        trigger=Trigger(type="parent", parent_run_id=parent_run_id),
        created_at=prepared.created_at,
        subworkflows=child_targets(target.definition, target.plans, known),
        events=list(events),
    )
    version = target.workflow.version
    try:
        state = await workflow.execute_child_workflow(
            WORKFLOW_TYPE,
            child_input,
            id=prepared.run_id,
            result_type=dict,
            cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            execution_timeout=timedelta(seconds=timeout_s) if timeout_s else None,
            search_attributes=TypedSearchAttributes(_search_attributes(child_input)),
            static_summary=f"{target.workflow.name_at_run_time} "
            f"({'v' + str(version) if version else 'draft'}, child of {parent_run_id} "
            f"node {node_id})",
        )
    except ChildWorkflowError as err:
        raise _failure(node_id, prepared.run_id, err) from None
    return state.get("final_outputs")


def _failure(node_id: str, child_run_id: str, err: ChildWorkflowError) -> BaseException:
    cause = err.cause
    if isinstance(cause, CancelledError):
        task = asyncio.current_task()
        # This run is being cancelled (or the node stopped because a sibling failed):
        # the child was cancelled with it.
        if workflow.cancellation_reason() is not None or (task and task.cancelling()):
            return asyncio.CancelledError()
        error = StepError(type="ChildCancelled", message=f"child run {child_run_id} was cancelled")
    elif isinstance(cause, ApplicationError):
        error = _child_error(child_run_id, cause)
    elif isinstance(cause, TemporalTimeoutError):
        error = StepError(
            type="Timeout", message=f"child run {child_run_id} timed out (node timeout_s)"
        )
    else:
        error = StepError(
            type=type(cause).__name__ if cause else "ChildFailed",
            message=f"child run {child_run_id} ended: {cause or err}",
        )
    return NodeFailed(node_id, error)


def _child_error(child_run_id: str, cause: ApplicationError) -> StepError:
    """The child's own error (RunError: type and message, where it failed), when it carries
    its final state (RunWorkflow raises it so); else the failure as Temporal reports it."""
    details = cause.details[0] if cause.details else None
    error = details.get("error") if isinstance(details, dict) else None
    if isinstance(error, dict) and isinstance(error.get("type"), str):
        where = f", node '{error['node_id']}'" if error.get("node_id") else ""
        return StepError(
            type=error["type"],
            message=f"{error.get('message', '')} (child run {child_run_id}{where})",
        )
    return StepError(
        type=cause.type or "ChildFailed", message=f"{cause.message} (child run {child_run_id})"
    )


def _search_attributes(child: RunInput) -> list[SearchAttributePair[Any]]:
    """What every run carries (runs/starter.py), and the parent run id."""
    return [
        SearchAttributePair(search_attributes.ORGANIZATION, child.organization_id),
        SearchAttributePair(search_attributes.WORKFLOW_ID, child.workflow.workflow_id),
        SearchAttributePair(search_attributes.TRIGGER_TYPE, child.trigger.type),
        SearchAttributePair(search_attributes.RUN_STATUS, "pending"),
        SearchAttributePair(
            search_attributes.CREATED_AT_US, search_attributes.microseconds(child.created_at)
        ),
        SearchAttributePair(search_attributes.PARENT_RUN_ID, child.trigger.parent_run_id or ""),
    ]
