"""Human review: reviewers' decisions and their inbox across runs."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from api import schemas
from api.deps import IdempotencyDep, OrgDep, SettingsDep, TemporalDep
from api.errors import conflict
from api.idempotency import Command, claim, claim_slot, previous_result
from api.routes.runs import ReaderDep, record_of
from workflows.models import ReviewDecision
from workflows.run_workflow import RunWorkflow

router = APIRouter(tags=["reviews"])


@router.post(
    "/v1/workflows/runs/{run_id}/reviews/{node_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    responses=schemas.REPLAY_RESPONSES,
)
async def decide_review(
    run_id: str,
    node_id: str,
    body: schemas.ReviewDecisionIn,
    response: Response,
    org: OrgDep,
    settings: SettingsDep,
    client: TemporalDep,
    idempotency: IdempotencyDep,
    reader: ReaderDep,
) -> schemas.RunOut:
    """A reviewer's decision for a waiting human_review node; 409 if it is not waiting."""
    view = await reader.get(org, run_id)  # 404 for a missing run or another organization's
    command = Command(
        org,
        body.command_id,
        "review",
        f"{run_id}/{node_id}",
        body.model_dump(mode="json", exclude={"command_id"}),
    )
    if await previous_result(idempotency, command) is not None:
        response.status_code = status.HTTP_200_OK
        return record_of(view, settings)
    if node_id not in view.state.waiting_for_node_ids:
        raise conflict(
            "review_not_waiting",
            f"Node '{node_id}' of run {run_id} is not waiting for a review (already decided, "
            "not reached yet, or not a human_review node).",
        )
    # Exactly one decision per waiting node and attempt, even when several reviewers click at
    # once: the slot is a row under a unique key. (A retry that runs the node again waits
    # under a new attempt, so it takes a new decision.)
    decided = await claim_slot(
        idempotency,
        org,
        slot=f"review:{run_id}:{node_id}:{view.state.attempt}",
        target=f"{run_id}/{node_id}",
        # Each request is its own holder; a command_id lets its replay re-take the slot.
        holder=body.command_id or uuid.uuid4().hex,
    )
    if not decided:
        raise conflict(
            "review_not_waiting",
            f"Node '{node_id}' of run {run_id} is not waiting for a review: it was just decided.",
        )
    decision = ReviewDecision(node_id=node_id, **body.model_dump(exclude={"command_id"}))
    # The signal operators can also send from the Temporal UI: ordinary workflow tasks, so a
    # retry can later reset to any point after the decision.
    await client.get_workflow_handle(run_id).signal(RunWorkflow.review, decision)
    _, replayed = await claim(idempotency, command, run_id)
    if replayed:
        response.status_code = status.HTTP_200_OK
    return record_of(await reader.get(org, run_id), settings)


@router.get("/v1/reviews", response_model=schemas.Page[schemas.PendingReviewOut])
async def list_reviews(
    org: OrgDep,
    reader: ReaderDep,
    status: Literal["pending"] = "pending",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> schemas.Page[schemas.PendingReviewOut]:
    """The reviewers' inbox: the organization's pending reviews across runs (from Temporal
    visibility; `limit` counts runs, each of which may wait on several nodes)."""
    views, next_cursor = await reader.list_page(
        org, limit=limit, cursor=cursor, status="waiting_for_human"
    )
    items = [
        schemas.PendingReviewOut(
            run_id=view.state.run_id,
            node_id=review.node_id,
            label=review.label,
            instructions=review.instructions,
            payload=review.payload,
            waiting_since=review.waiting_since,
            workflow=schemas.RunWorkflowOut(**view.state.workflow.model_dump()),
        )
        for view in views
        for review in view.state.pending_reviews
    ]
    return schemas.Page(data=items, next_cursor=next_cursor)
