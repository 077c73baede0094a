"""One engine and session factory per process, configured for SQLite or PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Concurrent writers on SQLite wait for the lock instead of failing at once.
_SQLITE_BUSY_TIMEOUT_MS = 15_000


class Database:
    """Owns the async engine; repositories open short sessions from it. The tables are the
    migrations' (store/migrate.py upgrade_to_head), never created here."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self._is_sqlite, connect_args = engine_options(url, schema=schema)
        self._schema = schema
        # Sessions and connections end their own transactions, so the pool need not roll back
        # again on check-in: one aiosqlite thread hand-off less per query (profiled on the
        # start path, bench/start_path.py).
        self.engine = create_async_engine(url, connect_args=connect_args, pool_reset_on_return=None)
        if self._is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def schema(self) -> str | None:
        return self._schema

    async def dispose(self) -> None:
        await self.engine.dispose()

    def session(self) -> AsyncSession:
        return self._sessions()


def engine_options(url: str, *, schema: str | None = None) -> tuple[bool, dict[str, Any]]:
    """Whether `url` is SQLite, and the driver's connect arguments: on PostgreSQL `schema` is
    the search path of every connection (asyncpg sets it per connection, so every statement
    runs in the isolated schema). A SQLite file's directory is created. Shared by the
    application's engine and the migrations' (store/migrate.py)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if schema is not None:
        if backend != "postgresql":
            raise ValueError("schema is only supported on PostgreSQL")
        if not _SCHEMA_RE.match(schema):
            raise ValueError(f"invalid schema name: {schema!r}")
        connect_args["server_settings"] = {"search_path": schema}
    is_sqlite = backend == "sqlite"
    if is_sqlite:
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    return is_sqlite, connect_args


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the writer; SQLite enforces foreign keys only when asked."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
