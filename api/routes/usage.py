"""Usage: what an organization's runs did, summed over a window of time (API.md "Runs: more")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api import schemas
from api.deps import JsonBody, OrgDep, RunsDep, require
from runlane.permissions import Permission

router = APIRouter(
    prefix="/v1/usage",
    tags=["usage"],
    dependencies=[JsonBody],
    responses=schemas.ERROR_RESPONSES,
)


@router.get("", response_model=schemas.UsageReportOut, dependencies=[require(Permission.READ)])
async def get_usage(
    org: OrgDep,
    runs: RunsDep,
    from_: Annotated[
        schemas.Rfc3339 | None,
        Query(
            alias="from",
            description="RFC 3339; usage at or after it (default: since the beginning)",
        ),
    ] = None,
    to: Annotated[
        schemas.Rfc3339 | None,
        Query(description="RFC 3339; usage before it (default: now); later than `from`"),
    ] = None,
    workflow_id: Annotated[
        str | None,
        # Documented, checked by the run service (`invalid_usage_query`).
        Query(
            description="Only the runs of this workflow",
            json_schema_extra={"pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        ),
    ] = None,
) -> schemas.UsageReportOut:
    """The organization's usage (nodes executed, activity attempts, HTTP requests and bytes,
    cost units) summed over every activity attempt that started in [from, to)."""
    window, usage = await runs.usage(org, start=from_, end=to, workflow_id=workflow_id)
    return schemas.UsageReportOut(
        from_=window.start,
        to=window.end,
        workflow_id=window.workflow_id,
        usage=schemas.UsageOut.of(usage),
    )
