"""Every API call as a :class:`Request`: path, query, body, retry safety and the model of
its answer, built once for both clients (API.md and api/routes/*.py are the reference)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from runlane.client._base import (
    Request,
    bytes_parser,
    command_id_or_new,
    documents_body,
    drop_none,
    model_parser,
    upload_part,
)
from runlane.client.models import (
    DataListStepOut,
    FileOut,
    PagePendingReviewOut,
    PageRunOut,
    PageSnapshotOut,
    PageWorkflowOut,
    RetryPlanOut,
    RunOut,
    SnapshotOut,
    StepOut,
    ValidateResult,
    WorkflowOut,
)

ConfigSource = Literal["published", "draft"]
Order = Literal["desc", "asc"]
RunStatus = Literal["pending", "running", "waiting_for_human", "completed", "error", "cancelled"]
TriggerType = Literal["api", "restart", "rerun", "schedule", "webhook", "parent"]
RetryFrom = Literal["failure_point", "start", "node"]
Decision = Literal["approve", "reject"]

# A run in one of these no longer moves without someone acting: `runs.wait` returns.
SETTLED_STATUSES = frozenset({"completed", "error", "cancelled", "waiting_for_human"})


def _id(value: str) -> str:
    """A path segment: ids are opaque, so one with a '/' or '?' must not change the path."""
    return quote(value, safe="")


def _moment(value: datetime | str | None) -> str | None:
    """RFC 3339 for the query; a naive datetime is taken as UTC."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _page(limit: int | None, order: Order | None, cursor: str | None) -> dict[str, Any]:
    return drop_none(limit=limit, order=order, cursor=cursor)


# ---------------------------------------------------------------- workflows


def create_workflow(
    name: str, definition: Mapping[str, Any], description: str | None
) -> Request[WorkflowOut]:
    # No idempotency key on this endpoint: a retry after the request may have arrived
    # could create a second workflow, so only a connection that never opened is retried.
    return Request(
        "POST",
        "/v1/workflows",
        model_parser(WorkflowOut),
        json=drop_none(name=name, definition=dict(definition), description=description),
        retry_safe=False,
    )


def get_workflow(workflow_id: str) -> Request[WorkflowOut]:
    return Request("GET", f"/v1/workflows/{_id(workflow_id)}", model_parser(WorkflowOut))


def list_workflows(
    limit: int | None, order: Order | None, cursor: str | None
) -> Request[PageWorkflowOut]:
    return Request(
        "GET", "/v1/workflows", model_parser(PageWorkflowOut), params=_page(limit, order, cursor)
    )


def update_draft(workflow_id: str, definition: Mapping[str, Any]) -> Request[WorkflowOut]:
    # Replacing the draft with the same definition twice leaves the same draft: safe to retry.
    return Request(
        "PUT",
        f"/v1/workflows/{_id(workflow_id)}/draft",
        model_parser(WorkflowOut),
        json={"definition": dict(definition)},
    )


def publish_workflow(workflow_id: str) -> Request[SnapshotOut]:
    # Each publish makes a new snapshot and takes no idempotency key: not retried once sent.
    return Request(
        "POST",
        f"/v1/workflows/{_id(workflow_id)}/publish",
        model_parser(SnapshotOut),
        retry_safe=False,
    )


def list_snapshots(
    workflow_id: str, limit: int | None, order: Order | None, cursor: str | None
) -> Request[PageSnapshotOut]:
    return Request(
        "GET",
        f"/v1/workflows/{_id(workflow_id)}/snapshots",
        model_parser(PageSnapshotOut),
        params=_page(limit, order, cursor),
    )


def validate_definition(definition: Mapping[str, Any]) -> Request[ValidateResult]:
    # Saves nothing: safe to retry.
    return Request(
        "POST",
        "/v1/workflows/validate",
        model_parser(ValidateResult),
        json={"definition": dict(definition)},
    )


# ---------------------------------------------------------------- runs


def start_run(
    workflow_id: str,
    *,
    documents: Mapping[str, Any] | None,
    json_inputs: Mapping[str, Any] | None,
    text_inputs: Mapping[str, str] | None,
    config_source: ConfigSource | None,
    command_id: str | None,
) -> Request[RunOut]:
    body = drop_none(
        documents=documents_body(documents),
        json_inputs=dict(json_inputs) if json_inputs is not None else None,
        text_inputs=dict(text_inputs) if text_inputs is not None else None,
        config_source=config_source,
        command_id=command_id_or_new(command_id),
    )
    return Request("POST", f"/v1/workflows/{_id(workflow_id)}/run", model_parser(RunOut), json=body)


def get_run(run_id: str) -> Request[RunOut]:
    return Request("GET", f"/v1/workflows/runs/{_id(run_id)}", model_parser(RunOut))


def list_runs(
    *,
    workflow_id: str | None,
    status: RunStatus | None,
    trigger_type: TriggerType | None,
    created_after: datetime | str | None,
    created_before: datetime | str | None,
    parent_run_id: str | None,
    schedule_id: str | None,
    limit: int | None,
    order: Order | None,
    cursor: str | None,
) -> Request[PageRunOut]:
    params = drop_none(
        workflow_id=workflow_id,
        status=status,
        trigger_type=trigger_type,
        created_after=_moment(created_after),
        created_before=_moment(created_before),
        parent_run_id=parent_run_id,
        schedule_id=schedule_id,
        **_page(limit, order, cursor),
    )
    return Request("GET", "/v1/workflows/runs", model_parser(PageRunOut), params=params)


def run_steps(run_id: str) -> Request[list[StepOut]]:
    def parse(response: Any) -> list[StepOut]:
        return DataListStepOut.model_validate_json(response.content).data

    return Request("GET", f"/v1/workflows/runs/{_id(run_id)}/steps", parse)


def run_step(run_id: str, node_id: str) -> Request[StepOut]:
    return Request(
        "GET", f"/v1/workflows/runs/{_id(run_id)}/steps/{_id(node_id)}", model_parser(StepOut)
    )


def run_events(run_id: str) -> Request[None]:
    return Request(
        "GET",
        f"/v1/workflows/runs/{_id(run_id)}/events",
        lambda response: None,
        headers={"Accept": "text/event-stream"},
    )


def _run_command(run_id: str, action: str, body: dict[str, Any]) -> Request[RunOut]:
    return Request(
        "POST", f"/v1/workflows/runs/{_id(run_id)}/{action}", model_parser(RunOut), json=body
    )


def cancel_run(run_id: str, command_id: str | None) -> Request[RunOut]:
    return _run_command(run_id, "cancel", {"command_id": command_id_or_new(command_id)})


def restart_run(
    run_id: str, config_source: ConfigSource | None, command_id: str | None
) -> Request[RunOut]:
    body = drop_none(config_source=config_source, command_id=command_id_or_new(command_id))
    return _run_command(run_id, "restart", body)


def rerun_run(run_id: str, command_id: str | None) -> Request[RunOut]:
    return _run_command(run_id, "rerun", {"command_id": command_id_or_new(command_id)})


def retry_run(
    run_id: str,
    *,
    from_: RetryFrom | None,
    node_id: str | None,
    plan_id: str | None,
    documents: Mapping[str, Any] | None,
    json_inputs: Mapping[str, Any] | None,
    text_inputs: Mapping[str, str] | None,
    command_id: str | None,
) -> Request[RunOut]:
    body = drop_none(
        node_id=node_id,
        plan_id=plan_id,
        documents=documents_body(documents),
        json_inputs=dict(json_inputs) if json_inputs is not None else None,
        text_inputs=dict(text_inputs) if text_inputs is not None else None,
        command_id=command_id_or_new(command_id),
    )
    if from_ is not None:
        body["from"] = from_
    return _run_command(run_id, "retry", body)


def retry_plan(run_id: str, from_: RetryFrom | None, node_id: str | None) -> Request[RetryPlanOut]:
    params = drop_none(node_id=node_id)
    if from_ is not None:
        params["from"] = from_
    return Request(
        "GET",
        f"/v1/workflows/runs/{_id(run_id)}/retry-plan",
        model_parser(RetryPlanOut),
        params=params,
    )


# ---------------------------------------------------------------- reviews


def decide_review(
    run_id: str,
    node_id: str,
    *,
    decision: Decision,
    data: Mapping[str, Any] | None,
    comment: str | None,
    reviewer: str | None,
    command_id: str | None,
) -> Request[RunOut]:
    body = drop_none(
        decision=decision,
        data=dict(data) if data is not None else None,
        comment=comment,
        reviewer=reviewer,
        command_id=command_id_or_new(command_id),
    )
    return Request(
        "POST",
        f"/v1/workflows/runs/{_id(run_id)}/reviews/{_id(node_id)}",
        model_parser(RunOut),
        json=body,
    )


def list_reviews(
    assignee: str | None, limit: int | None, order: Order | None, cursor: str | None
) -> Request[PagePendingReviewOut]:
    params = drop_none(status="pending", assignee=assignee, **_page(limit, order, cursor))
    return Request("GET", "/v1/reviews", model_parser(PagePendingReviewOut), params=params)


# ---------------------------------------------------------------- files


def upload_file(
    file: Path | bytes, filename: str | None, mime_type: str | None
) -> Request[FileOut]:
    # No idempotency key: a retry after the upload may have arrived could store the file
    # twice (two ids, same sha256), so only a connection that never opened is retried.
    return Request(
        "POST",
        "/v1/files",
        model_parser(FileOut),
        files=upload_part(file, filename, mime_type),
        retry_safe=False,
    )


def get_file(file_id: str) -> Request[FileOut]:
    return Request("GET", f"/v1/files/{_id(file_id)}", model_parser(FileOut))


def file_content(file_id: str) -> Request[bytes]:
    return Request("GET", f"/v1/files/{_id(file_id)}/content", bytes_parser)
