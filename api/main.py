"""The FastAPI application: `uvicorn api.main:app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from api import schemas
from api.deps import TemporalDep
from api.errors import install_error_handlers
from api.limits import RequestSizeLimit
from api.routes import codec, files, node_types, recovery, reviews, runs, web, workflows
from runlane.settings import get_settings
from runlane.temporal import connect
from store.db import Database

log = logging.getLogger("runlane.api")

DESCRIPTION = """Durable workflow runs on Temporal.

Authenticate with `Api-Key: <key>` or `Authorization: Bearer <key>`. Errors always have the
body `{"error": {"type", "code", "message", "details"}}`."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    database = Database(settings.resolved_database_url)
    await database.create_all()
    app.state.database = database
    app.state.temporal_client = await connect(settings, lazy=True)
    log.info("Runlane API ready; Temporal at %s", settings.temporal_address)
    try:
        yield
    finally:
        await database.dispose()


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


def create_app() -> FastAPI:
    app = FastAPI(title="Runlane", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(RequestSizeLimit, limit_bytes=lambda: get_settings().request_limit_bytes)
    # Runs first: `/v1/workflows/runs` must not be read as a workflow id.
    app.include_router(runs.router)
    app.include_router(recovery.router)
    app.include_router(reviews.router)
    app.include_router(workflows.router)
    app.include_router(files.router)
    app.include_router(node_types.router)
    app.include_router(web.router)
    app.include_router(codec.router)
    app.add_api_route(
        "/healthz",
        healthz,
        methods=["GET"],
        tags=["health"],
        response_model=schemas.Health,
        responses={503: {"model": schemas.Health}},
    )
    # Node-type config schemas come from the registry the validator uses.
    app.openapi = lambda: node_types.openapi_with_node_configs(app)  # type: ignore[method-assign]
    return app


app = create_app()
