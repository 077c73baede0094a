"""Workflow definitions: drafts, immutable numbered snapshots, validation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from activities.registry import NodeRegistry
from api import schemas
from api.deps import (
    JsonBody,
    OrgDep,
    PageDep,
    RegistryDep,
    SubworkflowsDep,
    WorkflowsDep,
    cursor_error,
    require,
)
from runlane.definition import Definition, Problem, validate_definition
from runlane.errors import invalid, not_found
from runlane.permissions import Permission
from store.pagination import InvalidCursor
from store.workflows import SnapshotRecord, WorkflowRecord

router = APIRouter(
    prefix="/v1/workflows",
    tags=["workflows"],
    dependencies=[JsonBody],
    responses=schemas.ERROR_RESPONSES,
)


def workflow_out(record: WorkflowRecord) -> schemas.WorkflowOut:
    return schemas.WorkflowOut(
        id=record.id,
        organization_id=record.organization_id,
        name=record.name,
        description=record.description,
        draft=schemas.Draft(definition=record.draft_definition, updated_at=record.draft_updated_at),
        published_snapshot_id=record.published_snapshot_id,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def snapshot_out(record: SnapshotRecord) -> schemas.SnapshotOut:
    return schemas.SnapshotOut(
        id=record.id,
        workflow_id=record.workflow_id,
        version=record.version,
        definition=record.definition,
        created_at=record.created_at,
    )


def check_definition(raw: Any, registry: NodeRegistry) -> tuple[Definition | None, list[Problem]]:
    """validate_definition, after refusing what could not be stored and answered as JSON."""
    problem = schemas.json_value_problem(raw)
    if problem is not None:
        return None, [Problem(message=f"definition: {problem}")]
    return validate_definition(raw, registry)


def valid_definition(raw: Any, registry: NodeRegistry) -> dict[str, Any]:
    """The definition as given, or 422 listing every problem with its node id."""
    definition, problems = check_definition(raw, registry)
    if definition is None:
        errors = [problem.model_dump() for problem in problems]
        shown = "; ".join(
            f"{p.node_id + ': ' if p.node_id else ''}{p.message}" for p in problems[:5]
        )
        raise invalid("invalid_definition", f"Invalid definition: {shown}", errors)
    return definition.model_dump(mode="json", exclude_unset=True)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.WorkflowOut,
    dependencies=[require(Permission.MANAGE)],
)
async def create_workflow(
    body: schemas.WorkflowCreate, org: OrgDep, repo: WorkflowsDep, registry: RegistryDep
) -> schemas.WorkflowOut:
    """Create a workflow with a draft definition."""
    definition = valid_definition(body.definition, registry)
    record = await repo.create(
        org, name=body.name, description=body.description, definition=definition
    )
    return workflow_out(record)


@router.get(
    "", response_model=schemas.Page[schemas.WorkflowOut], dependencies=[require(Permission.READ)]
)
async def list_workflows(
    org: OrgDep, repo: WorkflowsDep, paging: PageDep
) -> schemas.Page[schemas.WorkflowOut]:
    """List workflows, newest first (oldest first with `order=asc`)."""
    try:
        page = await repo.list(org, limit=paging.limit, cursor=paging.cursor, order=paging.order)
    except InvalidCursor as error:
        raise cursor_error(error) from None
    return schemas.Page(data=[workflow_out(r) for r in page.items], next_cursor=page.next_cursor)


@router.post(
    "/validate", response_model=schemas.ValidateResult, dependencies=[require(Permission.READ)]
)
async def validate_workflow_definition(
    body: schemas.ValidateRequest, org: OrgDep, registry: RegistryDep
) -> schemas.ValidateResult:
    """Check a definition without saving it; every problem is listed with its node id."""
    _, problems = check_definition(body.definition, registry)
    return schemas.ValidateResult(
        valid=not problems,
        errors=[schemas.DefinitionProblem(**p.model_dump()) for p in problems],
    )


@router.get(
    "/{workflow_id}", response_model=schemas.WorkflowOut, dependencies=[require(Permission.READ)]
)
async def get_workflow(workflow_id: str, org: OrgDep, repo: WorkflowsDep) -> schemas.WorkflowOut:
    """Read a workflow and its draft."""
    record = await repo.get(org, workflow_id)
    if record is None:
        raise not_found("workflow", workflow_id)
    return workflow_out(record)


@router.put(
    "/{workflow_id}/draft",
    response_model=schemas.WorkflowOut,
    dependencies=[require(Permission.MANAGE)],
)
async def replace_draft(
    workflow_id: str,
    body: schemas.DraftReplace,
    org: OrgDep,
    repo: WorkflowsDep,
    registry: RegistryDep,
) -> schemas.WorkflowOut:
    """Replace the draft definition (snapshots are untouched)."""
    if await repo.get(org, workflow_id) is None:
        raise not_found("workflow", workflow_id)
    definition = valid_definition(body.definition, registry)
    record = await repo.replace_draft(org, workflow_id, definition)
    if record is None:
        raise not_found("workflow", workflow_id)
    return workflow_out(record)


@router.post(
    "/{workflow_id}/publish",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.SnapshotOut,
    dependencies=[require(Permission.MANAGE)],
)
async def publish_workflow(
    workflow_id: str,
    org: OrgDep,
    repo: WorkflowsDep,
    registry: RegistryDep,
    subworkflows: SubworkflowsDep,
) -> schemas.SnapshotOut:
    """Freeze the draft as the next numbered snapshot and make it the published one; 422 when
    a subworkflow node's target is missing, unpublished or leads back to this workflow."""
    record = await repo.get(org, workflow_id)
    if record is None:
        raise not_found("workflow", workflow_id)
    definition, _ = check_definition(record.draft_definition, registry)
    if definition is not None:  # (an invalid draft is refused when a run starts, as before)
        await subworkflows.resolve(org, workflow_id, definition)
    snapshot = await repo.publish(org, workflow_id)
    if snapshot is None:
        raise not_found("workflow", workflow_id)
    return snapshot_out(snapshot)


@router.get(
    "/{workflow_id}/snapshots",
    response_model=schemas.Page[schemas.SnapshotOut],
    dependencies=[require(Permission.READ)],
)
async def list_snapshots(
    workflow_id: str,
    org: OrgDep,
    repo: WorkflowsDep,
    paging: PageDep,
) -> schemas.Page[schemas.SnapshotOut]:
    """List a workflow's snapshots, newest version first (oldest first with `order=asc`)."""
    if await repo.get(org, workflow_id) is None:
        raise not_found("workflow", workflow_id)
    try:
        page = await repo.list_snapshots(
            org, workflow_id, limit=paging.limit, cursor=paging.cursor, order=paging.order
        )
    except InvalidCursor as error:
        raise cursor_error(error) from None
    return schemas.Page(data=[snapshot_out(r) for r in page.items], next_cursor=page.next_cursor)
