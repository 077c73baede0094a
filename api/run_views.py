"""Routes translate here: request bodies into the run service's inputs, and the service's
runs into records and steps as API.md shows them (built from the workflow's RunState)."""

from __future__ import annotations

from api import schemas
from runlane.settings import Settings
from runs.inputs import DocumentRequest, RequestedInputs
from runs.reader import RunView
from runs.records import run_record
from runs.usage import StepLedger
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
        usage=view.usage,
    )


def step_record(step: StepState, ledger: StepLedger | None = None) -> schemas.StepOut:
    record = schemas.StepOut.model_validate(step.model_dump())
    if ledger is not None:
        record.usage = schemas.UsageOut.of(ledger.usage)
        if ledger.effects is not None:
            record.effects = [
                schemas.EffectOut.model_validate(effect, from_attributes=True)
                for effect in ledger.effects
            ]
    return record


def step_records(state: RunState) -> list[schemas.StepOut]:
    return [step_record(step) for step in state.steps]
