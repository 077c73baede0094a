"""Runs: start, read, list, steps, progress events, cancel."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from api import schemas
from api.deps import JsonBody, OrgDep, RunsDep, SettingsDep
from api.events import run_events
from api.run_views import record_of, requested_inputs, step_records
from runs.models import Outcome
from runs.reader import RunFilter

router = APIRouter(
    prefix="/v1/workflows",
    tags=["runs"],
    dependencies=[JsonBody],
    responses=schemas.ERROR_RESPONSES,
)

RunStatusFilter = Literal[
    "pending", "running", "waiting_for_human", "completed", "error", "cancelled"
]
TriggerFilter = Literal["api", "restart", "rerun", "schedule", "webhook"]
OptionalCommand = Annotated[schemas.CommandBody | None, Body()]


def answer(outcome: Outcome, response: Response, settings: SettingsDep) -> schemas.RunOut:
    """A command's run: 202 when it was done now, 200 for the replay of an earlier one."""
    if outcome.replayed:
        response.status_code = status.HTTP_200_OK
    return record_of(outcome.view, settings)


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
    runs: RunsDep,
) -> schemas.RunOut:
    """Start a run with documents, JSON and text keyed by start node id."""
    outcome = await runs.start(
        org,
        workflow_id,
        requested_inputs(body.documents, body.json_inputs, body.text_inputs),
        config_source=body.config_source,
        command_id=body.command_id,
        body=body.model_dump(mode="json", exclude={"command_id"}),
    )
    return answer(outcome, response, settings)


@router.get("/runs", response_model=schemas.Page[schemas.RunOut])
async def list_runs(
    org: OrgDep,
    settings: SettingsDep,
    runs: RunsDep,
    workflow_id: str | None = None,
    status: RunStatusFilter | None = None,
    trigger_type: TriggerFilter | None = None,
    created_after: Annotated[
        schemas.Rfc3339 | None, Query(description="RFC 3339; runs created at or after it")
    ] = None,
    created_before: Annotated[
        schemas.Rfc3339 | None, Query(description="RFC 3339; runs created before it")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> schemas.Page[schemas.RunOut]:
    """List runs, newest first by `timing.created_at` whatever their status."""
    page = await runs.list_runs(
        org,
        RunFilter(
            workflow_id=workflow_id,
            status=status,
            trigger_type=trigger_type,
            created_after=created_after,
            created_before=created_before,
        ),
        limit=limit,
        cursor=cursor,
    )
    return schemas.Page(
        data=[record_of(view, settings) for view in page.views], next_cursor=page.next_cursor
    )


@router.get("/runs/{run_id}", response_model=schemas.RunOut)
async def get_run(run_id: str, org: OrgDep, settings: SettingsDep, runs: RunsDep) -> schemas.RunOut:
    """Read a run (with the runs restarted or rerun from it)."""
    view = await runs.get(org, run_id)
    return record_of(view, settings, await runs.derived_run_ids(org, run_id))


@router.get("/runs/{run_id}/steps", response_model=schemas.DataList[schemas.StepOut])
async def get_run_steps(
    run_id: str, org: OrgDep, runs: RunsDep
) -> schemas.DataList[schemas.StepOut]:
    """A run's steps, one per node, in topological order."""
    view = await runs.get(org, run_id)
    return schemas.DataList(data=step_records(view.state))


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_run_events(
    run_id: str, request: Request, org: OrgDep, settings: SettingsDep, runs: RunsDep
) -> StreamingResponse:
    """Progress as Server-Sent Events (`run`, `step`, `end`) until the run ends."""
    await runs.get(org, run_id)  # 404 before the stream opens
    return StreamingResponse(
        run_events(runs, settings, org, run_id, request.is_disconnected),
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
    runs: RunsDep,
    body: OptionalCommand = None,
) -> schemas.RunOut:
    """Cancel a run; 409 if it already ended."""
    outcome = await runs.cancel(org, run_id, command_id=body.command_id if body else None)
    return answer(outcome, response, settings)
