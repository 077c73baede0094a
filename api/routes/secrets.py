"""Organizations' secrets: written here, read only by the activities that send them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from api import schemas
from api.deps import JsonBody, OrgDep, PageDep, SecretsDep, cursor_error, require
from runlane.errors import not_found
from runlane.permissions import Permission
from runlane.templating import SECRET_NAME_PATTERN
from store.pagination import InvalidCursor
from store.secrets import SecretRecord

router = APIRouter(
    prefix="/v1/secrets",
    tags=["secrets"],
    dependencies=[JsonBody],
    responses=schemas.ERROR_RESPONSES,
)

SecretName = Annotated[
    str,
    Path(
        pattern=SECRET_NAME_PATTERN,
        description="1-64 letters, digits or '_'; templates read it as `{{$secrets.<name>}}`",
    ),
]


def secret_out(record: SecretRecord) -> schemas.SecretOut:
    return schemas.SecretOut(
        name=record.name, created_at=record.created_at, updated_at=record.updated_at
    )


@router.put("/{name}", response_model=schemas.SecretOut, dependencies=[require(Permission.MANAGE)])
async def put_secret(
    name: SecretName, body: schemas.SecretPut, org: OrgDep, secrets: SecretsDep
) -> schemas.SecretOut:
    """Create or replace a secret; its value is stored encrypted and never answered back."""
    return secret_out(await secrets.put(org, name, body.value))


@router.get(
    "", response_model=schemas.Page[schemas.SecretOut], dependencies=[require(Permission.READ)]
)
async def list_secrets(
    org: OrgDep, secrets: SecretsDep, paging: PageDep
) -> schemas.Page[schemas.SecretOut]:
    """The organization's secrets, names only, newest first (oldest first with `order=asc`)."""
    try:
        page = await secrets.list(org, limit=paging.limit, cursor=paging.cursor, order=paging.order)
    except InvalidCursor as error:
        raise cursor_error(error) from None
    return schemas.Page(data=[secret_out(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/{name}", response_model=schemas.SecretOut, dependencies=[require(Permission.READ)])
async def get_secret(name: SecretName, org: OrgDep, secrets: SecretsDep) -> schemas.SecretOut:
    """A secret's name and times (never its value)."""
    record = await secrets.get(org, name)
    if record is None:
        raise not_found("secret", name)
    return secret_out(record)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[require(Permission.MANAGE)],
)
async def delete_secret(name: SecretName, org: OrgDep, secrets: SecretsDep) -> Response:
    """Delete a secret; runs that reference it no longer start (422 `unknown_secret`)."""
    if not await secrets.delete(org, name):
        raise not_found("secret", name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
