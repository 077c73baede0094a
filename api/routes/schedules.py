"""Schedules (API.md "Triggers"): Temporal Schedules that start runs of a workflow."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api import schemas
from api.deps import (
    JsonBody,
    OrgDep,
    PageDep,
    SchedulesDep,
    SettingsDep,
    WorkflowsDep,
    cursor_error,
    require,
)
from api.run_views import record_of
from runlane.errors import not_found
from runlane.permissions import Permission
from store.pagination import InvalidCursor, Page
from triggers.schedule_spec import TimeSpec
from triggers.schedules import ScheduleView

router = APIRouter(tags=["schedules"], dependencies=[JsonBody], responses=schemas.ERROR_RESPONSES)


def time_spec(spec: schemas.ScheduleSpecIn) -> TimeSpec:
    return TimeSpec(
        cron=list(spec.cron or []),
        interval_s=spec.interval_s,
        timezone=spec.timezone,
        jitter_s=spec.jitter_s,
        start_at=spec.start_at,
        end_at=spec.end_at,
    )


def schedule_out(view: ScheduleView) -> schemas.ScheduleOut:
    record, spec = view.record, view.spec
    return schemas.ScheduleOut(
        id=record.id,
        organization_id=record.organization_id,
        workflow_id=record.workflow_id,
        spec=schemas.ScheduleSpecOut(
            cron=list(spec.cron) or None,
            interval_s=spec.interval_s,
            timezone=spec.timezone,
            jitter_s=spec.jitter_s,
            start_at=spec.start_at,
            end_at=spec.end_at,
        ),
        inputs=schemas.ScheduleInputs.model_validate(record.inputs),
        config_source="draft" if record.config_source == "draft" else "published",
        overlap=view.overlap,
        paused=view.paused,
        note=record.note,
        next_run_times=view.next_run_times,
        recent_runs=[
            schemas.ScheduleRunOut(
                run_id=run.run_id,
                scheduled_at=run.scheduled_at,
                status=run.status,
                error=(
                    schemas.ScheduleFireErrorOut(code=run.error.code, message=run.error.message)
                    if run.error is not None
                    else None
                ),
            )
            for run in view.recent_runs
        ],
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def page_out(page: Page[ScheduleView]) -> schemas.Page[schemas.ScheduleOut]:
    return schemas.Page(data=[schedule_out(v) for v in page.items], next_cursor=page.next_cursor)


@router.post(
    "/v1/workflows/{workflow_id}/schedules",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.ScheduleOut,
    dependencies=[require(Permission.MANAGE)],
)
async def create_schedule(
    workflow_id: str, body: schemas.ScheduleCreate, org: OrgDep, schedules: SchedulesDep
) -> schemas.ScheduleOut:
    """Create a schedule: a Temporal Schedule whose every fire starts a run of the workflow
    with these inputs (checked now as a run start checks them)."""
    view = await schedules.create(
        org,
        workflow_id,
        spec=time_spec(body.spec),
        inputs=body.inputs.model_dump(mode="json"),
        config_source=body.config_source,
        overlap=body.overlap,
        paused=body.paused,
        note=body.note,
    )
    return schedule_out(view)


@router.get(
    "/v1/workflows/{workflow_id}/schedules",
    response_model=schemas.Page[schemas.ScheduleOut],
    dependencies=[require(Permission.READ)],
)
async def list_workflow_schedules(
    workflow_id: str,
    org: OrgDep,
    schedules: SchedulesDep,
    workflows: WorkflowsDep,
    paging: PageDep,
) -> schemas.Page[schemas.ScheduleOut]:
    """The workflow's schedules, newest first (oldest first with `order=asc`)."""
    if await workflows.get(org, workflow_id) is None:
        raise not_found("workflow", workflow_id)
    try:
        page = await schedules.list_page(
            org,
            workflow_id=workflow_id,
            limit=paging.limit,
            cursor=paging.cursor,
            order=paging.order,
        )
    except InvalidCursor as error:
        raise cursor_error(error) from None
    return page_out(page)


@router.get(
    "/v1/schedules",
    response_model=schemas.Page[schemas.ScheduleOut],
    dependencies=[require(Permission.READ)],
)
async def list_schedules(
    org: OrgDep, schedules: SchedulesDep, paging: PageDep
) -> schemas.Page[schemas.ScheduleOut]:
    """The organization's schedules, newest first (oldest first with `order=asc`)."""
    try:
        page = await schedules.list_page(
            org, limit=paging.limit, cursor=paging.cursor, order=paging.order
        )
    except InvalidCursor as error:
        raise cursor_error(error) from None
    return page_out(page)


@router.get(
    "/v1/schedules/{schedule_id}",
    response_model=schemas.ScheduleOut,
    dependencies=[require(Permission.READ)],
)
async def get_schedule(
    schedule_id: str, org: OrgDep, schedules: SchedulesDep
) -> schemas.ScheduleOut:
    """A schedule, with its next fire times and its recent runs (and failed fires)."""
    return schedule_out(await schedules.get(org, schedule_id))


@router.patch(
    "/v1/schedules/{schedule_id}",
    response_model=schemas.ScheduleOut,
    dependencies=[require(Permission.MANAGE)],
)
async def update_schedule(
    schedule_id: str, body: schemas.SchedulePatch, org: OrgDep, schedules: SchedulesDep
) -> schemas.ScheduleOut:
    """Change the spec, inputs, overlap policy, `paused` or the note."""
    view = await schedules.update(
        org,
        schedule_id,
        spec=time_spec(body.spec) if body.spec is not None else None,
        inputs=body.inputs.model_dump(mode="json") if body.inputs is not None else None,
        overlap=body.overlap,
        paused=body.paused,
        note=body.note,
    )
    return schedule_out(view)


@router.post(
    "/v1/schedules/{schedule_id}/trigger",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    dependencies=[require(Permission.RUN)],
)
async def trigger_schedule(
    schedule_id: str, org: OrgDep, schedules: SchedulesDep, settings: SettingsDep
) -> schemas.RunOut:
    """Start one run now, through the Temporal Schedule (never skipped by the overlap
    policy); answers the run (503 if it has not appeared within 10 s)."""
    return record_of(await schedules.trigger(org, schedule_id), settings)


@router.post(
    "/v1/schedules/{schedule_id}/backfill",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.BackfillOut,
    dependencies=[require(Permission.MANAGE)],
)
async def backfill_schedule(
    schedule_id: str, body: schemas.BackfillIn, org: OrgDep, schedules: SchedulesDep
) -> schemas.BackfillOut:
    """Start the runs of the times the schedule matched in (start_at, end_at], as if each
    had passed now (none skipped for overlap); at most 500."""
    count = await schedules.backfill(org, schedule_id, start_at=body.start_at, end_at=body.end_at)
    return schemas.BackfillOut(scheduled=count)


@router.delete(
    "/v1/schedules/{schedule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[require(Permission.MANAGE)],
)
async def delete_schedule(schedule_id: str, org: OrgDep, schedules: SchedulesDep) -> Response:
    """Delete the schedule (in Temporal too); the runs it started stay."""
    await schedules.delete(org, schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
