"""Alembic's environment: runs on the connection store/migrate.py hands over (in its
transaction, under its lock), never on one of its own."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import TypeDecorator

from store.tables import Base


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """A column of a project type (UTCDateTime) is written as the type it stores, so a
    revision never imports store.tables, whose classes change after the revision is written."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        impl = obj.impl_instance
        autogen_context.imports.add("import sqlalchemy as sa")
        return f"sa.{impl!r}"
    return False


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "store/migrations runs through store.migrate (python -m store.migrate), which "
            "supplies the connection, the lock and the upgrade of a pre-migrations database"
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things: its operations rebuild the table instead.
        render_as_batch=True,
        render_item=render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
