"""The worker wired as worker.py wires it, effects ledger included: node activities record
the requests they send and what they consume into the API's store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.registry import ActivityDeps, default_registry
from activities.usage import Ledger, temporal_organizations
from runlane.settings import Settings
from store.db import Database
from store.secrets import SecretRepository
from store.usage import UsageRepository
from workflows.worker import create_worker


@pytest.fixture
async def ledger(client: Client, database: Database) -> AsyncIterator[Ledger]:
    ledger = Ledger(UsageRepository(database), organizations=temporal_organizations(client))
    try:
        yield ledger
    finally:
        await ledger.close()


@pytest.fixture
async def worker(
    client: Client,
    settings: Settings,
    http_client: httpx.AsyncClient,
    database: Database,
    ledger: Ledger,
) -> AsyncIterator[Worker]:
    deps = ActivityDeps(
        settings=settings,
        http_client=http_client,
        secrets=SecretRepository(database, settings.secret_keys()),
        ledger=ledger,
    )
    async with create_worker(
        client,
        task_queue=settings.task_queue,
        activities=default_registry().activities(deps),
        ledger=ledger,
    ) as running:
        yield running
