"""Runs: start, read, list, steps, progress events, cancel."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from api import run_views, schemas
from api.deps import (
    FilesDep,
    IdempotencyDep,
    OrgDep,
    RegistryDep,
    SettingsDep,
    TemporalDep,
    WorkflowsDep,
)
from api.errors import conflict
from api.events import run_events
from api.idempotency import Command, claim, previous_result
from api.run_reader import RunReader, RunView
from api.run_starter import RequestedInputs, RunStarter, definition_for
from runlane.settings import Settings
from workflows.models import TERMINAL_STATUSES, RunInput, Trigger

router = APIRouter(prefix="/v1/workflows", tags=["runs"])

RunStatusFilter = Literal[
    "pending", "running", "waiting_for_human", "completed", "error", "cancelled"
]
TriggerFilter = Literal["api", "restart", "rerun", "schedule", "webhook"]


async def get_run_reader(client: TemporalDep) -> RunReader:
    return RunReader(client)


async def get_run_starter(
    client: TemporalDep,
    settings: SettingsDep,
    files: FilesDep,
    registry: RegistryDep,
    idempotency: IdempotencyDep,
    reader: Annotated[RunReader, Depends(get_run_reader)],
) -> RunStarter:
    return RunStarter(client, settings, files, registry, idempotency, reader)


ReaderDep = Annotated[RunReader, Depends(get_run_reader)]
StarterDep = Annotated[RunStarter, Depends(get_run_starter)]
OptionalCommand = Annotated[schemas.CommandBody | None, Body()]


def record_of(view: RunView, settings: Settings) -> schemas.RunOut:
    return run_views.run_record(view.state, settings=settings, temporal_run_id=view.temporal_run_id)


@router.post(
    "/{workflow_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    responses=schemas.REPLAY_RESPONSES,
)
async def start_run(
    workflow_id: str,
    body: schemas.RunCreate,
    response: Response,
    org: OrgDep,
    settings: SettingsDep,
    workflows: WorkflowsDep,
    registry: RegistryDep,
    idempotency: IdempotencyDep,
    reader: ReaderDep,
    starter: StarterDep,
) -> schemas.RunOut:
    """Start a run with documents, JSON and text keyed by start node id."""
    command = Command(
        org,
        body.command_id,
        "start",
        workflow_id,
        body.model_dump(mode="json", exclude={"command_id"}),
    )

    async def prepare(run_id: str) -> RunInput:
        definition, ref = await definition_for(
            org, workflow_id, body.config_source, workflows, registry
        )
        inputs = await starter.resolve_inputs(
            org, definition, RequestedInputs(body.documents, body.json_inputs, body.text_inputs)
        )
        return starter.run_input(
            run_id=run_id,
            org=org,
            workflow=ref,
            definition=definition,
            inputs=inputs,
            trigger=Trigger(),
        )

    launched = await starter.launch(command, prepare)
    if launched.replayed:
        response.status_code = status.HTTP_200_OK
    return record_of(launched.view, settings)


@router.get("/runs", response_model=schemas.Page[schemas.RunOut])
async def list_runs(
    org: OrgDep,
    settings: SettingsDep,
    reader: ReaderDep,
    workflow_id: str | None = None,
    status: RunStatusFilter | None = None,
    trigger_type: TriggerFilter | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> schemas.Page[schemas.RunOut]:
    """List runs from Temporal visibility: open runs first, then the most recently ended."""
    views, next_cursor = await reader.list_page(
        org,
        limit=limit,
        cursor=cursor,
        workflow_id=workflow_id,
        status=status,
        trigger_type=trigger_type,
    )
    return schemas.Page(data=[record_of(v, settings) for v in views], next_cursor=next_cursor)


@router.get("/runs/{run_id}", response_model=schemas.RunOut)
async def get_run(
    run_id: str, org: OrgDep, settings: SettingsDep, reader: ReaderDep
) -> schemas.RunOut:
    """Read a run (with the runs restarted or rerun from it)."""
    view = await reader.get(org, run_id)
    return run_views.run_record(
        view.state,
        settings=settings,
        temporal_run_id=view.temporal_run_id,
        derived_run_ids=await reader.derived_run_ids(org, run_id),
    )


@router.get("/runs/{run_id}/steps", response_model=schemas.DataList[schemas.StepOut])
async def get_run_steps(
    run_id: str, org: OrgDep, reader: ReaderDep
) -> schemas.DataList[schemas.StepOut]:
    """A run's steps, one per node, in topological order."""
    view = await reader.get(org, run_id)
    return schemas.DataList(data=run_views.step_records(view.state))


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_run_events(
    run_id: str, request: Request, org: OrgDep, settings: SettingsDep, reader: ReaderDep
) -> StreamingResponse:
    """Progress as Server-Sent Events (`run`, `step`, `end`) until the run ends."""
    await reader.get(org, run_id)  # 404 before the stream opens
    return StreamingResponse(
        run_events(reader, settings, org, run_id, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/runs/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    responses=schemas.REPLAY_RESPONSES,
)
async def cancel_run(
    run_id: str,
    response: Response,
    org: OrgDep,
    settings: SettingsDep,
    client: TemporalDep,
    idempotency: IdempotencyDep,
    reader: ReaderDep,
    body: OptionalCommand = None,
) -> schemas.RunOut:
    """Cancel a run; 409 if it already ended."""
    view = await reader.get(org, run_id)
    command = Command(org, body.command_id if body else None, "cancel", run_id, {})
    if await previous_result(idempotency, command) is not None:
        response.status_code = status.HTTP_200_OK
        return record_of(view, settings)
    if view.state.status in TERMINAL_STATUSES:
        raise conflict("run_ended", f"Run {run_id} already ended ({view.state.status}).")
    _, replay = await claim(idempotency, command, run_id)
    if replay:
        response.status_code = status.HTTP_200_OK
        return record_of(view, settings)
    await client.get_workflow_handle(run_id).cancel()
    return record_of(view, settings)
