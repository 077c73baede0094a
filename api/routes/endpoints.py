"""Outbound event webhooks (API.md "Triggers"): endpoints an organization subscribes, and
the log of what was delivered to them."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api import schemas
from api.deps import EndpointsDep, JsonBody, OrgDep, PageDep, cursor_error, require
from runlane.permissions import Permission
from store.endpoints import DeliveryRecord, EndpointRecord
from store.pagination import InvalidCursor

router = APIRouter(
    prefix="/v1/webhook-endpoints",
    tags=["event webhooks"],
    dependencies=[JsonBody],
    responses=schemas.ERROR_RESPONSES,
)


def endpoint_out(record: EndpointRecord) -> schemas.WebhookEndpointOut:
    return schemas.WebhookEndpointOut(
        id=record.id,
        url=record.url,
        events=record.events,
        description=record.description,
        disabled=record.disabled,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def delivery_out(record: DeliveryRecord) -> schemas.WebhookDeliveryOut:
    return schemas.WebhookDeliveryOut.model_validate(record, from_attributes=True)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.WebhookEndpointCreated,
    dependencies=[require(Permission.MANAGE)],
)
async def create_endpoint(
    body: schemas.WebhookEndpointCreate, org: OrgDep, endpoints: EndpointsDep
) -> schemas.WebhookEndpointCreated:
    """Subscribe a URL to run events; the answer holds its signing secret, shown only here."""
    record, secret = await endpoints.create(
        org, url=body.url, events=body.events, description=body.description
    )
    return schemas.WebhookEndpointCreated(**endpoint_out(record).model_dump(), secret=secret)


@router.get(
    "",
    response_model=schemas.Page[schemas.WebhookEndpointOut],
    dependencies=[require(Permission.READ)],
)
async def list_endpoints(
    org: OrgDep, endpoints: EndpointsDep, paging: PageDep
) -> schemas.Page[schemas.WebhookEndpointOut]:
    """The organization's endpoints, newest first (oldest first with `order=asc`)."""
    try:
        page = await endpoints.list(
            org, limit=paging.limit, cursor=paging.cursor, order=paging.order
        )
    except InvalidCursor as error:
        raise cursor_error(error) from None
    return schemas.Page(data=[endpoint_out(r) for r in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{endpoint_id}",
    response_model=schemas.WebhookEndpointOut,
    dependencies=[require(Permission.READ)],
)
async def get_endpoint(
    endpoint_id: str, org: OrgDep, endpoints: EndpointsDep
) -> schemas.WebhookEndpointOut:
    """An endpoint (never its secret)."""
    return endpoint_out(await endpoints.get(org, endpoint_id))


@router.patch(
    "/{endpoint_id}",
    response_model=schemas.WebhookEndpointOut,
    dependencies=[require(Permission.MANAGE)],
)
async def update_endpoint(
    endpoint_id: str, body: schemas.WebhookEndpointPatch, org: OrgDep, endpoints: EndpointsDep
) -> schemas.WebhookEndpointOut:
    """Change an endpoint's `url`, `events`, `disabled` or `description`."""
    record = await endpoints.update(
        org,
        endpoint_id,
        url=body.url,
        events=body.events,
        disabled=body.disabled,
        description=body.description,
    )
    return endpoint_out(record)


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[require(Permission.MANAGE)],
)
async def delete_endpoint(endpoint_id: str, org: OrgDep, endpoints: EndpointsDep) -> Response:
    """Delete an endpoint and its delivery log; deliveries in progress stop."""
    await endpoints.delete(org, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=schemas.Page[schemas.WebhookDeliveryOut],
    dependencies=[require(Permission.READ)],
)
async def list_deliveries(
    endpoint_id: str, org: OrgDep, endpoints: EndpointsDep, paging: PageDep
) -> schemas.Page[schemas.WebhookDeliveryOut]:
    """The endpoint's delivery log: one entry per event, newest first."""
    try:
        page = await endpoints.deliveries(
            org, endpoint_id, limit=paging.limit, cursor=paging.cursor, order=paging.order
        )
    except InvalidCursor as error:
        raise cursor_error(error) from None
    return schemas.Page(data=[delivery_out(r) for r in page.items], next_cursor=page.next_cursor)
