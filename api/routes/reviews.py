"""Human review: reviewers' decisions and their inbox across runs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from api import schemas
from api.deps import CallerDep, JsonBody, OrgDep, PageDep, RunsDep, SettingsDep, require
from api.errors import ApiError
from api.routes.runs import answer
from runlane.permissions import Permission
from runs.reviews import ReviewActor, assigned_to, review_assignees
from workflows.models import ReviewDecision

router = APIRouter(tags=["reviews"], dependencies=[JsonBody], responses=schemas.ERROR_RESPONSES)


@router.post(
    "/v1/workflows/runs/{run_id}/reviews/{node_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RunOut,
    responses=schemas.REPLAY_RESPONSES,
    dependencies=[require(Permission.DECIDE_REVIEW)],
)
async def decide_review(
    run_id: str,
    node_id: str,
    body: schemas.ReviewDecisionIn,
    response: Response,
    org: OrgDep,
    caller: CallerDep,
    settings: SettingsDep,
    runs: RunsDep,
) -> schemas.RunOut:
    """A reviewer's decision for a waiting human_review node; 409 if it is not waiting. With
    a key that has a subject, the subject is the decision's reviewer; a reviewer's key decides
    only reviews assigned to its subject (or to nobody)."""
    fields = body.model_dump(exclude={"command_id"})
    if caller.subject is not None:
        if fields.get("reviewer") not in (None, caller.subject):
            raise ApiError(
                403,
                "reviewer_not_caller",
                f"This API key decides as '{caller.subject}'; leave `reviewer` out or give that.",
                {"errors": [{"loc": ["body", "reviewer"], "message": "not the key's subject"}]},
            )
        fields["reviewer"] = caller.subject
    decision = ReviewDecision(node_id=node_id, **fields)
    actor = ReviewActor(subject=caller.subject, assigned_only=caller.role == "reviewer")
    outcome = await runs.review(org, run_id, decision, command_id=body.command_id, actor=actor)
    return answer(outcome, response, settings)


@router.get(
    "/v1/reviews",
    response_model=schemas.Page[schemas.PendingReviewOut],
    dependencies=[require(Permission.READ_REVIEWS)],
)
async def list_reviews(
    org: OrgDep,
    caller: CallerDep,
    runs: RunsDep,
    paging: PageDep,
    status: Literal["pending"] = "pending",
    assignee: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Only reviews assigned to this reviewer (in `assignees`, or in "
            "`escalate_to` once escalated)",
        ),
    ] = None,
) -> schemas.Page[schemas.PendingReviewOut]:
    """The reviewers' inbox: the organization's pending reviews across runs, newest run first
    (oldest with `order=asc`; `limit` counts runs, each of which may wait on several nodes).
    A reviewer's key sees the reviews it may decide: assigned to its subject, or to nobody."""
    pending, next_cursor = await runs.pending_reviews(
        org, limit=paging.limit, cursor=paging.cursor, order=paging.order
    )
    items = []
    for item in pending:
        review = item.review
        assignees = review_assignees(review)
        if assignee is not None and assignee not in assignees:
            continue
        if caller.role == "reviewer" and not assigned_to(review, caller.subject):
            continue
        items.append(
            schemas.PendingReviewOut(
                run_id=item.view.state.run_id,
                node_id=review.node_id,
                label=review.label,
                instructions=review.instructions,
                payload=review.payload,
                waiting_since=review.waiting_since,
                workflow=schemas.RunWorkflowOut(**item.view.state.workflow.model_dump()),
                data_schema=review.data_schema,
                assignees=assignees,
                approvals_required=review.approvals_required,
                approvals=[schemas.ApprovalOut(**a.model_dump()) for a in review.approvals],
                escalated_at=review.escalated_at,
                escalate_to=review.escalate_to,
            )
        )
    return schemas.Page(data=items, next_cursor=next_cursor)
