"""Typed dependencies: settings, the Temporal client, the store, the caller (its organization,
role and subject; what each role may call is api/permissions.py's).

The lifespan (api/main.py) puts the Temporal client and the database on `app.state`; tests
replace these through `app.dependency_overrides`.

Every provider is `async def` although none awaits: FastAPI runs a plain `def` dependency in
its thread pool, and a run's start resolved about 40 of them per request that way (profiled:
thread hand-offs were the API's largest own cost after the event loop itself).
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.routing import iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from activities.registry import NodeRegistry, default_registry
from api.errors import ApiError
from bulk.service import BulkService
from runlane.paging import Order
from runlane.permissions import ACCESS, Permission
from runlane.settings import (
    DEV_ORGANIZATION,
    ApiKeyGrant,
    Role,
    Settings,
    ensure_dev_key,
    get_settings,
    parse_api_keys,
)
from runs.factory import run_service
from runs.reviews import assigned_to
from runs.service import RunService
from runs.starter import PublishedDefinitions
from runs.subworkflows import SubworkflowTargets
from runs.temporal_errors import Reachability
from store.bulk import BulkRepository
from store.db import Database
from store.endpoints import EndpointRepository
from store.files import FileRepository
from store.idempotency import IdempotencyRepository
from store.pagination import CursorOrderMismatch, InvalidCursor
from store.rate_limits import LeasedBuckets, RateLimitRepository
from store.schedules import ScheduleRepository
from store.secrets import SecretRepository
from store.webhooks import InboundWebhookRepository
from store.workflows import WorkflowRepository
from triggers.endpoints import EndpointService
from triggers.inbound import InboundWebhooks
from triggers.schedules import ScheduleService


async def get_api_settings() -> Settings:
    return get_settings()


async def get_registry() -> NodeRegistry:
    return default_registry()


SettingsDep = Annotated[Settings, Depends(get_api_settings)]


async def get_temporal_client(request: Request) -> Client:
    return request.app.state.temporal_client  # type: ignore[no-any-return]


async def get_database(request: Request) -> Database:
    return request.app.state.database  # type: ignore[no-any-return]


TemporalDep = Annotated[Client, Depends(get_temporal_client)]
DatabaseDep = Annotated[Database, Depends(get_database)]
RegistryDep = Annotated[NodeRegistry, Depends(get_registry)]


async def get_workflow_repository(db: DatabaseDep) -> WorkflowRepository:
    return WorkflowRepository(db)


async def get_file_repository(db: DatabaseDep, settings: SettingsDep) -> FileRepository:
    return FileRepository(db, settings.blob_store())


WorkflowsDep = Annotated[WorkflowRepository, Depends(get_workflow_repository)]
FilesDep = Annotated[FileRepository, Depends(get_file_repository)]


async def get_secret_repository(db: DatabaseDep, settings: SettingsDep) -> SecretRepository:
    # The lifespan refused to start without a valid RUNLANE_SECRETS_KEY: this parses (cached).
    return SecretRepository(db, settings.secret_keys())


SecretsDep = Annotated[SecretRepository, Depends(get_secret_repository)]


async def get_published_definitions(request: Request) -> PublishedDefinitions:
    return request.app.state.published_definitions  # type: ignore[no-any-return]


PublishedDep = Annotated[PublishedDefinitions, Depends(get_published_definitions)]


async def get_temporal_reachability(request: Request) -> Reachability | None:
    """The lifespan's watch on Temporal; None (calls find out for themselves, slowly) in an
    app run without its lifespan."""
    return getattr(request.app.state, "temporal_reachability", None)


ReachabilityDep = Annotated[Reachability | None, Depends(get_temporal_reachability)]


async def get_run_service(
    request: Request,
    client: TemporalDep,
    settings: SettingsDep,
    database: DatabaseDep,
    registry: RegistryDep,
    published: PublishedDep,
    reachability: ReachabilityDep,
) -> RunService:
    return run_service(
        client=client,
        database=database,
        settings=settings,
        registry=registry,
        published=published,
        reachability=reachability,
        # The app's metrics count the runs it starts (api/routes/metrics.py).
        run_started=request.app.state.metrics.run_started,
    )


RunsDep = Annotated[RunService, Depends(get_run_service)]


async def get_inbound_webhooks(
    database: DatabaseDep,
    settings: SettingsDep,
    workflows: WorkflowsDep,
    registry: RegistryDep,
    published: PublishedDep,
    runs: RunsDep,
) -> InboundWebhooks:
    # The lifespan refused to start without a valid RUNLANE_SECRETS_KEY: this parses (cached).
    return InboundWebhooks(
        webhooks=InboundWebhookRepository(database, settings.secret_keys()),
        workflows=workflows,
        registry=registry,
        published=published,
        runs=runs,
    )


InboundDep = Annotated[InboundWebhooks, Depends(get_inbound_webhooks)]


async def get_schedule_service(
    client: TemporalDep, database: DatabaseDep, settings: SettingsDep, runs: RunsDep
) -> ScheduleService:
    return ScheduleService(
        client=client,
        schedules=ScheduleRepository(database),
        runs=runs,
        task_queue=settings.task_queue,
    )


SchedulesDep = Annotated[ScheduleService, Depends(get_schedule_service)]


async def get_endpoint_service(db: DatabaseDep, settings: SettingsDep) -> EndpointService:
    # The lifespan refused to start without a valid RUNLANE_SECRETS_KEY: this parses (cached).
    return EndpointService(
        EndpointRepository(db, settings.secret_keys()), allow_private=settings.http_allow_private
    )


EndpointsDep = Annotated[EndpointService, Depends(get_endpoint_service)]


async def get_bulk_service(
    client: TemporalDep, database: DatabaseDep, settings: SettingsDep, runs: RunsDep
) -> BulkService:
    return BulkService(
        client=client,
        runs=runs,
        repo=BulkRepository(database),
        idempotency=IdempotencyRepository(database),
        settings=settings,
    )


BulkDep = Annotated[BulkService, Depends(get_bulk_service)]


async def get_subworkflow_targets(
    workflows: WorkflowsDep, registry: RegistryDep, published: PublishedDep
) -> SubworkflowTargets:
    return SubworkflowTargets(workflows, registry, published)


SubworkflowsDep = Annotated[SubworkflowTargets, Depends(get_subworkflow_targets)]


@lru_cache
def _key_map(raw_keys: str, dev_key_path: Path) -> dict[str, ApiKeyGrant]:
    if raw_keys.strip():
        return parse_api_keys(raw_keys)
    return {ensure_dev_key(dev_key_path): ApiKeyGrant(DEV_ORGANIZATION)}


_api_key_header = APIKeyHeader(name="Api-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class Caller:
    """Who is calling: its API key's organization, role and subject (RUNLANE_API_KEYS
    `key:org[:role[:subject]]`)."""

    organization: str
    role: Role = "admin"
    subject: str | None = None


def _grant_of(
    settings: Settings, api_key: str | None, bearer: HTTPAuthorizationCredentials | None
) -> ApiKeyGrant:
    key = api_key or (bearer.credentials if bearer else None)
    if not key:
        raise ApiError(401, "missing_api_key", "Send your API key as 'Api-Key: <key>'.")
    found = None
    for known, grant in _key_map(settings.api_keys, settings.dev_key_path).items():
        # surrogatepass: a key posted as JSON may hold a lone surrogate; it matches no key.
        if hmac.compare_digest(known.encode(), key.encode("utf-8", "surrogatepass")):
            found = grant
    if found is None:
        raise ApiError(401, "invalid_api_key", "Unknown API key.")
    return found


async def current_caller(
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Caller:
    """The caller's API key (`Api-Key` or `Authorization: Bearer`): organization, role, subject."""
    grant = _grant_of(settings, api_key, bearer)
    return Caller(grant.organization, grant.role, grant.subject)


async def current_organization(
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str:
    """The organization of the caller's API key (`Api-Key` or `Authorization: Bearer`)."""
    return _grant_of(settings, api_key, bearer).organization


OrgDep = Annotated[str, Depends(current_organization)]
CallerDep = Annotated[Caller, Depends(current_caller)]


# ---------------------------------------------------------------- rate limit
# Requests per organization (API.md "Access control"): a token bucket of
# `RUNLANE_RATE_LIMIT_BURST` tokens refilled at `RUNLANE_RATE_LIMIT_PER_S` a second, kept in
# the relational store so that every API replica spends from the same one
# (store/rate_limits.py). Routes that authenticate with an API key depend on it (router
# dependencies, api/main.py): the key is checked first (a request without a valid key spends
# nothing), then one token is taken; without one: `429 rate_limited` with `Retry-After`, the
# whole seconds until a token is back.


def rate_limited(retry_after_s: float, rate: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after_s))
    return ApiError(
        429,
        "rate_limited",
        f"Too many requests for this organization (limit {rate:g} a second); "
        f"retry after {seconds} s.",
        {"retry_after_s": seconds, "limit_per_s": rate},
        headers={"Retry-After": str(seconds)},
    )


async def enforce_rate_limit(
    request: Request, organization: OrgDep, settings: SettingsDep, database: DatabaseDep
) -> None:
    rate = settings.rate_limit_per_s
    if rate <= 0:
        return
    # The app's leases (one per process) spend tokens taken from the shared bucket a few at
    # a time; store/rate_limits.py says how far that lets the limit stray.
    leases: LeasedBuckets = request.app.state.rate_limits
    buckets = RateLimitRepository(database)
    burst = settings.rate_limit_burst_tokens
    admission = await leases.admit(
        buckets, organization, rate=rate, burst=burst, lease_seconds=settings.rate_limit_lease_s
    )
    if not admission.allowed:
        raise rate_limited(admission.retry_after_s, rate)


RateLimited = Depends(enforce_rate_limit)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def require_json(request: Request) -> None:
    """JSON endpoints read JSON only: a body declared as another type (curl's `-d` sends
    form encoding) is refused with 415 saying so, rather than misread. No declared type is
    read as JSON."""
    content_type = request.headers.get("content-type")
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    if content_type and has_body and not _is_json(content_type):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"This endpoint reads JSON; the body was sent as '{content_type}'. "
            "Send it with 'Content-Type: application/json'.",
        )


JsonBody = Depends(require_json)


@dataclass(frozen=True)
class PageParams:
    """What every list endpoint pages by (API.md "Pagination" and "Seed compatibility")."""

    limit: int
    cursor: str | None
    order: Order


# What every cursor this API writes looks like (base64url, well under 1 KiB). Documented, not
# enforced here: a cursor the API did not write is refused as `invalid_cursor` by its lister,
# whatever it looks like.
CURSOR_SHAPE = {"pattern": "^[A-Za-z0-9_-]{1,1024}$"}


async def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Items per page (1-200)")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            description="The previous page's `next_cursor`: the next page",
            json_schema_extra=CURSOR_SHAPE,
        ),
    ] = None,
    after: Annotated[
        str | None,
        Query(
            description="Another name for `cursor` (the previous page's `list_metadata.after`)",
            json_schema_extra=CURSOR_SHAPE,
        ),
    ] = None,
    order: Annotated[
        Order,
        Query(description="By creation time: `desc` newest first (default), `asc` oldest first"),
    ] = "desc",
    sort_by: Annotated[
        Literal["created_at"], Query(description="What `order` sorts by: only `created_at`")
    ] = "created_at",
) -> PageParams:
    if cursor is not None and after is not None and cursor != after:
        message = "after is another name for cursor: give one of them (or the same value)."
        raise ApiError(
            422,
            "invalid_cursor",
            message,
            {"errors": [{"loc": ["query", "after"], "message": message}]},
        )
    return PageParams(limit=limit, cursor=cursor if cursor is not None else after, order=order)


PageDep = Annotated[PageParams, Depends(page_params)]


def cursor_error(error: InvalidCursor) -> ApiError:
    """A store's refusal of a cursor, as every list endpoint answers it."""
    message = "cursor is not one this API returned."
    if isinstance(error, CursorOrderMismatch):
        message = str(error)
    errors = [{"loc": ["query", "cursor"], "message": message}]
    return ApiError(422, "invalid_cursor", message, {"errors": errors})


# ---------------------------------------------------------------- access control
# The policy is runlane/permissions.py's table; this is the one place that enforces it.


def forbidden(caller: Caller, permission: Permission) -> ApiError:
    return ApiError(
        403,
        "forbidden",
        f"An API key with the role '{caller.role}' may not do this (it needs "
        f"'{permission.value}').",
        {"role": caller.role, "permission": permission.value},
    )


async def _reviewer_may_read(caller: Caller, run_id: str, runs: RunService) -> bool:
    view = await runs.get(caller.organization, run_id)
    return any(assigned_to(review, caller.subject) for review in view.state.pending_reviews)


def require(permission: Permission) -> Any:
    """The dependency a route declares: the caller (401 without a known key), 403 unless its
    role has `permission`."""
    if permission is Permission.READ_RUN:

        async def check_run(caller: CallerDep, request: Request, runs: RunsDep) -> Caller:
            access = ACCESS[permission][caller.role]
            if access == "waiting":
                run_id = request.path_params["run_id"]
                if await _reviewer_may_read(caller, run_id, runs):
                    return caller
                raise ApiError(
                    403,
                    "run_not_waiting_for_you",
                    f"A reviewer's key reads only runs waiting for its review; run {run_id} "
                    "waits for no review assigned to it.",
                    {"role": caller.role, "permission": permission.value},
                )
            if access != "yes":
                raise forbidden(caller, permission)
            return caller

        check: Callable[..., Any] = check_run
    else:

        async def check_role(caller: CallerDep) -> Caller:
            if ACCESS[permission][caller.role] != "yes":
                raise forbidden(caller, permission)
            return caller

        check = check_role
    check.permission = permission  # type: ignore[attr-defined]  # read by permission_of
    return Depends(check)


def permission_of(route: Any) -> Permission | None:
    """The permission a route declared with `require` (None: none)."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    found = [
        dep.call.permission
        for dep in dependant.dependencies
        if isinstance(getattr(dep.call, "permission", None), Permission)
    ]
    return found[0] if len(found) == 1 else None


def declared_permissions(app: FastAPI) -> Iterator[tuple[str, str, Permission | None]]:
    """Every (method, path, declared permission) the app answers, OpenAPI pages aside."""
    for context in iter_route_contexts(app.routes):
        path = context.path_format
        if path is None or path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"):
            continue
        for method in sorted((context.methods or set()) - {"HEAD"}):
            yield method, path, permission_of(context)
