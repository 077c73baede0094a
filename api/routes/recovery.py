"""Recovery: restart and rerun (new runs, copied inputs), retry (the same run, reset)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response, status

from api import schemas
from api.deps import CallerDep, JsonBody, OrgDep, RunsDep, SettingsDep, require
from api.routes.runs import answer
from api.run_views import requested_inputs
from runlane.permissions import Permission
from runs.models import RetrySpec

router = APIRouter(
    prefix="/v1/workflows/runs",
    tags=["recovery"],
    dependencies=[JsonBody],
    responses=schemas.ERROR_RESPONSES,
)


@router.post(
    "/{run_id}/restart",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    responses=schemas.REPLAY_RESPONSES,
    dependencies=[require(Permission.RUN)],
)
async def restart_run(
    run_id: str,
    response: Response,
    org: OrgDep,
    caller: CallerDep,
    settings: SettingsDep,
    runs: RunsDep,
    body: Annotated[schemas.RestartBody | None, Body()] = None,
) -> schemas.RunOut:
    """New run with the source's inputs and the workflow's current published (or draft)
    definition; the source is untouched."""
    body = body or schemas.RestartBody()
    outcome = await runs.restart(
        org,
        run_id,
        config_source=body.config_source,
        command_id=body.command_id,
        started_by=caller.subject,
    )
    return answer(outcome, response, settings)


@router.post(
    "/{run_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    responses=schemas.REPLAY_RESPONSES,
    dependencies=[require(Permission.RUN)],
)
async def rerun_run(
    run_id: str,
    response: Response,
    org: OrgDep,
    caller: CallerDep,
    settings: SettingsDep,
    runs: RunsDep,
    body: Annotated[schemas.CommandBody | None, Body()] = None,
) -> schemas.RunOut:
    """New run with the source's inputs and the same snapshot the source ran."""
    outcome = await runs.rerun(
        org, run_id, command_id=body.command_id if body else None, started_by=caller.subject
    )
    return answer(outcome, response, settings)


@router.get(
    "/{run_id}/retry-plan",
    response_model=schemas.RetryPlanOut,
    response_model_by_alias=True,
    dependencies=[require(Permission.READ)],
)
async def get_retry_plan(
    run_id: str,
    org: OrgDep,
    runs: RunsDep,
    from_: Annotated[
        Literal["failure_point", "start", "node"],
        Query(alias="from", description="`node` needs `node_id`"),
    ] = "failure_point",
    node_id: Annotated[str | None, Query(max_length=200)] = None,
) -> schemas.RetryPlanOut:
    """What a retry would reuse, run again, and repeat of side effects; changes nothing. Its
    `plan_id` makes the retry do exactly this."""
    plan = await runs.retry_plan(org, run_id, from_, node_id)
    assert plan.plan_id is not None
    return schemas.RetryPlanOut(
        plan_id=plan.plan_id,
        from_=plan.from_,
        node_id=plan.node_id,
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
    responses=schemas.REPLAY_RESPONSES,
    dependencies=[require(Permission.RUN)],
)
async def retry_run(
    run_id: str,
    response: Response,
    org: OrgDep,
    settings: SettingsDep,
    runs: RunsDep,
    body: Annotated[schemas.RetryBody | None, Body()] = None,
) -> schemas.RunOut:
    """The same run again: reset to its failure point (409 unless it is in error or
    cancelled), from a node (any ended run: that node and everything downstream of it run
    again, the rest keeps its outputs), or from the start; overriding inputs with the last
    two; or exactly as a plan said (`plan_id`, 409 `plan_stale` if the run changed since)."""
    body = body or schemas.RetryBody()
    overrides = None
    if any(i is not None for i in (body.documents, body.json_inputs, body.text_inputs)):
        overrides = requested_inputs(body.documents, body.json_inputs, body.text_inputs)
    outcome = await runs.retry(
        org,
        run_id,
        RetrySpec(
            from_=body.from_, node_id=body.node_id, overrides=overrides, plan_id=body.plan_id
        ),
        command_id=body.command_id,
        body=body.model_dump(mode="json", exclude={"command_id"}, by_alias=True),
    )
    return answer(outcome, response, settings)
