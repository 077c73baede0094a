"""Bulk operations' rows: what each operation asked, the runs it matched (frozen when it
started) and what it did to each of them.

The operation's execution is its Temporal workflow (bulk/workflow.py); these rows are its
ledger, because 10,000 runs' outcomes are more than a workflow's state or a query answer may
carry (Temporal's 2 MB payload limit). Every method is scoped to one organization where a
caller names an operation: another's operations look missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from runlane.paging import Order
from store.db import Database
from store.pagination import Page, decode_cursor, encode_cursor
from store.tables import BulkOperationRow, BulkOutcomeRow, BulkTargetRow

# Rows inserted per statement when an operation's targets are stored.
_INSERT_CHUNK = 500


@dataclass(frozen=True)
class BulkRecord:
    id: str
    organization_id: str
    action: str
    filter: dict[str, Any]
    matched: int
    created_at: datetime


@dataclass(frozen=True)
class OutcomeRecord:
    run_id: str
    seq: int
    status: str
    error: dict[str, Any] | None
    result_run_id: str | None
    finished_at: datetime


@dataclass(frozen=True)
class Target:
    seq: int
    run_id: str


class BulkRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        org: str,
        bulk_id: str,
        *,
        action: str,
        filter: dict[str, Any],
        run_ids: Sequence[str],
    ) -> BulkRecord:
        """The operation and its targets, in one transaction; an operation that exists already
        (the replay of a command whose workflow did not start) keeps the targets it has, so
        a workflow that started walking them never sees them change."""
        existing = await self.get(org, bulk_id)
        if existing is not None:
            return existing
        row = BulkOperationRow(
            id=bulk_id,
            organization_id=org,
            action=action,
            filter=filter,
            matched=len(run_ids),
            created_at=datetime.now(UTC),
        )
        try:
            async with self._db.session() as session, session.begin():
                session.add(row)
                await session.flush()
                for start in range(0, len(run_ids), _INSERT_CHUNK):
                    session.add_all(
                        BulkTargetRow(bulk_id=bulk_id, seq=start + i, run_id=run_id)
                        for i, run_id in enumerate(run_ids[start : start + _INSERT_CHUNK])
                    )
                    await session.flush()
        except IntegrityError:
            # A concurrent identical command inserted it first: theirs stands.
            existing = await self.get(org, bulk_id)
            if existing is None:
                raise
            return existing
        return _record(row)

    async def get(self, org: str, bulk_id: str) -> BulkRecord | None:
        query = select(BulkOperationRow).where(
            BulkOperationRow.id == bulk_id, BulkOperationRow.organization_id == org
        )
        async with self._db.session() as session:
            row = await session.scalar(query)
        return _record(row) if row is not None else None

    async def targets(self, bulk_id: str, *, offset: int, limit: int) -> list[Target]:
        """Targets `offset` to `offset + limit - 1` in the operation's order."""
        query = (
            select(BulkTargetRow)
            .where(
                BulkTargetRow.bulk_id == bulk_id,
                BulkTargetRow.seq >= offset,
                BulkTargetRow.seq < offset + limit,
            )
            .order_by(BulkTargetRow.seq)
        )
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return [Target(seq=row.seq, run_id=row.run_id) for row in rows]

    async def outcomes_of(self, bulk_id: str, run_ids: Sequence[str]) -> dict[str, OutcomeRecord]:
        """The outcomes already recorded for these runs (a retried batch skips them)."""
        if not run_ids:
            return {}
        query = select(BulkOutcomeRow).where(
            BulkOutcomeRow.bulk_id == bulk_id, BulkOutcomeRow.run_id.in_(list(run_ids))
        )
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return {row.run_id: _outcome(row) for row in rows}

    async def record_outcome(self, bulk_id: str, outcome: OutcomeRecord) -> None:
        row = BulkOutcomeRow(
            bulk_id=bulk_id,
            run_id=outcome.run_id,
            seq=outcome.seq,
            status=outcome.status,
            error=outcome.error,
            result_run_id=outcome.result_run_id,
            finished_at=outcome.finished_at,
        )
        async with self._db.session() as session, session.begin():
            await session.merge(row)

    async def counts(self, bulk_id: str) -> dict[str, int]:
        """Outcomes recorded so far, by status."""
        query = (
            select(BulkOutcomeRow.status, func.count())
            .where(BulkOutcomeRow.bulk_id == bulk_id)
            .group_by(BulkOutcomeRow.status)
        )
        async with self._db.session() as session:
            rows = (await session.execute(query)).all()
        return {status: int(count) for status, count in rows}

    async def outcomes(
        self, bulk_id: str, *, limit: int, cursor: str | None, order: Order = "desc"
    ) -> Page[OutcomeRecord]:
        """A page of outcomes in the operation's order of runs: the last taken first
        (`desc`, like every list), or the first first. InvalidCursor for a foreign cursor."""
        query = select(BulkOutcomeRow).where(BulkOutcomeRow.bulk_id == bulk_id)
        if cursor is not None:
            (seq,) = decode_cursor(cursor, (int,), order)
            query = query.where(
                BulkOutcomeRow.seq > seq if order == "asc" else BulkOutcomeRow.seq < seq
            )
        column = BulkOutcomeRow.seq
        query = query.order_by(column.asc() if order == "asc" else column.desc()).limit(limit + 1)
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        visible = [_outcome(row) for row in rows[:limit]]
        next_cursor = (
            encode_cursor((visible[-1].seq,), order) if len(rows) > limit and visible else None
        )
        return Page(items=visible, next_cursor=next_cursor)


def _record(row: BulkOperationRow) -> BulkRecord:
    return BulkRecord(
        id=row.id,
        organization_id=row.organization_id,
        action=row.action,
        filter=row.filter,
        matched=row.matched,
        created_at=row.created_at,
    )


def _outcome(row: BulkOutcomeRow) -> OutcomeRecord:
    return OutcomeRecord(
        run_id=row.run_id,
        seq=row.seq,
        status=row.status,
        error=row.error,
        result_run_id=row.result_run_id,
        finished_at=row.finished_at,
    )
