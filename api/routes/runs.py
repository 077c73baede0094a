"""Runs: start, read, list, steps, progress events, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from api import run_views, schemas
from api.deps import (
    CURSOR_SHAPE,
    CallerDep,
    JsonBody,
    OrgDep,
    PageDep,
    RunsDep,
    SettingsDep,
    require,
)
from api.errors import error_body, status_of
from api.run_views import record_of, requested_inputs, step_record
from runlane.errors import RunlaneError
from runlane.permissions import Permission
from runlane.settings import Settings
from runs.models import Outcome
from runs.reader import RunFilter
from runs.service import RunService
from workflows.models import TERMINAL_STATUSES

router = APIRouter(
    prefix="/v1/workflows",
    tags=["runs"],
    dependencies=[JsonBody],
    responses=schemas.ERROR_RESPONSES,
)

RunStatusFilter = Literal[
    "pending", "running", "waiting_for_human", "completed", "error", "cancelled"
]
TriggerFilter = Literal["api", "restart", "rerun", "schedule", "webhook", "parent"]
OptionalCommand = Annotated[schemas.CommandBody | None, Body()]


# ---------------------------------------------------------------- progress as SSE
# Each open stream polls the run with short requests (describe + query) instead of holding a
# Temporal long-poll: the namespace allows only ~1,200 long-running requests in all, shared
# with the workers' own polls.

POLL_INTERVAL_S = 0.5
KEEPALIVE_EVERY_S = 15.0


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


async def run_events(
    runs: RunService,
    settings: Settings,
    org: str,
    run_id: str,
    is_disconnected: Callable[[], Awaitable[bool]],
    poll_interval_s: float = POLL_INTERVAL_S,
) -> AsyncIterator[str]:
    """`run` when the run's status changes, `step` when a step changes, `end` at the end;
    `error` (API.md's error body) when the run can no longer be read."""
    yield f"retry: {int(poll_interval_s * 2000)}\n\n"
    last_status: str | None = None
    last_steps: dict[str, tuple[Any, ...]] = {}
    quiet_s = 0.0
    while not await is_disconnected():
        try:
            view = await runs.get(org, run_id)
        except RunlaneError as err:
            # The status line went out with the stream's start: the error becomes the last
            # event, with the body every other error has (e.g. Temporal out of reach).
            yield sse("error", error_body(status_of(err), err.code, err.message, err.details))
            return
        state = view.state
        sent = False
        for step in run_views.step_records(state):
            key = (step.status, step.attempt, step.completed_at, step.review is not None)
            if last_steps.get(step.node_id) != key:
                last_steps[step.node_id] = key
                yield sse("step", step.model_dump(mode="json"))
                sent = True
        if state.status != last_status:
            last_status = state.status
            record = run_views.run_record(
                state, settings=settings, temporal_run_id=view.temporal_run_id
            )
            yield sse("run", record.model_dump(mode="json"))
            sent = True
        if state.status in TERMINAL_STATUSES:
            yield sse("end", {"run_id": run_id, "status": state.status})
            return
        quiet_s = 0.0 if sent else quiet_s + poll_interval_s
        if quiet_s >= KEEPALIVE_EVERY_S:
            quiet_s = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll_interval_s)


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
    dependencies=[require(Permission.RUN)],
)
async def start_run(
    workflow_id: str,
    body: schemas.RunCreate,
    response: Response,
    org: OrgDep,
    caller: CallerDep,
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
        started_by=caller.subject,
    )
    return answer(outcome, response, settings)


@router.get(
    "/runs", response_model=schemas.Page[schemas.RunOut], dependencies=[require(Permission.READ)]
)
async def list_runs(
    org: OrgDep,
    settings: SettingsDep,
    runs: RunsDep,
    paging: PageDep,
    workflow_id: Annotated[
        str | None,
        # Documented, checked by the run service (`invalid_filter`).
        Query(
            description="Only runs of this workflow",
            json_schema_extra={"pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        ),
    ] = None,
    status: RunStatusFilter | None = None,
    trigger_type: TriggerFilter | None = None,
    created_after: Annotated[
        schemas.Rfc3339 | None, Query(description="RFC 3339; runs created at or after it")
    ] = None,
    created_before: Annotated[
        schemas.Rfc3339 | None, Query(description="RFC 3339; runs created before it")
    ] = None,
    parent_run_id: Annotated[
        str | None,
        # Documented, checked by the run service (`invalid_filter`).
        Query(
            description="Only the child runs this run's subworkflow nodes started",
            json_schema_extra={"pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        ),
    ] = None,
    schedule_id: Annotated[
        str | None,
        # Documented, checked by the run service (`invalid_filter`).
        Query(
            description="Only the runs this schedule fired",
            json_schema_extra={"pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        ),
    ] = None,
) -> schemas.Page[schemas.RunOut]:
    """List runs by `timing.created_at` whatever their status: newest first, or oldest first
    with `order=asc`."""
    page = await runs.list_runs(
        org,
        RunFilter(
            workflow_id=workflow_id,
            status=status,
            trigger_type=trigger_type,
            created_after=created_after,
            created_before=created_before,
            parent_run_id=parent_run_id,
            schedule_id=schedule_id,
        ),
        limit=paging.limit,
        cursor=paging.cursor,
        order=paging.order,
    )
    return schemas.Page(
        data=[record_of(view, settings) for view in page.views], next_cursor=page.next_cursor
    )


@router.get(
    "/runs/{run_id}", response_model=schemas.RunOut, dependencies=[require(Permission.READ_RUN)]
)
async def get_run(run_id: str, org: OrgDep, settings: SettingsDep, runs: RunsDep) -> schemas.RunOut:
    """Read a run (with the runs restarted or rerun from it)."""
    view = await runs.get(org, run_id)
    return record_of(view, settings, await runs.derived_run_ids(org, run_id))


@router.get(
    "/runs/{run_id}/steps",
    response_model=schemas.DataList[schemas.StepOut],
    dependencies=[require(Permission.READ_RUN)],
)
async def get_run_steps(
    run_id: str, org: OrgDep, runs: RunsDep
) -> schemas.DataList[schemas.StepOut]:
    """A run's steps, one per node, in topological order, with each one's usage and, for
    side-effecting nodes, the requests it sent (`effects`)."""
    steps, ledgers = await runs.steps_with_ledger(org, run_id)
    return schemas.DataList(data=[step_record(step, ledgers.get(step.node_id)) for step in steps])


@router.get(
    "/runs/{run_id}/steps/{node_id}",
    response_model=schemas.StepOut,
    dependencies=[require(Permission.READ_RUN)],
)
async def get_run_step(run_id: str, node_id: str, org: OrgDep, runs: RunsDep) -> schemas.StepOut:
    """One step of a run, by its node id; 404 `step_not_found` when the run has no such node."""
    return step_record(*await runs.step_with_ledger(org, run_id, node_id))


@router.get(
    "/runs/{run_id}/steps/{node_id}/items",
    response_model=schemas.Page[schemas.MapItemOut],
    dependencies=[require(Permission.READ_RUN)],
)
async def get_map_items(
    run_id: str,
    node_id: str,
    org: OrgDep,
    runs: RunsDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Items per page (1-200)")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            description="The previous page's `next_cursor`: the next page",
            json_schema_extra=CURSOR_SHAPE,
        ),
    ] = None,
) -> schemas.Page[schemas.MapItemOut]:
    """A map step's items in item order (not newest first), each with its status, attempt,
    output and error; 404 `map_not_found` when the node is not a map."""
    items, next_cursor = await runs.map_items(org, run_id, node_id, limit=limit, cursor=cursor)
    return schemas.Page(
        data=[schemas.MapItemOut.model_validate(item.model_dump()) for item in items],
        next_cursor=next_cursor,
    )


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
    dependencies=[require(Permission.READ_RUN)],
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
    dependencies=[require(Permission.RUN)],
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
