"""Inbound webhooks (API.md "Triggers"): signed calls that start runs of a workflow.

Two routers: managing webhooks is an organization's API call like any other (API key, JSON
bodies); a delivery to `/hooks/{webhook_id}` carries no API key, proves itself by its Standard
Webhooks signature instead, and is read as raw bytes, since the signature covers them exactly.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status

from api import schemas
from api.deps import (
    InboundDep,
    JsonBody,
    OrgDep,
    PageDep,
    RateLimited,
    cursor_error,
    require,
)
from runlane.permissions import Permission
from store.pagination import InvalidCursor
from store.webhooks import InboundWebhookRecord

RECEIVE_ROUTE = "receive_webhook"


OptionalWebhookCreate = Annotated[schemas.WebhookCreate | None, Body()]

management = APIRouter(
    tags=["webhooks"], dependencies=[JsonBody, RateLimited], responses=schemas.ERROR_RESPONSES
)


def webhook_out(record: InboundWebhookRecord, request: Request) -> dict[str, Any]:
    return {
        "id": record.id,
        "workflow_id": record.workflow_id,
        "input_node": record.input_node,
        "config_source": record.config_source,
        # Absolute, from the address this request came to (not from settings): the URL a
        # sender reaches this API by.
        "url": str(request.url_for(RECEIVE_ROUTE, webhook_id=record.id)),
        "created_at": record.created_at,
    }


@management.post(
    "/v1/workflows/{workflow_id}/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.WebhookCreated,
    dependencies=[require(Permission.MANAGE)],
)
async def create_webhook(
    workflow_id: str,
    request: Request,
    org: OrgDep,
    inbound: InboundDep,
    body: OptionalWebhookCreate = None,
) -> schemas.WebhookCreated:
    """Create an inbound webhook: signed calls to its `url` start runs of this workflow. The
    answer holds its signing `secret`, shown this once only: keep it."""
    wanted = body or schemas.WebhookCreate()
    created = await inbound.create(
        org, workflow_id, input_node=wanted.input_node, config_source=wanted.config_source
    )
    return schemas.WebhookCreated(**webhook_out(created.webhook, request), secret=created.secret)


@management.get(
    "/v1/workflows/{workflow_id}/webhooks",
    response_model=schemas.Page[schemas.WebhookOut],
    dependencies=[require(Permission.READ)],
)
async def list_webhooks(
    workflow_id: str, request: Request, org: OrgDep, inbound: InboundDep, paging: PageDep
) -> schemas.Page[schemas.WebhookOut]:
    """The workflow's inbound webhooks, newest first (oldest first with `order=asc`); never
    their secrets."""
    try:
        page = await inbound.list(
            org, workflow_id, limit=paging.limit, cursor=paging.cursor, order=paging.order
        )
    except InvalidCursor as error:
        raise cursor_error(error) from None
    return schemas.Page(
        data=[schemas.WebhookOut(**webhook_out(r, request)) for r in page.items],
        next_cursor=page.next_cursor,
    )


@management.delete(
    "/v1/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[require(Permission.MANAGE)],
)
async def delete_webhook(webhook_id: str, org: OrgDep, inbound: InboundDep) -> Response:
    """Delete an inbound webhook: its calls answer 404 from now on; its runs stay."""
    await inbound.delete(org, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- deliveries


def _error(description: str) -> dict[str, Any]:
    return {"model": schemas.ErrorBody, "description": description}


def _signature_header(name: str, description: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": True,
        "description": description,
        "schema": {"type": "string", "example": example},
    }


hooks = APIRouter(tags=["webhooks"])


@hooks.post(
    "/hooks/{webhook_id}",
    name=RECEIVE_ROUTE,
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.WebhookRunOut,
    responses={
        200: {
            "model": schemas.WebhookRunOut,
            "description": "A `webhook-id` this webhook received before: the first call's run; "
            "nothing new is started",
        },
        401: _error(
            "The signature does not verify (missing or malformed headers, another secret, a "
            "changed body, a timestamp more than 5 minutes off): no run is started"
        ),
        404: _error("No such webhook (or it was deleted)"),
        409: _error("The workflow has nothing published (a `published` webhook)"),
        413: _error("A body over the request limit, or over 4 MiB of JSON for a run's inputs"),
        422: _error(
            "A body that is not JSON, a malformed `webhook-id`, or JSON the input node's schema "
            "refuses; every problem in `details.errors`"
        ),
        503: _error("Temporal cannot be reached right now"),
    },
    openapi_extra={
        "parameters": [
            _signature_header(
                "webhook-id",
                "The delivery's unique id (1-256 visible ASCII characters): sent again, the "
                "first run is answered (200) and no second one starts",
                "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            ),
            _signature_header(
                "webhook-timestamp",
                "When the call was signed, in Unix seconds; more than 5 minutes off: 401",
                "1700000000",
            ),
            _signature_header(
                "webhook-signature",
                "`v1,<base64 of HMAC-SHA256 of '<webhook-id>.<webhook-timestamp>.<body>' under "
                "the secret's bytes (base64 after `whsec_`)>`; several, space-separated, are "
                "allowed (one must match)",
                "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
            ),
        ],
        "requestBody": {
            "required": True,
            "description": "Any JSON value, signed byte for byte: it becomes the run's input "
            "of the webhook's `input_node`",
            "content": {"application/json": {"schema": {}}},
        },
    },
)
async def receive_webhook(
    webhook_id: str, request: Request, response: Response, inbound: InboundDep
) -> schemas.WebhookRunOut:
    """Start a run from a signed call (no API key: the Standard Webhooks signature under the
    webhook's secret proves the sender). The JSON body becomes the input of the webhook's
    `input_node`; the run's trigger is `{"type": "webhook", "webhook_id", "delivery_id"}`."""
    # The raw bytes, whatever the declared type: the signature covers exactly these.
    body = await request.body()
    outcome = await inbound.receive(webhook_id, body, request.headers)
    if outcome.replayed:
        response.status_code = status.HTTP_200_OK
    state = outcome.view.state
    return schemas.WebhookRunOut(run_id=state.run_id, status=state.status)


router = APIRouter()
router.include_router(management)
router.include_router(hooks)
