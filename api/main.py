"""The FastAPI application: `uvicorn api.main:app`."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace import TracerProvider
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import schemas
from api.deps import RateLimited, TemporalDep
from api.errors import ApiError, error_body, install_error_handlers
from api.routes import (
    bulk,
    codec,
    codec_session,
    compare,
    endpoints,
    files,
    metrics,
    node_types,
    recovery,
    reviews,
    runs,
    schedules,
    secrets,
    usage,
    web,
    webhooks,
    workflows,
)
from runlane.logs import log_context
from runlane.settings import get_settings
from runlane.telemetry import API_SERVICE, tracer_provider
from runlane.temporal import connect
from runs.reviews import DecisionSweep
from runs.starter import PublishedDefinitions
from runs.temporal_errors import Reachability
from store.db import Database
from store.decisions import DecisionRepository
from store.migrate import upgrade_to_head
from store.rate_limits import LeasedBuckets

log = logging.getLogger("runlane.api")

DESCRIPTION = """Durable workflow runs on Temporal.

Authenticate with `Api-Key: <key>` or `Authorization: Bearer <key>`. Errors always have the
body `{"error": {"type", "code", "message", "details"}}`."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    # Refuses to start (SecretsKeyError, saying what to set) without a valid
    # RUNLANE_SECRETS_KEY: `make run` passes one, anywhere else it is required.
    settings.secret_keys()
    # Refuses to start (BlobUrlError, naming the variable) when RUNLANE_BLOB_URL is malformed.
    settings.blob_store()
    # Refuses to start (ValueError naming the entry) on a malformed RUNLANE_API_KEYS or an
    # unknown role, rather than guess what a key may do.
    settings.api_key_grants()
    # Pending migrations first (store/migrate.py); replicas starting together take turns.
    await upgrade_to_head(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    app.state.database = database
    provider = app.state.tracer_provider
    app.state.temporal_client = await connect(settings, lazy=True, tracer_provider=provider)
    # Answers 503 at once while Temporal is gone, not after the SDK's retries.
    reachability = Reachability(app.state.temporal_client).start()
    app.state.temporal_reachability = reachability
    # Delivers reviewers' decisions whose signal had an unknown outcome (runs/reviews.py).
    sweep = DecisionSweep(app.state.temporal_client, DecisionRepository(database)).start()
    log.info("Runlane API ready; Temporal at %s", settings.temporal_address)
    try:
        yield
    finally:
        await sweep.stop()
        await reachability.stop()
        await database.dispose()
        if provider is not None:
            provider.shutdown()  # exports the spans still batched


async def healthz(client: TemporalDep) -> JSONResponse:
    """Liveness, and whether the Temporal frontend answers (no auth)."""
    try:
        reachable = await client.service_client.check_health(timeout=timedelta(seconds=2))
    except Exception:  # noqa: BLE001 - any failure to reach Temporal means unreachable
        reachable = False
    if reachable:
        return JSONResponse(schemas.Health(status="ok", temporal="ok").model_dump())
    body = schemas.Health(status="degraded", temporal="unreachable").model_dump()
    return JSONResponse(body, status_code=503)


# ---------------------------------------------------------------- request size limit
# Bodies over `RUNLANE_MAX_REQUEST_BYTES` are refused before they are read whole: a declared
# `Content-Length` over the limit is answered at once, without reading a byte; a body without
# one (chunked) is counted as it streams in and refused as soon as the count passes the limit.
# Either way: `413 request_too_large` with API.md's error body.


class RequestTooLarge(HTTPException):
    """Raised from the body stream: FastAPI re-raises HTTP exceptions met while reading a
    body (it would turn any other error there into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=_message(limit))
        self.details = {"limit_bytes": limit}


def _message(limit: int) -> str:
    return f"The request body is larger than the limit of {limit} bytes."


def too_large(limit: int) -> ApiError:
    return ApiError(413, "request_too_large", _message(limit), {"limit_bytes": limit})


class RequestSizeLimit:
    def __init__(self, app: ASGIApp, limit_bytes: Callable[[], int]) -> None:
        self._app = app
        self._limit_bytes = limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = self._limit_bytes()
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        await self._app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    error = too_large(limit)
    body = json.dumps(error_body(error.status, error.code, error.message, error.details)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# Routes authenticated by an API key spend the organization's rate limit (api/deps.py);
# webhooks' management routes take it in api/routes/webhooks.py, beside the signed hooks that
# do not. Health, the reviewers' page and the codec (the Temporal UI's) are not limited.
LIMITED = [RateLimited]


# ---------------------------------------------------------------- run ids in log lines
# The access log line of a request about a run (`/v1/workflows/runs/{run_id}/...`) carries its
# `run_id` (runlane/logs.py): the server writes that line as the response starts, from this
# `send`, by which time routing has put the path's parameters into the (shared) scope.


class RunLogContext:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_run_id(message: Message) -> None:
            run_id = scope.get("path_params", {}).get("run_id")
            if message["type"] != "http.response.start" or not isinstance(run_id, str):
                await send(message)
                return
            with log_context(run_id=run_id):
                await send(message)

        await self._app(scope, receive, send_with_run_id)


def create_app(*, tracer_provider: TracerProvider | None = None) -> FastAPI:
    """With `tracer_provider` (runlane/telemetry.py), every request gets a server span, the
    parent of what it does in Temporal; without one nothing is instrumented."""
    app = FastAPI(title="Runlane", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.tracer_provider = tracer_provider
    # Immutable published definitions, checked once per process (runs/starter.py).
    app.state.published_definitions = PublishedDefinitions()
    # This process's leases of the organizations' rate-limit tokens (api/deps.py).
    app.state.rate_limits = LeasedBuckets()
    install_error_handlers(app)
    app.add_middleware(RequestSizeLimit, limit_bytes=lambda: get_settings().request_limit_bytes)
    app.add_middleware(RunLogContext)
    # Outermost: counts and times every request, the size limit's refusals too
    # (api/routes/metrics.py).
    app.state.metrics = metrics.ApiMetrics()
    app.add_middleware(
        metrics.RequestMetrics,
        metrics=app.state.metrics,
        enabled=lambda: get_settings().api_metrics,
    )
    # Runs first: `/v1/workflows/runs` must not be read as a workflow id.
    app.include_router(runs.router, dependencies=LIMITED)
    app.include_router(recovery.router, dependencies=LIMITED)
    app.include_router(compare.router, dependencies=LIMITED)
    app.include_router(bulk.router, dependencies=LIMITED)
    app.include_router(usage.router, dependencies=LIMITED)
    app.include_router(reviews.router, dependencies=LIMITED)
    app.include_router(workflows.router, dependencies=LIMITED)
    app.include_router(files.router, dependencies=LIMITED)
    app.include_router(secrets.router, dependencies=LIMITED)
    app.include_router(schedules.router, dependencies=LIMITED)
    app.include_router(webhooks.router)
    app.include_router(endpoints.router, dependencies=LIMITED)
    app.include_router(node_types.router, dependencies=LIMITED)
    app.include_router(web.router)
    app.include_router(codec.router)
    app.include_router(codec_session.router)
    app.add_api_route(
        "/healthz",
        healthz,
        methods=["GET"],
        tags=["health"],
        response_model=schemas.Health,
        responses={503: {"model": schemas.Health}},
    )
    app.include_router(metrics.router)
    # Node-type config schemas come from the registry the validator uses.
    app.openapi = lambda: node_types.openapi_with_node_configs(app)  # type: ignore[method-assign]
    if tracer_provider is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # One server span per request: the ASGI send/receive spans would add one per event
        # (a span per SSE message) and say nothing the server span does not.
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracer_provider, exclude_spans=["receive", "send"]
        )
    return app


# Tracing is on when an OTEL_* exporter is configured (runlane/telemetry.py).
app = create_app(tracer_provider=tracer_provider(API_SERVICE))
