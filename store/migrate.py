"""Alembic owns the relational schema: one function brings a database to the newest revision.

The API's start-up, `make run` (before it starts the worker) and `python -m store.migrate` call
:func:`upgrade_to_head`. A database a release before migrations made (`create_all`: Runlane's
tables, no `alembic_version`) is stamped with the baseline revision, which is that schema
exactly, and upgraded from there.

Concurrent callers (API replicas starting at once) take turns: on PostgreSQL the upgrade runs
in one transaction holding an advisory lock; on SQLite in one `BEGIN IMMEDIATE` transaction,
which holds the file's write lock (a second caller waits for it, up to the busy timeout). Both
have transactional DDL: a failed upgrade leaves the database as it was.

    python -m store.migrate              # upgrade RUNLANE_DATABASE_URL to head
    python -m store.migrate current      # print the database's revision and the head
    python -m store.migrate check        # exit 1 when the models and the migrations differ
    python -m store.migrate revision -m "add rate limit buckets"   # autogenerate the next one
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sqlite3
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from store.db import engine_options

log = logging.getLogger("runlane.migrate")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The schema the last release before migrations created; revision BASELINE is exactly it.
BASELINE = "0001"
BASELINE_TABLES = frozenset(
    {
        "workflows",
        "workflow_snapshots",
        "files",
        "idempotency_keys",
        "review_decisions",
        "secrets",
        "inbound_webhooks",
        "schedules",
        "webhook_endpoints",
        "webhook_deliveries",
        "effects",
        "node_usage",
        "usage_costs",
        "bulk_operations",
        "bulk_targets",
        "bulk_outcomes",
    }
)
VERSION_TABLE = "alembic_version"
# pg_advisory_xact_lock(key, schema hash): one upgrade at a time per database and schema.
_PG_LOCK_KEY = 0x526C6E65  # "Rlne"
_SQLITE_BUSY_TIMEOUT_MS = 60_000

T = TypeVar("T")


class MigrationError(RuntimeError):
    """The database cannot be brought to head as it is; the message says why and what to do."""


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def alembic_config() -> Config:
    """The migrations' configuration, without an ini file: everything is in the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Revisions are numbered (0001, 0002, ...) and named after their message.
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("truncate_slug_length", "40")
    # A generated revision is formatted and linted like the rest of the code.
    config.set_section_option("post_write_hooks", "hooks", "ruff_format, ruff_fix")
    for name, args in (("ruff_format", "format"), ("ruff_fix", "check --fix")):
        config.set_section_option("post_write_hooks", f"{name}.type", "module")
        config.set_section_option("post_write_hooks", f"{name}.module", "ruff")
        config.set_section_option(
            "post_write_hooks", f"{name}.options", f"{args} REVISION_SCRIPT_FILENAME"
        )
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its revisions
        raise MigrationError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def migration_engine(url: str, *, schema: str | None = None) -> AsyncEngine:
    """An engine for one migration run: on SQLite every transaction is `BEGIN IMMEDIATE` (the
    driver would otherwise run DDL outside any transaction, and two starting processes would
    both see an empty file and both create tables); on PostgreSQL `schema` is the search path,
    as store.db.Database sets it."""
    is_sqlite, connect_args = engine_options(url, schema=schema)
    engine = create_async_engine(url, connect_args=connect_args, poolclass=NullPool)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver emits no BEGIN of its own (_sqlite_begin does). Foreign keys stay off, as
    # SQLite's batch mode needs while it rebuilds a referenced table.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


async def _sqlite_wal(database: str) -> None:
    """The file in WAL mode (as store.db.Database uses it) before anything else: switching
    needs the file to itself, and SQLite answers "locked" at once instead of waiting when
    another process is inside a transaction (two fresh starts at once), so retry."""
    if database == ":memory:" or database.startswith("file:"):
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            async with aiosqlite.connect(database) as conn:
                await conn.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
                await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _in_transaction(
    url: str, schema: str | None, work: Callable[[Connection], T], *, create_schema: bool
) -> T:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        await _sqlite_wal(parsed.database)
    engine = migration_engine(url, schema=schema)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key, :schema)"),
                    {"key": _PG_LOCK_KEY, "schema": _schema_key(schema)},
                )
                if schema is not None and create_schema:
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


def _schema_key(schema: str | None) -> int:
    # A signed 32-bit int, as pg_advisory_xact_lock(int, int) takes.
    return zlib.crc32((schema or "").encode()) - 2**31


async def upgrade_to_head(url: str, *, schema: str | None = None) -> SchemaState:
    """Bring the database (and, on PostgreSQL, `schema`, created if missing) to the newest
    revision; safe to call concurrently and again. Returns the state it left."""
    return await _in_transaction(url, schema, _upgrade, create_schema=True)


async def schema_state(url: str, *, schema: str | None = None) -> SchemaState:
    """The database's revision (None: never migrated) and this code's head."""
    return await _in_transaction(url, schema, _state, create_schema=False)


async def wait_until_migrated(
    url: str, *, stop: asyncio.Event | None = None, poll_s: float = 1.0, log_every_s: float = 30.0
) -> SchemaState | None:
    """For the worker, which does not migrate: wait until the database is at this code's head
    (the API's start or `python -m store.migrate` migrates it), saying so now and then, rather
    than fail later on a missing table. A database a newer release migrated, or one that does
    not answer (the worker copes with that as it works), does not hold it up."""
    last_logged = -log_every_s
    while stop is None or not stop.is_set():
        try:
            state = await schema_state(url)
        except (OSError, SQLAlchemyError) as error:
            log.warning(
                "the database's schema revision cannot be read (%s); starting anyway", error
            )
            return None
        if state.at_head:
            return state
        if state.current is not None and state.current not in _known_revisions(alembic_config()):
            log.warning(
                "the database is at revision %s, newer than this code's %s; starting anyway",
                state.current,
                state.head,
            )
            return state
        if time.monotonic() - last_logged >= log_every_s:
            log.error(
                "the database is not migrated (revision %s, this code needs %s): waiting for "
                "the API's start or `python -m store.migrate` to migrate it",
                state.current or "none: no tables",
                state.head,
            )
            last_logged = time.monotonic()
        if stop is None:
            await asyncio.sleep(poll_s)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_s)
    return None


def _state(conn: Connection) -> SchemaState:
    current = MigrationContext.configure(conn).get_current_revision()
    return SchemaState(current=current, head=head_revision())


def _upgrade(conn: Connection) -> SchemaState:
    config = alembic_config()
    config.attributes["connection"] = conn
    before = _state(conn)
    tables = set(inspect(conn).get_table_names())
    if before.current is None and tables & BASELINE_TABLES:
        # A release before migrations made this schema (create_all): it is the baseline.
        missing = sorted(BASELINE_TABLES - tables)
        if missing:
            raise MigrationError(
                "the database has some of Runlane's tables but no migration record "
                f"({VERSION_TABLE}), and lacks {', '.join(missing)}: it is not the schema of a "
                "release before migrations, so it is not upgraded; restore it or use an empty "
                "database"
            )
        log.info("database made before migrations: stamping it as revision %s", BASELINE)
        command.stamp(config, BASELINE)
    elif before.current is not None and before.current not in _known_revisions(config):
        raise MigrationError(
            f"the database is at revision {before.current}, which this version of Runlane does "
            f"not know (its newest is {before.head}): a newer release migrated it; run that one"
        )
    command.upgrade(config, "head")
    after = _state(conn)
    if before.current != after.current:
        log.info("database schema upgraded from %s to %s", before.current, after.current)
    return after


def _known_revisions(config: Config) -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def schema_differences(conn: Connection, metadata: MetaData | None = None) -> list[Any]:
    """What autogenerate would change to make the database match `metadata` (the models by
    default): empty when the migrations and the models agree."""
    from store.tables import Base

    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata if metadata is not None else Base.metadata))


# ---------------------------------------------------------------- command line


def _scratch_url(directory: str) -> str:
    return f"sqlite+aiosqlite:///{Path(directory) / 'scratch.db'}"


async def _check() -> int:
    with tempfile.TemporaryDirectory() as directory:
        url = _scratch_url(directory)
        await upgrade_to_head(url)
        differences = await _in_transaction(url, None, schema_differences, create_schema=False)
    for difference in differences:
        print(f"  {difference}")  # noqa: T201 - a command-line tool's output
    if differences:
        print("the models differ from the migrations: make migration m='...'")  # noqa: T201
        return 1
    print(f"the models match the migrations (head {head_revision()})")  # noqa: T201
    return 0


async def _revision(message: str) -> int:
    """Autogenerate the next revision against a scratch SQLite database at head: what the
    models have that the migrations do not create yet."""
    config = alembic_config()
    scripts = ScriptDirectory.from_config(config)
    rev_id = f"{len(list(scripts.walk_revisions())) + 1:04d}"

    def generate(conn: Connection) -> None:
        config.attributes["connection"] = conn
        command.revision(config, message=message, autogenerate=True, rev_id=rev_id)

    with tempfile.TemporaryDirectory() as directory:
        url = _scratch_url(directory)
        await upgrade_to_head(url)
        await _in_transaction(url, None, generate, create_schema=False)
    print(f"wrote revision {rev_id} in {MIGRATIONS_DIR / 'versions'}: review it")  # noqa: T201
    return 0


def main(argv: list[str] | None = None) -> int:
    from runlane.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m store.migrate", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("upgrade", help="upgrade RUNLANE_DATABASE_URL to head (the default)")
    sub.add_parser("current", help="print the database's revision and the head")
    sub.add_parser("check", help="exit 1 when the models and the migrations differ")
    revision = sub.add_parser("revision", help="autogenerate the next revision")
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command in (None, "upgrade", "current"):
        # Alembic's own lines (its dialect, each step) say less than ours: from, to, or why not.
        logging.getLogger("alembic").setLevel(logging.WARNING)

    if args.command == "check":
        return asyncio.run(_check())
    if args.command == "revision":
        return asyncio.run(_revision(args.message))
    url = get_settings().resolved_database_url
    try:
        if args.command == "current":
            state = asyncio.run(schema_state(url))
            print(f"current: {state.current or '(none)'}  head: {state.head}")  # noqa: T201
            return 0 if state.at_head else 1
        state = asyncio.run(upgrade_to_head(url))
    except MigrationError as error:
        log.error("%s", error)
        return 2
    log.info("database at revision %s (head)", state.current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
