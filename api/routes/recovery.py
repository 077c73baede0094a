"""Recovery: restart and rerun (new runs, copied inputs), retry (the same run, reset)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Response, status

from api import schemas
from api.deps import IdempotencyDep, OrgDep, RegistryDep, SettingsDep, TemporalDep, WorkflowsDep
from api.idempotency import Command
from api.recovery_service import RecoveryService
from api.routes.runs import ReaderDep, StarterDep, record_of
from api.run_starter import Launched

router = APIRouter(prefix="/v1/workflows/runs", tags=["recovery"])


async def get_recovery(
    client: TemporalDep,
    reader: ReaderDep,
    starter: StarterDep,
    workflows: WorkflowsDep,
    registry: RegistryDep,
    idempotency: IdempotencyDep,
) -> RecoveryService:
    return RecoveryService(
        client=client,
        reader=reader,
        starter=starter,
        workflows=workflows,
        registry=registry,
        idempotency=idempotency,
    )


RecoveryDep = Annotated[RecoveryService, Depends(get_recovery)]


def _answer(launched: Launched, response: Response, settings: SettingsDep) -> schemas.RunOut:
    if launched.replayed:
        response.status_code = status.HTTP_200_OK
    return record_of(launched.view, settings)


@router.post(
    "/{run_id}/restart",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    responses=schemas.REPLAY_RESPONSES,
)
async def restart_run(
    run_id: str,
    response: Response,
    org: OrgDep,
    settings: SettingsDep,
    recovery: RecoveryDep,
    body: Annotated[schemas.RestartBody | None, Body()] = None,
) -> schemas.RunOut:
    """New run with the source's inputs and the workflow's current published (or draft)
    definition; the source is untouched."""
    body = body or schemas.RestartBody()
    command = Command(
        org, body.command_id, "restart", run_id, {"config_source": body.config_source}
    )
    return _answer(
        await recovery.derive(org, run_id, command, body.config_source), response, settings
    )


@router.post(
    "/{run_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    responses=schemas.REPLAY_RESPONSES,
)
async def rerun_run(
    run_id: str,
    response: Response,
    org: OrgDep,
    settings: SettingsDep,
    recovery: RecoveryDep,
    body: Annotated[schemas.CommandBody | None, Body()] = None,
) -> schemas.RunOut:
    """New run with the source's inputs and the same snapshot the source ran."""
    command = Command(org, body.command_id if body else None, "rerun", run_id, {})
    return _answer(await recovery.derive(org, run_id, command, None), response, settings)


@router.get(
    "/{run_id}/retry-plan", response_model=schemas.RetryPlanOut, response_model_by_alias=True
)
async def get_retry_plan(
    run_id: str,
    org: OrgDep,
    reader: ReaderDep,
    recovery: RecoveryDep,
    from_: Annotated[Literal["failure_point", "start"], Query(alias="from")] = "failure_point",
) -> schemas.RetryPlanOut:
    """What a retry would reuse, run again, and repeat of side effects; changes nothing."""
    plan, _ = await recovery.plan(await reader.get(org, run_id), from_)
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
    responses=schemas.REPLAY_RESPONSES,
)
async def retry_run(
    run_id: str,
    response: Response,
    org: OrgDep,
    settings: SettingsDep,
    recovery: RecoveryDep,
    body: Annotated[schemas.RetryBody | None, Body()] = None,
) -> schemas.RunOut:
    """The same run, reset to its failure point (or re-executed from the start with
    overriding inputs); 409 unless it is in error or cancelled."""
    launched = await recovery.retry(org, run_id, body or schemas.RetryBody())
    return _answer(launched, response, settings)
