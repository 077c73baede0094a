"""Alembic owns the schema: an empty database and the previous release's schema (made by
`create_all`, frozen in fixtures/) both reach head, rows kept, on SQLite and PostgreSQL; the
schema head makes is the models' schema, and a difference between the two is reported."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, text

from store.db import Database
from store.migrate import (
    BASELINE,
    BASELINE_TABLES,
    VERSION_TABLE,
    MigrationError,
    alembic_config,
    head_revision,
    migration_engine,
    schema_differences,
    schema_state,
    upgrade_to_head,
    wait_until_migrated,
)
from store.tables import Base
from store.workflows import WorkflowRepository
from tests.store.conftest import POSTGRES_URL_ENV

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
ORG = "org_a"
WORKFLOW_ID = "wf_" + "a" * 32
SNAPSHOT_ID = "snap_" + "b" * 32
CREATED = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
DEFINITION = {
    "nodes": [{"id": "in", "type": "start_text"}, {"id": "out", "type": "end"}],
    "edges": [{"source": "in", "target": "out"}],
}
T = TypeVar("T")


@dataclass
class Target:
    """One database to migrate: a fresh SQLite file, or a fresh schema on PostgreSQL."""

    url: str
    schema: str | None
    dialect: str

    async def run(self, work: Callable[[Connection], T]) -> T:
        """`work` on a plain connection in one transaction (not the migration's lock)."""
        engine = migration_engine(self.url, schema=self.schema)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    def database(self) -> Database:
        return Database(self.url, schema=self.schema)


@pytest.fixture(params=["sqlite", "postgres"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "sqlite":
        yield Target(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'runlane.sqlite'}", None, "sqlite")
        return
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set (e.g. postgresql+asyncpg://user@host/db)")
    schema = f"runlane_mig_{uuid.uuid4().hex[:12]}"
    admin = migration_engine(url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield Target(url, schema, "postgresql")
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


def previous_release_ddl(dialect: str) -> list[str]:
    sql = (FIXTURES / f"previous_schema_{dialect}.sql").read_text()
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    return [statement.strip() for statement in body.split(";") if statement.strip()]


async def create_previous_release(
    target: Target, *, skip_tables: frozenset[str] = frozenset()
) -> None:
    """The schema as the previous release left it, with a workflow and its snapshot in it."""

    def create(conn: Connection) -> None:
        for statement in previous_release_ddl(target.dialect):
            mentions = ({f"TABLE {name} (", f"ON {name} ("} for name in skip_tables)
            if not any(pattern in statement for patterns in mentions for pattern in patterns):
                conn.exec_driver_sql(statement)
        if "workflows" in skip_tables:
            return
        # Stored as that release stored them: SQLite keeps naive UTC text.
        at: Any = CREATED if target.dialect == "postgresql" else CREATED.replace(tzinfo=None)
        conn.execute(
            text(
                "INSERT INTO workflows (id, organization_id, name, description, draft_definition,"
                " draft_updated_at, published_snapshot_id, created_at, updated_at) VALUES"
                " (:id, :org, 'Invoices', 'Monthly', :definition, :at, :snap, :at, :at)"
            ),
            {
                "id": WORKFLOW_ID,
                "org": ORG,
                "definition": json.dumps(DEFINITION),
                "at": at,
                "snap": SNAPSHOT_ID,
            },
        )
        conn.execute(
            text(
                "INSERT INTO workflow_snapshots (id, workflow_id, organization_id, version,"
                " definition, created_at) VALUES (:id, :wf, :org, 1, :definition, :at)"
            ),
            {
                "id": SNAPSHOT_ID,
                "wf": WORKFLOW_ID,
                "org": ORG,
                "definition": json.dumps(DEFINITION),
                "at": at,
            },
        )

    await target.run(create)


def table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def assert_at_head_matching_the_models(target: Target) -> None:
    state = await schema_state(target.url, schema=target.schema)
    assert state.current == head_revision()
    assert await target.run(schema_differences) == []
    tables = await target.run(table_names)
    assert tables == {*Base.metadata.tables, VERSION_TABLE}


# ---------------------------------------------------------------- empty database


async def test_an_empty_database_is_migrated_to_head(target: Target) -> None:
    state = await upgrade_to_head(target.url, schema=target.schema)

    assert state.current == state.head == head_revision()
    await assert_at_head_matching_the_models(target)
    database = target.database()
    try:
        workflows = WorkflowRepository(database)
        created = await workflows.create(ORG, name="A", description="", definition=DEFINITION)
        assert await workflows.get(ORG, created.id) == created
        snapshot = await workflows.publish(ORG, created.id)
        assert snapshot is not None and snapshot.version == 1
    finally:
        await database.dispose()


async def test_upgrading_again_changes_nothing_and_keeps_rows(target: Target) -> None:
    await upgrade_to_head(target.url, schema=target.schema)
    database = target.database()
    try:
        workflows = WorkflowRepository(database)
        created = await workflows.create(ORG, name="A", description="", definition=DEFINITION)

        state = await upgrade_to_head(target.url, schema=target.schema)

        assert state.current == head_revision()
        assert await workflows.get(ORG, created.id) == created
    finally:
        await database.dispose()


async def test_concurrent_starts_on_an_empty_database_all_succeed(target: Target) -> None:
    states = await asyncio.gather(
        *(upgrade_to_head(target.url, schema=target.schema) for _ in range(4))
    )

    assert {state.current for state in states} == {head_revision()}
    await assert_at_head_matching_the_models(target)


async def test_a_postgresql_schema_that_does_not_exist_yet_is_created(tmp_path: Path) -> None:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    schema = f"runlane_mig_{uuid.uuid4().hex[:12]}"
    try:
        state = await upgrade_to_head(url, schema=schema)
        assert state.current == head_revision()
        await assert_at_head_matching_the_models(Target(url, schema, "postgresql"))
    finally:
        admin = migration_engine(url)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


# ---------------------------------------------------------------- the previous release


async def test_the_previous_releases_schema_is_migrated_to_head_with_its_rows(
    target: Target,
) -> None:
    await create_previous_release(target)

    state = await upgrade_to_head(target.url, schema=target.schema)

    assert state.current == head_revision()
    await assert_at_head_matching_the_models(target)
    database = target.database()
    try:
        workflows = WorkflowRepository(database)
        workflow = await workflows.get(ORG, WORKFLOW_ID)
        assert workflow is not None
        assert (workflow.name, workflow.description) == ("Invoices", "Monthly")
        assert workflow.draft_definition == DEFINITION
        assert workflow.created_at == workflow.updated_at == CREATED
        assert workflow.published_snapshot_id == SNAPSHOT_ID
        snapshot = await workflows.get_snapshot(ORG, SNAPSHOT_ID)
        assert snapshot is not None and snapshot.version == 1
        # The constraints still hold: the next publish is version 2.
        published = await workflows.publish(ORG, WORKFLOW_ID)
        assert published is not None and published.version == 2
    finally:
        await database.dispose()


async def test_concurrent_starts_on_the_previous_releases_schema_all_succeed(
    target: Target,
) -> None:
    await create_previous_release(target)

    states = await asyncio.gather(
        *(upgrade_to_head(target.url, schema=target.schema) for _ in range(4))
    )

    assert {state.current for state in states} == {head_revision()}
    await assert_at_head_matching_the_models(target)


async def test_the_baseline_revision_is_the_previous_releases_schema(
    target: Target, tmp_path: Path
) -> None:
    """Stamping a previous-release database as the baseline is right only if the baseline
    revision creates that very schema: compared table by table, column by column."""
    await create_previous_release(target)

    def reflect(conn: Connection) -> MetaData:
        metadata = MetaData()
        metadata.reflect(conn)
        metadata.remove(metadata.tables[VERSION_TABLE])
        return metadata

    async with baseline_only(target, tmp_path) as made:
        made_by_baseline = await made.run(reflect)
    differences = await target.run(
        lambda conn: compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), made_by_baseline
        )
    )

    assert differences == []
    assert set(made_by_baseline.tables) == BASELINE_TABLES


@asynccontextmanager
async def baseline_only(target: Target, tmp_path: Path) -> AsyncIterator[Target]:
    """A second database of the same kind, upgraded to the baseline revision only."""

    def upgrade(conn: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, BASELINE)

    if target.dialect == "sqlite":
        other = Target(f"sqlite+aiosqlite:///{tmp_path / 'baseline.sqlite'}", None, "sqlite")
        await other.run(upgrade)
        yield other
        return
    schema = f"runlane_mig_{uuid.uuid4().hex[:12]}"
    admin = migration_engine(target.url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        other = Target(target.url, schema, "postgresql")
        await other.run(upgrade)
        yield other
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


async def test_a_database_with_only_some_of_runlanes_tables_is_refused_untouched(
    target: Target,
) -> None:
    await create_previous_release(target, skip_tables=frozenset({"bulk_outcomes"}))

    with pytest.raises(MigrationError, match="lacks bulk_outcomes"):
        await upgrade_to_head(target.url, schema=target.schema)

    tables = await target.run(table_names)
    assert VERSION_TABLE not in tables
    assert "bulk_outcomes" not in tables


async def test_a_database_a_newer_release_migrated_is_refused(target: Target) -> None:
    await upgrade_to_head(target.url, schema=target.schema)
    await target.run(
        lambda conn: conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    )

    with pytest.raises(MigrationError, match="revision 9999, which this version"):
        await upgrade_to_head(target.url, schema=target.schema)


# ---------------------------------------------------------------- models vs migrations


async def test_a_model_the_migrations_do_not_create_is_reported(target: Target) -> None:
    """The guard above can fail: models with one more column and one more table than the
    migrations create differ from the migrated database, and the difference names both."""
    await upgrade_to_head(target.url, schema=target.schema)
    models = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(models)
    models.tables["workflows"].append_column(Column("archived_by", String(64), nullable=True))
    Table("run_archive", models, Column("key", String(255), primary_key=True))

    differences = await target.run(lambda conn: schema_differences(conn, models))

    added_columns = [(d[2], d[3].name) for d in differences if d[0] == "add_column"]
    added_tables = [d[1].name for d in differences if d[0] == "add_table"]
    assert added_columns == [("workflows", "archived_by")]
    assert added_tables == ["run_archive"]
    assert len(differences) == 2


def test_the_command_line_checks_and_applies_the_migrations(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite'}"
    env = {**os.environ, "RUNLANE_DATABASE_URL": url, "RUNLANE_DATA_DIR": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "store.migrate", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    check = cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "the models match the migrations" in check.stdout

    before = cli("current")
    assert before.returncode == 1
    assert f"current: (none)  head: {head_revision()}" in before.stdout

    upgrade = cli()
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"database at revision {head_revision()}" in upgrade.stderr

    after = cli("current")
    assert after.returncode == 0
    assert f"current: {head_revision()}  head: {head_revision()}" in after.stdout


# ---------------------------------------------------------------- the worker


async def test_the_worker_waits_for_the_migrations_and_says_what_to_do(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'worker.sqlite'}"
    caplog.set_level(logging.ERROR, logger="runlane.migrate")
    waiting = asyncio.create_task(wait_until_migrated(url, poll_s=0.05))

    deadline = time.monotonic() + 15
    while "is not migrated" not in caplog.text:
        assert time.monotonic() < deadline, "the worker did not say why it waits"
        await asyncio.sleep(0.05)
    assert "python -m store.migrate" in caplog.text
    assert not waiting.done()

    await upgrade_to_head(url)

    state = await asyncio.wait_for(waiting, 15)
    assert state is not None and state.at_head


async def test_a_stopping_worker_stops_waiting(tmp_path: Path) -> None:
    stop = asyncio.Event()
    waiting = asyncio.create_task(
        wait_until_migrated(f"sqlite+aiosqlite:///{tmp_path / 'w.sqlite'}", stop=stop)
    )
    stop.set()

    assert await asyncio.wait_for(waiting, 15) is None
