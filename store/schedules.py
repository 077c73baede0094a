"""Schedules' rows: what Runlane owns of a schedule (organization, workflow, inputs, note).

Every method is scoped to one organization: another's schedules look missing. The schedule's
timing lives in its Temporal Schedule (triggers/schedules.py), never here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy import update as sql_update

from runlane.paging import Order
from store.db import Database
from store.pagination import Page, after_time_cursor, encode_time_cursor, make_page, ordered
from store.tables import ScheduleRow

SCHEDULE_PREFIX = "sch"
_SCHEDULE_ID = re.compile(r"^sch_[0-9a-f]{32}$")


def is_schedule_id(value: str) -> bool:
    """Whether `value` looks like an id this store gives (anything else is missing)."""
    return _SCHEDULE_ID.match(value) is not None


@dataclass(frozen=True)
class ScheduleRecord:
    id: str
    organization_id: str
    workflow_id: str
    spec: dict[str, Any]
    inputs: dict[str, Any]
    config_source: str
    note: str
    created_at: datetime
    updated_at: datetime


class ScheduleRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        org: str,
        schedule_id: str,
        *,
        workflow_id: str,
        spec: dict[str, Any],
        inputs: dict[str, Any],
        config_source: str,
        note: str,
    ) -> ScheduleRecord:
        now = datetime.now(UTC)
        row = ScheduleRow(
            id=schedule_id,
            organization_id=org,
            workflow_id=workflow_id,
            spec=spec,
            inputs=inputs,
            config_source=config_source,
            note=note,
            created_at=now,
            updated_at=now,
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return _record(row)

    async def get(self, org: str, schedule_id: str) -> ScheduleRecord | None:
        if not is_schedule_id(schedule_id):
            return None
        async with self._db.session() as session:
            row = await session.get(ScheduleRow, schedule_id)
        if row is None or row.organization_id != org:
            return None
        return _record(row)

    async def update(
        self,
        org: str,
        schedule_id: str,
        *,
        spec: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        note: str | None = None,
        during: Callable[[ScheduleRecord], Awaitable[None]] | None = None,
    ) -> ScheduleRecord | None:
        """Replace what is given; `updated_at` moves on every call (the Temporal side of the
        schedule may be what changed). None when there is no such schedule.

        `during` runs with the row held, before it is written: changes of one schedule run
        one after the other, each with what it changes elsewhere (its Temporal Schedule), so
        the row and that side never end up holding different changes. When `during` raises,
        nothing is written."""
        if not is_schedule_id(schedule_id):
            return None
        async with self._db.session() as session, session.begin():
            # A write first: it takes the row's lock on PostgreSQL, the database's write lock
            # on SQLite (a read first would let two changes read, then one fail to write).
            claimed = await session.execute(
                sql_update(ScheduleRow)
                .where(ScheduleRow.id == schedule_id, ScheduleRow.organization_id == org)
                .values(updated_at=datetime.now(UTC))
            )
            if not getattr(claimed, "rowcount", 0):
                return None
            row = await session.get(ScheduleRow, schedule_id, populate_existing=True)
            if row is None:
                return None
            if during is not None:
                await during(_record(row))
            if spec is not None:
                row.spec = spec
            if inputs is not None:
                row.inputs = inputs
            if note is not None:
                row.note = note
        return _record(row)

    async def list(
        self,
        org: str,
        *,
        workflow_id: str | None = None,
        limit: int,
        cursor: str | None,
        order: Order = "desc",
    ) -> Page[ScheduleRecord]:
        """By creation time: newest first (`desc`) or oldest first (`asc`)."""
        query = select(ScheduleRow).where(ScheduleRow.organization_id == org)
        if workflow_id is not None:
            query = query.where(ScheduleRow.workflow_id == workflow_id)
        if cursor is not None:
            query = query.where(
                after_time_cursor(ScheduleRow.created_at, ScheduleRow.id, cursor, order)
            )
        query = query.order_by(*ordered(order, ScheduleRow.created_at, ScheduleRow.id))
        async with self._db.session() as session:
            rows = (await session.scalars(query.limit(limit + 1))).all()
        return make_page(
            rows, limit, _record, lambda r: encode_time_cursor(r.created_at, r.id, order)
        )

    async def delete(self, org: str, schedule_id: str) -> bool:
        """Whether there was such a schedule."""
        if not is_schedule_id(schedule_id):
            return False
        query = delete(ScheduleRow).where(
            ScheduleRow.organization_id == org, ScheduleRow.id == schedule_id
        )
        async with self._db.session() as session, session.begin():
            result = await session.execute(query)
        return bool(getattr(result, "rowcount", 0))


def _record(row: ScheduleRow) -> ScheduleRecord:
    return ScheduleRecord(
        id=row.id,
        organization_id=row.organization_id,
        workflow_id=row.workflow_id,
        spec=dict(row.spec),
        inputs=dict(row.inputs),
        config_source=row.config_source,
        note=row.note,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
