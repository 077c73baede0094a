"""The run record (API.md "The run record"): the JSON `GET /v1/workflows/runs/{run_id}` answers,
and what event webhooks send as `data.run`. HTTP-free pydantic models built from the workflow's
RunState, so that the API (api/) and event delivery (triggers/) render a run the same way;
api/schemas.py re-exports the models under their names in the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from runlane.settings import Settings
from runs.models import last_change
from store.usage import Usage
from workflows.models import RunState


class RunWorkflowOut(BaseModel):
    workflow_id: str
    snapshot_id: str | None
    version: int | None
    name_at_run_time: str


class TriggerOut(BaseModel):
    type: str
    source_run_id: str | None = None
    # Shown only when `type` is "parent": part 1's trigger shape stays as it was otherwise.
    parent_run_id: str | None = Field(
        default=None,
        description="The run whose subworkflow node started this one (only when `type` is "
        '"parent")',
        exclude_if=lambda value: value is None,
    )
    # Shown only for runs a schedule or an inbound webhook started (API.md "Triggers").
    schedule_id: str | None = Field(
        default=None,
        description='The schedule that fired this run (only when `type` is "schedule")',
        exclude_if=lambda value: value is None,
    )
    scheduled_at: datetime | None = Field(
        default=None,
        description='The time the schedule was due (only when `type` is "schedule")',
        exclude_if=lambda value: value is None,
    )
    webhook_id: str | None = Field(
        default=None,
        description='The inbound webhook that started this run (only when `type` is "webhook")',
        exclude_if=lambda value: value is None,
    )
    delivery_id: str | None = Field(
        default=None,
        description='The call\'s `webhook-id` header (only when `type` is "webhook")',
        exclude_if=lambda value: value is None,
    )


class RunErrorOut(BaseModel):
    stage: str
    node_id: str | None = None
    type: str
    message: str


class Lifecycle(BaseModel):
    model_config = ConfigDict(extra="allow")

    kind: str


class TimingOut(BaseModel):
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    human_waiting_started_at: datetime | None
    accumulated_human_waiting_ms: int
    duration_ms: int | None
    active_duration_ms: int | None


class DocumentOut(BaseModel):
    id: str
    filename: str
    mime_type: str


class RunInputsOut(BaseModel):
    documents: dict[str, DocumentOut]
    json_data: dict[str, Any]
    text_data: dict[str, str]


class AttemptOut(BaseModel):
    attempt: int
    temporal_run_id: str
    started_at: datetime
    ended_at: datetime | None
    status: str
    resumed_from_node_id: str | None


class TemporalOut(BaseModel):
    namespace: str
    workflow_id: str
    run_id: str | None
    ui_url: str


class InputDocumentOut(BaseModel):
    file_id: str = Field(description="The stored file (`GET /v1/files/{file_id}`)")
    id: str = Field(
        description="The same file id, under the name `inputs.documents` and the Retab SDK use"
    )
    filename: str
    mime_type: str


class UsageOut(BaseModel):
    """What nodes did, summed (runs/usage.py says how each figure counts)."""

    nodes_executed: int = Field(
        description="Node executions: one per node per run attempt that ran it (a map: per "
        "item); an activity's retries are attempts of the same execution"
    )
    activity_attempts: int = Field(
        description="Attempts of nodes' own activities, retries included (pure nodes are "
        "evaluated together in batches and count none)"
    )
    http_requests: int = Field(description="Requests actually sent, across every retry")
    http_bytes_sent: int = Field(description="Request bodies' bytes")
    http_bytes_received: int = Field(description="Response bodies' bytes, as received")
    cost: dict[str, int | float] = Field(
        description="Cost units node types reported (e.g. `llm_tokens`), summed per unit"
    )

    @classmethod
    def of(cls, usage: Usage) -> UsageOut:
        return cls(
            nodes_executed=usage.nodes_executed,
            activity_attempts=usage.activity_attempts,
            http_requests=usage.http_requests,
            http_bytes_sent=usage.http_bytes_sent,
            http_bytes_received=usage.http_bytes_received,
            # Whole amounts read as integers (token counts), others as they are.
            cost={
                unit: int(amount) if float(amount).is_integer() else amount
                for unit, amount in sorted(usage.cost.items())
            },
        )


class RunOut(BaseModel):
    id: str
    organization_id: str
    workflow: RunWorkflowOut
    workflow_id: str = Field(description="Seed compatibility: `workflow.workflow_id`")
    workflow_name: str = Field(description="Seed compatibility: `workflow.name_at_run_time`")
    trigger: TriggerOut
    status: str
    lifecycle: Lifecycle
    timing: TimingOut
    inputs: RunInputsOut
    final_outputs: Any
    error: RunErrorOut | None
    waiting_for_node_ids: list[str]
    attempt: int
    attempts: list[AttemptOut]
    derived_run_ids: list[str] = Field(default_factory=list)
    temporal: TemporalOut
    # Seed compatibility (API.md part 2): the flat fields of the seeds' run record, beside
    # the nested ones above, so Retab-style clients read Runlane's runs as they are.
    created_at: datetime = Field(description="Seed compatibility: `timing.created_at`")
    started_at: datetime = Field(
        description="Seed compatibility: `timing.started_at`; while the run has not started "
        "yet (`pending`), its creation time, so it is never null (`timing.started_at` is)"
    )
    completed_at: datetime | None = Field(
        description="Seed compatibility: `timing.completed_at` (null until the run ends)"
    )
    duration_ms: int | None = Field(
        description="Seed compatibility: `timing.duration_ms` (null until the run ends)"
    )
    updated_at: datetime = Field(
        description="When the run's state last changed: the latest moment it records "
        "(created, started, ended, a step started or ended, a review waited or was decided, "
        "an attempt started or ended)"
    )
    input_documents: dict[str, InputDocumentOut] = Field(
        description="Seed compatibility: the documents of `inputs.documents` by start node id, "
        "each `{file_id, id, filename, mime_type}`"
    )
    usage: UsageOut | None = Field(
        default=None,
        description="What the run's nodes did, across every attempt: the sum of its steps' "
        "`usage`. Left out of Server-Sent Events and event webhooks' `data.run`",
        exclude_if=lambda value: value is None,
    )


def ui_url(settings: Settings, run_id: str, temporal_run_id: str | None) -> str:
    base = f"{settings.temporal_ui_url}/namespaces/{quote(settings.temporal_namespace)}/workflows"
    if temporal_run_id:
        return f"{base}/{run_id}/{temporal_run_id}/history"
    return f"{base}/{run_id}"


def lifecycle(state: RunState) -> Lifecycle:
    extra: dict = {}
    if state.status == "waiting_for_human":
        extra["waiting_for_node_ids"] = list(state.waiting_for_node_ids)
    elif state.status == "completed":
        extra["final_outputs"] = state.final_outputs
    elif state.status == "error" and state.error is not None:
        extra["error"] = state.error.model_dump()
    return Lifecycle(kind=state.status, **extra)


def run_record(
    state: RunState,
    *,
    settings: Settings,
    temporal_run_id: str | None,
    derived_run_ids: list[str] | None = None,
    usage: Usage | None = None,
) -> RunOut:
    """The record of `state`, with links into the Temporal UI of `settings`' namespace."""
    inputs, timing = state.inputs, state.timing
    return RunOut(
        id=state.run_id,
        organization_id=state.organization_id,
        workflow=RunWorkflowOut(**state.workflow.model_dump()),
        workflow_id=state.workflow.workflow_id,
        workflow_name=state.workflow.name_at_run_time,
        trigger=TriggerOut(**state.trigger.model_dump()),
        status=state.status,
        lifecycle=lifecycle(state),
        timing=TimingOut(**state.timing.model_dump()),
        inputs=RunInputsOut(
            documents={
                node_id: DocumentOut(id=ref.file_id, filename=ref.filename, mime_type=ref.mime_type)
                for node_id, ref in inputs.documents.items()
            },
            json_data=inputs.json_data,
            text_data=inputs.text_data,
        ),
        final_outputs=state.final_outputs,
        error=RunErrorOut(**state.error.model_dump()) if state.error else None,
        waiting_for_node_ids=list(state.waiting_for_node_ids),
        attempt=state.attempt,
        attempts=[AttemptOut(**a.model_dump()) for a in state.attempts],
        derived_run_ids=derived_run_ids or [],
        temporal=TemporalOut(
            namespace=settings.temporal_namespace,
            workflow_id=state.run_id,
            run_id=temporal_run_id,
            ui_url=ui_url(settings, state.run_id, temporal_run_id),
        ),
        created_at=timing.created_at,
        started_at=timing.started_at or timing.created_at,
        completed_at=timing.completed_at,
        duration_ms=timing.duration_ms,
        updated_at=last_change(state),
        input_documents={
            node_id: InputDocumentOut(
                file_id=ref.file_id, id=ref.file_id, filename=ref.filename, mime_type=ref.mime_type
            )
            for node_id, ref in inputs.documents.items()
        },
        usage=UsageOut.of(usage) if usage is not None else None,
    )
