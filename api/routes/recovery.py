"""Recovery: restart and rerun (new runs, copied inputs), retry (the same run, reset)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Response, status

from api import schemas
from api.deps import IdempotencyDep, OrgDep, RegistryDep, SettingsDep, TemporalDep, WorkflowsDep
from api.errors import conflict, not_found
from api.idempotency import Command, claim, previous_result
from api.recovery import (
    RETRYABLE_STATUSES,
    plan_retry,
    reset_run,
    retry_request,
    task_boundaries,
)
from api.routes.runs import ReaderDep, StarterDep, definition_for, record_of
from api.run_reader import RunView
from api.run_starter import RequestedInputs
from runlane import ids
from workflows.models import TERMINAL_STATUSES, RunInputs, Trigger, initial_state

router = APIRouter(prefix="/v1/workflows/runs", tags=["recovery"])

# How long a replayed retry waits for the first call's retry to show before concluding that
# the first call was lost before its reset (and making it).
_FIRST_RETRY_GRACE_S = 5.0
_REPLAY: dict[int | str, dict[str, Any]] = {
    200: {"model": schemas.RunOut, "description": "Replay of an earlier command_id"}
}


def _requested(inputs: RunInputs) -> RequestedInputs:
    """A run's inputs as a new request: documents by reference, never re-uploaded."""
    return RequestedInputs(
        documents={
            node_id: schemas.DocumentInput(file_id=ref.file_id)
            for node_id, ref in inputs.documents.items()
        },
        json_inputs=dict(inputs.json_data),
        text_inputs=dict(inputs.text_data),
    )


async def _ended_source(reader: ReaderDep, org: str, run_id: str, operation: str) -> RunView:
    view = await reader.get(org, run_id)
    if view.state.status not in TERMINAL_STATUSES:
        raise conflict(
            "run_not_ended",
            f"Run {run_id} is {view.state.status}; only ended runs can be {operation}ed "
            "(cancel it first, or wait for it to end).",
        )
    return view


async def _replayed(
    reader: ReaderDep, idempotency: IdempotencyDep, command: Command, org: str
) -> RunView | None:
    previous = await previous_result(idempotency, command)
    if previous is not None and await reader.exists(org, previous):
        return await reader.get(org, previous)
    return None


@router.post(
    "/{run_id}/restart",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    responses=_REPLAY,
)
async def restart_run(
    run_id: str,
    response: Response,
    org: OrgDep,
    settings: SettingsDep,
    workflows: WorkflowsDep,
    registry: RegistryDep,
    idempotency: IdempotencyDep,
    reader: ReaderDep,
    starter: StarterDep,
    body: Annotated[schemas.RestartBody | None, Body()] = None,
) -> schemas.RunOut:
    """New run with the source's inputs and the workflow's current published (or draft)
    definition; the source is untouched."""
    body = body or schemas.RestartBody()
    command = Command(
        org, body.command_id, "restart", run_id, {"config_source": body.config_source}
    )
    return await _derive(
        "restart",
        run_id,
        body.config_source,
        command,
        response,
        org,
        settings,
        workflows,
        registry,
        idempotency,
        reader,
        starter,
    )


@router.post(
    "/{run_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    responses=_REPLAY,
)
async def rerun_run(
    run_id: str,
    response: Response,
    org: OrgDep,
    settings: SettingsDep,
    workflows: WorkflowsDep,
    registry: RegistryDep,
    idempotency: IdempotencyDep,
    reader: ReaderDep,
    starter: StarterDep,
    body: Annotated[schemas.CommandBody | None, Body()] = None,
) -> schemas.RunOut:
    """New run with the source's inputs and the same snapshot the source ran."""
    command = Command(org, body.command_id if body else None, "rerun", run_id, {})
    return await _derive(
        "rerun",
        run_id,
        None,
        command,
        response,
        org,
        settings,
        workflows,
        registry,
        idempotency,
        reader,
        starter,
    )


async def _derive(
    kind: Literal["restart", "rerun"],
    run_id: str,
    config_source: Literal["published", "draft"] | None,
    command: Command,
    response: Response,
    org: str,
    settings: SettingsDep,
    workflows: WorkflowsDep,
    registry: RegistryDep,
    idempotency: IdempotencyDep,
    reader: ReaderDep,
    starter: StarterDep,
) -> schemas.RunOut:
    replay = await _replayed(reader, idempotency, command, org)
    if replay is not None:
        response.status_code = status.HTTP_200_OK
        return record_of(replay, settings)
    source = await _ended_source(reader, org, run_id, kind)
    source_input = await reader.run_input(run_id)
    if config_source is not None:  # restart: the workflow's current definition
        workflow = await workflows.get(org, source_input.workflow.workflow_id)
        if workflow is None:
            raise not_found("workflow", source_input.workflow.workflow_id)
        definition, ref = await definition_for(workflow, config_source, workflows, registry)
        # The current definition may name other start nodes: checked like a new start.
        inputs = await starter.resolve_inputs(org, definition, _requested(source.state.inputs))
    else:  # rerun: exactly what the source ran
        definition, ref, inputs = (
            source_input.definition,
            source_input.workflow,
            source.state.inputs,
        )
    new_id = (
        ids.derived_id(ids.RUN, org, command.command_id)
        if command.command_id
        else ids.new_id(ids.RUN)
    )
    new_id, replayed = await claim(idempotency, command, new_id)
    run_input = starter.run_input(
        run_id=new_id,
        org=org,
        workflow=ref,
        definition=definition,
        inputs=inputs,
        trigger=Trigger(type=kind, source_run_id=run_id),
    )
    temporal_run_id = await starter.start(
        run_input, attach_to_existing=command.command_id is not None
    )
    if replayed:
        response.status_code = status.HTTP_200_OK
        return record_of(await reader.get(org, new_id), settings)
    view = RunView(state=initial_state(run_input), temporal_run_id=temporal_run_id)
    return record_of(view, settings)


async def _first_retry(
    reader: ReaderDep, org: str, run_id: str, request_id: str, view: RunView
) -> RunView | None:
    """For a replayed retry: the run once the first call's retry shows (its attempt, or the
    run no longer ended), waiting a little for a first call still in flight; None when it
    never shows, i.e. the first call was lost before its reset."""
    deadline = time.monotonic() + _FIRST_RETRY_GRACE_S
    while True:
        if view.state.status not in RETRYABLE_STATUSES or any(
            a.request_id == request_id for a in view.state.attempts
        ):
            return view
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.1)
        view = await reader.get(org, run_id)


@router.get(
    "/{run_id}/retry-plan", response_model=schemas.RetryPlanOut, response_model_by_alias=True
)
async def get_retry_plan(
    run_id: str,
    org: OrgDep,
    client: TemporalDep,
    reader: ReaderDep,
    registry: RegistryDep,
    from_: Annotated[Literal["failure_point", "start"], Query(alias="from")] = "failure_point",
) -> schemas.RetryPlanOut:
    """What a retry would reuse, run again, and repeat of side effects; changes nothing."""
    view = await reader.get(org, run_id)
    run_input = await reader.run_input(run_id)
    plans = {node_id: plan.execution for node_id, plan in run_input.plans.items()}
    boundaries = await task_boundaries(client, run_id, view.temporal_run_id)
    plan = plan_retry(view.state, plans, registry, from_, boundaries)
    return schemas.RetryPlanOut(
        from_=plan.from_,
        allowed=plan.allowed,
        reason=plan.reason,
        reuse=plan.reuse,
        rerun=plan.rerun,
        repeated_side_effects=plan.repeated_side_effects,
    )


@router.post(
    "/{run_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    responses=_REPLAY,
)
async def retry_run(
    run_id: str,
    response: Response,
    org: OrgDep,
    settings: SettingsDep,
    client: TemporalDep,
    registry: RegistryDep,
    idempotency: IdempotencyDep,
    reader: ReaderDep,
    starter: StarterDep,
    body: Annotated[schemas.RetryBody | None, Body()] = None,
) -> schemas.RunOut:
    """The same run, reset to its failure point (or re-executed from the start with
    overriding inputs); 409 unless it is in error or cancelled."""
    body = body or schemas.RetryBody()
    command = Command(
        org,
        body.command_id,
        "retry",
        run_id,
        body.model_dump(mode="json", exclude={"command_id"}, by_alias=True),
    )
    view = await reader.get(org, run_id)
    request_id = (
        ids.derived_id("retry", org, body.command_id) if body.command_id else uuid.uuid4().hex
    )
    replay_checked = await previous_result(idempotency, command) is not None
    if replay_checked:
        # A replay: reset only if the first call's reset never happened (lost midway).
        done = await _first_retry(reader, org, run_id, request_id, view)
        if done is not None:
            response.status_code = status.HTTP_200_OK
            return record_of(done, settings)
    run_input = await reader.run_input(run_id)
    plans = {node_id: plan.execution for node_id, plan in run_input.plans.items()}
    boundaries = await task_boundaries(client, run_id, view.temporal_run_id)
    plan = plan_retry(view.state, plans, registry, body.from_, boundaries)
    if not plan.allowed:
        raise conflict("retry_not_allowed", plan.reason or "This run cannot be retried.")
    _, replayed = await claim(idempotency, command, run_id)
    if replayed and not replay_checked:
        # A concurrent identical call claimed the command first and is retrying the run:
        # Temporal does not deduplicate resets, so a second one would reset the run again.
        done = await _first_retry(reader, org, run_id, request_id, view)
        if done is not None:
            response.status_code = status.HTTP_200_OK
            return record_of(done, settings)
    if body.from_ == "start":
        requested = _requested(view.state.inputs)
        requested.documents.update(body.documents or {})
        requested.json_inputs.update(body.json_inputs or {})
        requested.text_inputs.update(body.text_inputs or {})
        inputs = await starter.resolve_inputs(org, run_input.definition, requested)
        fresh = run_input.model_copy(
            update={"inputs": inputs, "retry": retry_request(view.state, plan, request_id)}
        )
        await starter.start(fresh, reuse_ended_id=True)
    else:
        await reset_run(
            client,
            run_id=run_id,
            temporal_run_id=view.temporal_run_id,
            state=view.state,
            plan=plan,
            request_id=request_id,
        )
    if replayed:
        response.status_code = status.HTTP_200_OK
    return record_of(await reader.get(org, run_id), settings)
