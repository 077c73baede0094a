"""Human review: reviewers' decisions and their inbox across runs."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status

from api import schemas
from api.deps import JsonBody, OrgDep, PageDep, RunsDep, SettingsDep
from api.routes.runs import answer
from workflows.models import ReviewDecision

router = APIRouter(tags=["reviews"], dependencies=[JsonBody], responses=schemas.ERROR_RESPONSES)


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
    runs: RunsDep,
) -> schemas.RunOut:
    """A reviewer's decision for a waiting human_review node; 409 if it is not waiting."""
    decision = ReviewDecision(node_id=node_id, **body.model_dump(exclude={"command_id"}))
    outcome = await runs.review(org, run_id, decision, command_id=body.command_id)
    return answer(outcome, response, settings)


@router.get("/v1/reviews", response_model=schemas.Page[schemas.PendingReviewOut])
async def list_reviews(
    org: OrgDep,
    runs: RunsDep,
    paging: PageDep,
    status: Literal["pending"] = "pending",
) -> schemas.Page[schemas.PendingReviewOut]:
    """The reviewers' inbox: the organization's pending reviews across runs, newest run first
    (oldest with `order=asc`; `limit` counts runs, each of which may wait on several nodes)."""
    pending, next_cursor = await runs.pending_reviews(
        org, limit=paging.limit, cursor=paging.cursor, order=paging.order
    )
    items = [
        schemas.PendingReviewOut(
            run_id=item.view.state.run_id,
            node_id=item.review.node_id,
            label=item.review.label,
            instructions=item.review.instructions,
            payload=item.review.payload,
            waiting_since=item.review.waiting_since,
            workflow=schemas.RunWorkflowOut(**item.view.state.workflow.model_dump()),
        )
        for item in pending
    ]
    return schemas.Page(data=items, next_cursor=next_cursor)
