"""Recovery, read-only: compare two runs, and dry-run a recorded run against a definition.

Both only read (runs/compare.py, runs/dry_run.py): nothing is called, nothing is started.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api import schemas
from api.deps import JsonBody, OrgDep, RunsDep, require
from runlane.permissions import Permission
from runs.dry_run import DryRunNode

router = APIRouter(
    prefix="/v1/workflows",
    tags=["recovery"],
    dependencies=[JsonBody],
    responses=schemas.ERROR_RESPONSES,
)


@router.get(
    "/runs/{run_id}/compare",
    response_model=schemas.CompareOut,
    dependencies=[require(Permission.READ)],
)
async def compare_runs(
    run_id: str,
    org: OrgDep,
    runs: RunsDep,
    with_: Annotated[
        str | None,
        Query(
            alias="with",
            min_length=1,
            max_length=200,
            description="The run to compare with (`b`); default: the run this one was "
            "restarted or rerun from",
        ),
    ] = None,
) -> schemas.CompareOut:
    """This run (`a`) against another (`b`): definition changes, and per node [a, b] statuses,
    branches and whether the output changed."""
    comparison = await runs.compare(org, run_id, with_)
    changes = comparison.snapshot_changes
    return schemas.CompareOut(
        runs=list(comparison.run_ids),
        snapshot_changes=schemas.SnapshotChangesOut(
            added=changes.added, removed=changes.removed, changed=changes.changed
        ),
        nodes=[
            schemas.CompareNodeOut(
                node_id=node.node_id,
                status=list(node.status),
                output_changed=node.output_changed,
                branch=list(node.branch),
            )
            for node in comparison.nodes
        ],
    )


@router.post(
    "/{workflow_id}/dry-run",
    response_model=schemas.DryRunOut,
    response_model_exclude_unset=True,
    dependencies=[require(Permission.READ)],
)
async def dry_run(
    workflow_id: str, body: schemas.DryRunIn, org: OrgDep, runs: RunsDep
) -> schemas.DryRunOut:
    """A recorded run's inputs evaluated against the draft (or published) definition, without
    side effects: pure nodes evaluated, unchanged nodes with effects reused, the others
    reported as would_call."""
    nodes = await runs.dry_run(org, workflow_id, body.run_id, body.config_source)
    return schemas.DryRunOut(
        run_id=body.run_id,
        workflow_id=workflow_id,
        config_source=body.config_source,
        nodes=[dry_run_node(node) for node in nodes],
    )


def dry_run_node(node: DryRunNode) -> schemas.DryRunNodeOut:
    """Only the fields that apply are set: the answer leaves the others out."""
    applies: dict[str, Any] = {}
    if node.status == "completed":
        applies["output"] = node.output
    if node.error is not None:
        applies["error"] = schemas.DryRunErrorOut(type=node.error.type, message=node.error.message)
    if node.blocked_by:
        applies["blocked_by"] = node.blocked_by
    return schemas.DryRunNodeOut(
        node_id=node.node_id,
        node_type=node.node_type,
        status=node.status,
        differs_from_recorded=node.differs_from_recorded,
        would_call=node.would_call,
        reused=node.reused,
        **applies,
    )
