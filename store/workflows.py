"""Workflow definitions: a mutable draft per workflow and immutable, numbered snapshots."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from runlane import ids
from runlane.paging import Order
from store.db import Database
from store.pagination import (
    InvalidCursor,
    Page,
    after_time_cursor,
    decode_cursor,
    encode_cursor,
    encode_time_cursor,
    make_page,
    ordered,
)
from store.tables import SnapshotRow, WorkflowRow

# Each failed attempt means another publish won the version number; they finish quickly.
_PUBLISH_ATTEMPTS = 50
_MAX_VERSION = 2**31 - 1  # the column is a 32-bit INTEGER on PostgreSQL


@dataclass(frozen=True)
class WorkflowRecord:
    id: str
    organization_id: str
    name: str
    description: str
    draft_definition: dict[str, Any]
    draft_updated_at: datetime
    published_snapshot_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SnapshotRecord:
    id: str
    workflow_id: str
    organization_id: str
    version: int
    definition: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class PublishedHead:
    workflow_id: str
    name: str
    snapshot_id: str | None
    version: int | None


class WorkflowRepository:
    """Every method is scoped to one organization: another's rows look missing."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, org: str, *, name: str, description: str, definition: dict[str, Any]
    ) -> WorkflowRecord:
        now = _now()
        row = WorkflowRow(
            id=ids.new_id(ids.WORKFLOW),
            organization_id=org,
            name=name,
            description=description,
            draft_definition=copy.deepcopy(definition),
            draft_updated_at=now,
            published_snapshot_id=None,
            created_at=now,
            updated_at=now,
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return _workflow(row)

    async def get(self, org: str, workflow_id: str) -> WorkflowRecord | None:
        if not ids.is_valid(ids.WORKFLOW, workflow_id):
            return None  # not an id this store issues (and NUL would break PostgreSQL)
        async with self._db.session() as session:
            row = await session.scalar(_workflow_query(org, workflow_id))
        return _workflow(row) if row is not None else None

    async def published_head(self, org: str, workflow_id: str) -> PublishedHead | None:
        """What a run of the published definition needs to know first, without the
        definitions themselves (the published one is immutable, so callers cache it by
        snapshot id): one small query on the start path."""
        if not ids.is_valid(ids.WORKFLOW, workflow_id):
            return None  # not an id this store issues (and NUL would break PostgreSQL)
        query = (
            select(
                WorkflowRow.id,
                WorkflowRow.name,
                WorkflowRow.published_snapshot_id,
                SnapshotRow.version,
            )
            .outerjoin(SnapshotRow, SnapshotRow.id == WorkflowRow.published_snapshot_id)
            .where(WorkflowRow.id == workflow_id, WorkflowRow.organization_id == org)
        )
        # A Core connection, not a session: no ORM objects to build, fewer thread hand-offs.
        async with self._db.engine.connect() as connection:
            found = (await connection.execute(query)).first()
        if found is None:
            return None
        return PublishedHead(
            workflow_id=found[0], name=found[1], snapshot_id=found[2], version=found[3]
        )

    async def list(
        self, org: str, *, limit: int, cursor: str | None, order: Order = "desc"
    ) -> Page[WorkflowRecord]:
        """By creation time: newest first (`desc`) or oldest first (`asc`)."""
        query = select(WorkflowRow).where(WorkflowRow.organization_id == org)
        if cursor is not None:
            query = query.where(
                after_time_cursor(WorkflowRow.created_at, WorkflowRow.id, cursor, order)
            )
        query = query.order_by(*ordered(order, WorkflowRow.created_at, WorkflowRow.id))
        async with self._db.session() as session:
            rows = (await session.scalars(query.limit(limit + 1))).all()
        return make_page(
            rows, limit, _workflow, lambda r: encode_time_cursor(r.created_at, r.id, order)
        )

    async def replace_draft(
        self, org: str, workflow_id: str, definition: dict[str, Any]
    ) -> WorkflowRecord | None:
        if not ids.is_valid(ids.WORKFLOW, workflow_id):
            return None  # not an id this store issues (and NUL would break PostgreSQL)
        async with self._db.session() as session, session.begin():
            row = await session.scalar(_workflow_query(org, workflow_id).with_for_update())
            if row is None:
                return None
            now = _now()
            row.draft_definition = copy.deepcopy(definition)
            row.draft_updated_at = now
            row.updated_at = now
        return _workflow(row)

    async def publish(self, org: str, workflow_id: str) -> SnapshotRecord | None:
        """Freeze the draft as the next version. PostgreSQL serializes on the workflow row;
        SQLite (no FOR UPDATE) relies on the unique version and retries the loser."""
        for _ in range(_PUBLISH_ATTEMPTS):
            try:
                return await self._publish_once(org, workflow_id)
            except IntegrityError:
                continue
        raise RuntimeError(f"could not publish {workflow_id}: too many concurrent publishes")

    async def _publish_once(self, org: str, workflow_id: str) -> SnapshotRecord | None:
        if not ids.is_valid(ids.WORKFLOW, workflow_id):
            return None  # not an id this store issues (and NUL would break PostgreSQL)
        async with self._db.session() as session, session.begin():
            workflow = await session.scalar(_workflow_query(org, workflow_id).with_for_update())
            if workflow is None:
                return None
            latest = await session.scalar(
                select(func.max(SnapshotRow.version)).where(SnapshotRow.workflow_id == workflow_id)
            )
            now = _now()
            snapshot = SnapshotRow(
                id=ids.new_id(ids.SNAPSHOT),
                workflow_id=workflow_id,
                organization_id=org,
                version=(latest or 0) + 1,
                definition=copy.deepcopy(workflow.draft_definition),
                created_at=now,
            )
            session.add(snapshot)
            await session.flush()
            workflow.published_snapshot_id = snapshot.id
            workflow.updated_at = now
        return _snapshot(snapshot)

    async def get_snapshot(self, org: str, snapshot_id: str) -> SnapshotRecord | None:
        if not ids.is_valid(ids.SNAPSHOT, snapshot_id):
            return None
        query = select(SnapshotRow).where(
            SnapshotRow.id == snapshot_id, SnapshotRow.organization_id == org
        )
        async with self._db.session() as session:
            row = await session.scalar(query)
        return _snapshot(row) if row is not None else None

    async def list_snapshots(
        self, org: str, workflow_id: str, *, limit: int, cursor: str | None, order: Order = "desc"
    ) -> Page[SnapshotRecord]:
        """Highest version first (`desc`), or lowest (`asc`): versions follow creation. The
        cursor carries the version (unique per workflow)."""
        query = select(SnapshotRow).where(
            SnapshotRow.workflow_id == workflow_id, SnapshotRow.organization_id == org
        )
        if cursor is not None:
            (version,) = decode_cursor(cursor, (int,), order)
            # Out of the column's range the database driver itself would fail (a 500).
            if not 1 <= version <= _MAX_VERSION:
                raise InvalidCursor("cursor does not decode")
            query = query.where(
                SnapshotRow.version > version if order == "asc" else SnapshotRow.version < version
            )
        query = query.order_by(*ordered(order, SnapshotRow.version)).limit(limit + 1)
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return make_page(rows, limit, _snapshot, lambda r: encode_cursor((r.version,), order))


def _now() -> datetime:
    return datetime.now(UTC)


def _workflow_query(org: str, workflow_id: str) -> Select[WorkflowRow]:
    return select(WorkflowRow).where(
        WorkflowRow.id == workflow_id, WorkflowRow.organization_id == org
    )


def _workflow(row: WorkflowRow) -> WorkflowRecord:
    return WorkflowRecord(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        description=row.description,
        draft_definition=copy.deepcopy(row.draft_definition),
        draft_updated_at=row.draft_updated_at,
        published_snapshot_id=row.published_snapshot_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _snapshot(row: SnapshotRow) -> SnapshotRecord:
    return SnapshotRecord(
        id=row.id,
        workflow_id=row.workflow_id,
        organization_id=row.organization_id,
        version=row.version,
        definition=copy.deepcopy(row.definition),
        created_at=row.created_at,
    )
