"""Store fixtures: every test runs against SQLite and, when configured, PostgreSQL.

Self-contained on purpose: nothing here needs Temporal or the top-level conftest.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from runlane.blobs import LocalBlobStore
from store.db import Database
from store.files import FileRepository
from store.idempotency import IdempotencyRepository
from store.migrate import upgrade_to_head
from store.workflows import WorkflowRepository

POSTGRES_URL_ENV = "RUNLANE_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'runlane.sqlite'}"
        await upgrade_to_head(sqlite_url)
        database = Database(sqlite_url)
        yield database
        await database.dispose()
        return

    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set (e.g. postgresql+asyncpg://user@host/db)")
    # One schema per test: tests cannot see each other's rows, and dropping it cleans up.
    schema = f"runlane_test_{uuid.uuid4().hex[:12]}"
    database = Database(url, schema=schema)
    try:
        await upgrade_to_head(url, schema=schema)
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await database.dispose()


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
def workflows(db: Database) -> WorkflowRepository:
    return WorkflowRepository(db)


@pytest.fixture
def files(db: Database, blobs: LocalBlobStore) -> FileRepository:
    return FileRepository(db, blobs)


@pytest.fixture
def idempotency(db: Database) -> IdempotencyRepository:
    return IdempotencyRepository(db)
