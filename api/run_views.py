"""Routes translate here: request bodies into the run service's inputs, and the service's
runs into records and steps as API.md shows them (built from the workflow's RunState)."""

from __future__ import annotations

from urllib.parse import quote

from api import schemas
from runlane.settings import Settings
from runs.inputs import DocumentRequest, RequestedInputs
from runs.models import last_change
from runs.reader import RunView
from workflows.models import RunState, StepState


def requested_inputs(
    documents: dict[str, schemas.DocumentInput] | None,
    json_inputs: dict | None,
    text_inputs: dict[str, str] | None,
) -> RequestedInputs:
    return RequestedInputs(
        documents={
            node_id: DocumentRequest(
                file_id=d.file_id, filename=d.filename, mime_type=d.mime_type, content=d.content
            )
            for node_id, d in (documents or {}).items()
        },
        json_inputs=dict(json_inputs or {}),
        text_inputs=dict(text_inputs or {}),
    )


def record_of(
    view: RunView, settings: Settings, derived_run_ids: list[str] | None = None
) -> schemas.RunOut:
    return run_record(
        view.state,
        settings=settings,
        temporal_run_id=view.temporal_run_id,
        derived_run_ids=derived_run_ids,
    )


def ui_url(settings: Settings, run_id: str, temporal_run_id: str | None) -> str:
    base = f"{settings.temporal_ui_url}/namespaces/{quote(settings.temporal_namespace)}/workflows"
    if temporal_run_id:
        return f"{base}/{run_id}/{temporal_run_id}/history"
    return f"{base}/{run_id}"


def lifecycle(state: RunState) -> schemas.Lifecycle:
    extra: dict = {}
    if state.status == "waiting_for_human":
        extra["waiting_for_node_ids"] = list(state.waiting_for_node_ids)
    elif state.status == "completed":
        extra["final_outputs"] = state.final_outputs
    elif state.status == "error" and state.error is not None:
        extra["error"] = state.error.model_dump()
    return schemas.Lifecycle(kind=state.status, **extra)


def run_record(
    state: RunState,
    *,
    settings: Settings,
    temporal_run_id: str | None,
    derived_run_ids: list[str] | None = None,
) -> schemas.RunOut:
    inputs, timing = state.inputs, state.timing
    return schemas.RunOut(
        id=state.run_id,
        organization_id=state.organization_id,
        workflow=schemas.RunWorkflowOut(**state.workflow.model_dump()),
        workflow_id=state.workflow.workflow_id,
        workflow_name=state.workflow.name_at_run_time,
        trigger=schemas.TriggerOut(**state.trigger.model_dump()),
        status=state.status,
        lifecycle=lifecycle(state),
        timing=schemas.TimingOut(**state.timing.model_dump()),
        inputs=schemas.RunInputsOut(
            documents={
                node_id: schemas.DocumentOut(
                    id=ref.file_id, filename=ref.filename, mime_type=ref.mime_type
                )
                for node_id, ref in inputs.documents.items()
            },
            json_data=inputs.json_data,
            text_data=inputs.text_data,
        ),
        final_outputs=state.final_outputs,
        error=schemas.RunErrorOut(**state.error.model_dump()) if state.error else None,
        waiting_for_node_ids=list(state.waiting_for_node_ids),
        attempt=state.attempt,
        attempts=[schemas.AttemptOut(**a.model_dump()) for a in state.attempts],
        derived_run_ids=derived_run_ids or [],
        temporal=schemas.TemporalOut(
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
            node_id: schemas.InputDocumentOut(
                file_id=ref.file_id, id=ref.file_id, filename=ref.filename, mime_type=ref.mime_type
            )
            for node_id, ref in inputs.documents.items()
        },
    )


def step_record(step: StepState) -> schemas.StepOut:
    return schemas.StepOut.model_validate(step.model_dump())


def step_records(state: RunState) -> list[schemas.StepOut]:
    return [step_record(step) for step in state.steps]
