"""Bulk operations (API.md part 2 "Recovery: more"): HTTP only; the work is bulk/service.py's.

Under `/v1/workflows/runs/bulk`, next to the runs: `POST .../bulk` is no path the runs routes
answer, and `GET .../bulk/{id}` has three segments after `/runs`, which no runs route of that
shape (`/runs/{run_id}/steps`, `/events`, `/retry-plan`, ...) matches unless the id is one of
their literal names, which a `bulk_...` id never is.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from api import schemas
from api.deps import BulkDep, JsonBody, OrgDep, PageDep, SettingsDep, cursor_error, require
from bulk.models import BulkFilter
from bulk.service import BulkView, DryRun
from runlane.permissions import Permission
from runlane.settings import Settings
from store.pagination import InvalidCursor

router = APIRouter(
    prefix="/v1/workflows/runs/bulk",
    tags=["bulk operations"],
    dependencies=[JsonBody],
    responses=schemas.ERROR_RESPONSES,
)


def operation_out(view: BulkView, settings: Settings) -> schemas.BulkOperationOut:
    record, progress = view.record, view.progress
    base = f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows"
    return schemas.BulkOperationOut(
        id=record.id,
        organization_id=record.organization_id,
        action=record.action,
        filter=record.filter,
        status=view.status,  # type: ignore[arg-type]  # one of the service's statuses
        matched=record.matched,
        progress=schemas.BulkProgressOut(
            done=progress.done,
            succeeded=progress.succeeded,
            failed=progress.failed,
            skipped=progress.skipped,
        ),
        created_at=record.created_at,
        temporal={"workflow_id": record.id, "ui_url": f"{base}/{record.id}"},
    )


def dry_run_out(dry: DryRun) -> schemas.BulkDryRunOut:
    return schemas.BulkDryRunOut(
        action=dry.action,
        matched=len(dry.runs),
        runs=[
            schemas.BulkDryRunEntry(
                run_id=run.run_id,
                status=run.status,
                plan=schemas.BulkPlanOut(
                    allowed=run.plan.allowed,
                    reason=run.plan.reason,
                    rerun=run.plan.rerun,
                    reuse=run.plan.reuse,
                )
                if run.plan is not None
                else None,
            )
            for run in dry.runs
        ],
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.BulkOperationOut,
    responses={
        200: {
            "model": schemas.BulkDryRunOut | schemas.BulkOperationOut,
            "description": "`dry_run`: the matched runs, nothing started; or the replay of "
            "an earlier command_id: the operation it started",
        }
    },
    dependencies=[require(Permission.RUN)],
)
async def start_bulk(
    body: schemas.BulkBody,
    response: Response,
    org: OrgDep,
    settings: SettingsDep,
    bulk: BulkDep,
) -> schemas.BulkOperationOut | JSONResponse:
    """Retry, cancel, restart or rerun every run the filter matches, as one durable, paced
    operation; `dry_run` only lists them (and, for retry, each one's plan)."""
    run_filter = BulkFilter.model_validate(body.filter.model_dump())
    if body.dry_run:
        dry = await bulk.dry_run(org, body.action, run_filter)
        return JSONResponse(dry_run_out(dry).model_dump(mode="json"))
    view = await bulk.start(org, body.action, run_filter, command_id=body.command_id)
    if view.replayed:
        response.status_code = status.HTTP_200_OK
    return operation_out(view, settings)


@router.get(
    "/{bulk_id}",
    response_model=schemas.BulkOperationDetailOut,
    dependencies=[require(Permission.READ)],
)
async def get_bulk(
    bulk_id: str, org: OrgDep, settings: SettingsDep, bulk: BulkDep, paging: PageDep
) -> schemas.BulkOperationDetailOut:
    """The operation's status, progress and per-run outcomes (paged)."""
    view = await bulk.get(org, bulk_id)
    try:
        page = await bulk.outcomes(
            org, bulk_id, limit=paging.limit, cursor=paging.cursor, order=paging.order
        )
    except InvalidCursor as error:
        raise cursor_error(error) from None
    return schemas.BulkOperationDetailOut(
        **operation_out(view, settings).model_dump(),
        outcomes=schemas.Page(
            data=[
                schemas.BulkOutcomeOut(
                    run_id=o.run_id,
                    status=o.status,  # type: ignore[arg-type]  # written by bulk/activities.py
                    error=o.error,
                    result_run_id=o.result_run_id,
                    finished_at=o.finished_at,
                )
                for o in page.items
            ],
            next_cursor=page.next_cursor,
        ),
    )
