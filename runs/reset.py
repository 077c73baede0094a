"""Carrying out a retry in Temporal: reading an execution's reset points, and the reset."""

from __future__ import annotations

from temporalio.api.common.v1 import WorkflowExecution as ExecutionRef
from temporalio.api.enums.v1 import ResetReapplyExcludeType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from runlane.errors import Conflict
from runs.retry_plan import RetryPlan, TaskBoundaries, retry_request
from workflows.models import RetryRequest, RunState
from workflows.run_workflow import RunWorkflow

_EXCLUDED_ON_RESET = [
    ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL,
    ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE,
    ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_CANCEL_REQUEST,
    ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_NEXUS,
]


async def task_boundaries(
    client: Client, run_id: str, temporal_run_id: str | None
) -> TaskBoundaries:
    handle = client.get_workflow_handle(run_id, run_id=temporal_run_id)
    return TaskBoundaries.from_events([event async for event in handle.fetch_history_events()])


async def reset_run(
    client: Client,
    *,
    run_id: str,
    temporal_run_id: str | None,
    state: RunState,
    plan: RetryPlan,
    request_id: str,
    request: RetryRequest | None = None,
    send_signal: bool = True,
) -> str:
    """Reset the execution to the plan's point, then tell the new execution its attempt
    (`send_signal` False: the caller sends `request` itself, as the recorder of histories does
    to record a reset execution that waited for it).

    Temporal does not deduplicate resets, so callers make sure only one happens per attempt
    (the run service's retry slot); `request_id` names the attempt so a replay can tell
    whether its reset already happened. Returns the new Temporal run id.
    """
    assert plan.allowed and plan.reset_event_id is not None
    request = request or retry_request(state, plan, request_id)
    where = f"node {plan.resumed_from_node_id}" if plan.resumed_from_node_id else "the start"
    if plan.from_ == "node":
        where = f"the start, keeping what is not downstream of node {plan.node_id}"
    try:
        response = await client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=ExecutionRef(workflow_id=run_id, run_id=temporal_run_id or ""),
                reason=f"Runlane retry (attempt {request.attempt}) from {where}",
                workflow_task_finish_event_id=plan.reset_event_id,
                request_id=request_id,
                reset_reapply_exclude_types=_EXCLUDED_ON_RESET,
            )
        )
    except RPCError as err:
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise
        raise Conflict(
            "retry_impossible",
            f"Temporal cannot reset run {run_id} ({err.message}); its history may no longer "
            "be retained. Restart or rerun it instead (new run, same inputs).",
        ) from err
    # Temporal 1.32 accepts no signal as a post-reset operation, so it follows the reset;
    # the workflow waits for it before ending (Attempts.settle, workflows/attempts.py).
    if send_signal:
        handle = client.get_workflow_handle(run_id, run_id=response.run_id)
        await handle.signal(RunWorkflow.retry, request)
    return response.run_id
