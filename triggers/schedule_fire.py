"""What a schedule's launcher workflow runs outside workflow code: preparing the run a fire
starts, through the run service (the same checks as `POST /v1/workflows/{id}/run`).

The run is prepared when the schedule fires, so it runs the snapshot published *then*, with
the schedule's inputs as they are then. A fire that cannot start a run (workflow deleted or
unpublished, an input no longer valid, a secret missing) fails the launcher with a
non-retryable `ApplicationError` carrying the domain error; the schedule's read shows it
(`recent_runs` entries with `run_id: null`, triggers/schedules.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from runlane import ids
from runlane.errors import NotFound, RunlaneError, Unavailable
from runs.inputs import DocumentRequest, RequestedInputs
from runs.service import RunService
from store.schedules import ScheduleRepository
from workflows.models import RunInput, Trigger

PREPARE_RUN = "runlane.schedule_prepare_run"
# The ApplicationError type of a fire that could not start a run.
FIRE_FAILED = "ScheduleFireFailed"


class LaunchInput(BaseModel):
    """The launcher's input, fixed in the Temporal Schedule's action: everything else (the
    workflow, the inputs) is read from the schedule when it fires."""

    organization_id: str
    schedule_id: str


class LaunchResult(BaseModel):
    """How the launched run ended: its status, or `already_started` when a run with its id
    existed (the same fire, started again)."""

    run_id: str
    status: str


class FireRequest(BaseModel):
    organization_id: str
    schedule_id: str
    scheduled_at: datetime
    # The launcher execution that fires: the run id is derived from it (scheduled_run_id).
    launcher_workflow_id: str
    launcher_run_id: str


class FireError(BaseModel):
    """A fire's failure, as its ApplicationError's details carry it: the domain error."""

    kind: str
    code: str
    message: str
    details: dict[str, Any] = {}


def scheduled_run_id(launcher_workflow_id: str, launcher_run_id: str) -> str:
    """The run a launcher execution starts. Temporal names a schedule's launcher
    `<schedule id>-<scheduled time, to the second>`: so the id is derived from the schedule
    and the scheduled time, and from the launcher's first execution id, which keeps a run
    triggered by hand apart from a fire that closed in the same second. A retried activity
    gets the same id; the API derives it too, to answer a trigger with its run."""
    return ids.derived_id(ids.RUN, "schedule", launcher_workflow_id, launcher_run_id)


def requested_inputs(stored: dict[str, Any]) -> RequestedInputs:
    """A schedule's stored inputs (`{"json_inputs", "text_inputs", "documents": {node:
    {"file_id"}}}`) as the run service's request: documents by reference only."""
    return RequestedInputs(
        documents={
            node_id: DocumentRequest(file_id=document["file_id"])
            for node_id, document in (stored.get("documents") or {}).items()
        },
        json_inputs=dict(stored.get("json_inputs") or {}),
        text_inputs=dict(stored.get("text_inputs") or {}),
    )


def fire_failure(error: RunlaneError) -> ApplicationError:
    """The domain error as the launcher fails with it (non-retryable: the same fire would
    fail again the same way)."""
    detail = FireError(
        kind=type(error).__name__, code=error.code, message=error.message, details=error.details
    )
    return ApplicationError(
        error.message, detail.model_dump(mode="json"), type=FIRE_FAILED, non_retryable=True
    )


class ScheduleFire:
    def __init__(self, schedules: ScheduleRepository, runs: RunService) -> None:
        self._schedules = schedules
        self._runs = runs

    @activity.defn(name=PREPARE_RUN)
    async def prepare_run(self, request: FireRequest) -> RunInput:
        """The run this fire starts, prepared from the schedule as it is now."""
        org = request.organization_id
        try:
            record = await self._schedules.get(org, request.schedule_id)
            if record is None:
                raise NotFound(
                    "schedule_not_found", f"Schedule {request.schedule_id} no longer exists."
                )
            return await self._runs.prepare_start(
                org,
                record.workflow_id,
                requested_inputs(record.inputs),
                config_source="draft" if record.config_source == "draft" else "published",
                trigger=Trigger(
                    type="schedule",
                    schedule_id=record.id,
                    scheduled_at=request.scheduled_at,
                ),
                run_id=scheduled_run_id(request.launcher_workflow_id, request.launcher_run_id),
            )
        except Unavailable:
            raise  # (retried: Temporal or the store may answer on the next attempt)
        except RunlaneError as error:
            raise fire_failure(error) from None
