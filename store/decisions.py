"""Reviewers' decisions, recorded before they are sent to the run: the outbox of the `review`
signal (runs/reviews.py delivers from it).

One row per waiting node and attempt. Inserting it under its primary key is what decides
between reviewers who decide at once, across API replicas; the row then holds the decision
until it is known to have reached the run (`delivered_at`), so a decision whose signal failed
in an unknown way is delivered later instead of being lost, or blocking the node for ever.

A node that needs several approvals takes one row per decision, in seats numbered 1, 2, ...:
a decision claims the seat after the highest one taken, so the seats of a node are a total
order every replica agrees on (each seat is inserted only once the seats before it were
visible). Seat 1 is stored under the node id itself, as every decision was before seats
existed; seat k > 1 under "node_id#k" (node ids cannot hold a '#'), which needs no new column
in databases created before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from store.db import Database
from store.tables import ReviewDecisionRow


@dataclass(frozen=True)
class DecisionSlot:
    """Where a decision goes: one node of a run, in one attempt of that run."""

    organization_id: str
    run_id: str
    node_id: str
    attempt: int
    seat: int = 1

    @property
    def key(self) -> str:
        """The node id column's value: the node id, with the seat from seat 2 on."""
        return self.node_id if self.seat == 1 else f"{self.node_id}#{self.seat}"


@dataclass(frozen=True)
class DecisionRecord:
    slot: DecisionSlot
    holder: str
    decision: dict[str, Any]
    temporal_run_id: str | None
    created_at: datetime
    delivered_at: datetime | None


class DecisionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self,
        slot: DecisionSlot,
        *,
        holder: str,
        decision: dict[str, Any],
        temporal_run_id: str | None,
    ) -> tuple[DecisionRecord, bool]:
        """(the new record, True) when `slot` was free; (the record that holds it, False)
        otherwise, whoever holds it."""
        while True:
            row = ReviewDecisionRow(
                organization_id=slot.organization_id,
                run_id=slot.run_id,
                node_id=slot.key,
                attempt=slot.attempt,
                holder=holder,
                decision=decision,
                temporal_run_id=temporal_run_id,
                created_at=datetime.now(UTC),
                delivered_at=None,
            )
            try:
                async with self._db.session() as session, session.begin():
                    session.add(row)
            except IntegrityError:
                existing = await self.get(slot)
                if existing is None:  # released in between: claim it again
                    continue
                return existing, False
            return _record(row), True

    async def get(self, slot: DecisionSlot) -> DecisionRecord | None:
        async with self._db.session() as session:
            row = await session.get(
                ReviewDecisionRow,
                (slot.organization_id, slot.run_id, slot.key, slot.attempt),
            )
        return _record(row) if row is not None else None

    async def held_by(
        self, org: str, run_id: str, node_id: str, holder: str
    ) -> DecisionRecord | None:
        """The decision `holder` took for the node, in its latest attempt that has one."""
        query = (
            select(ReviewDecisionRow)
            .where(
                ReviewDecisionRow.organization_id == org,
                ReviewDecisionRow.run_id == run_id,
                _of_node(node_id),
                ReviewDecisionRow.holder == holder,
            )
            .order_by(ReviewDecisionRow.attempt.desc())
            .limit(1)
        )
        async with self._db.session() as session:
            row = await session.scalar(query)
        return _record(row) if row is not None else None

    async def of_node(self, slot: DecisionSlot) -> list[DecisionRecord]:
        """Every decision taken for the slot's node and attempt, by seat."""
        query = select(ReviewDecisionRow).where(
            ReviewDecisionRow.organization_id == slot.organization_id,
            ReviewDecisionRow.run_id == slot.run_id,
            ReviewDecisionRow.attempt == slot.attempt,
            _of_node(slot.node_id),
        )
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return sorted((_record(row) for row in rows), key=lambda r: r.slot.seat)

    async def mark_delivered(self, record: DecisionRecord) -> None:
        """The decision is known to have reached the run: nobody sends it again."""
        query = (
            update(ReviewDecisionRow)
            .where(*_is(record), ReviewDecisionRow.delivered_at.is_(None))
            .values(delivered_at=datetime.now(UTC))
        )
        async with self._db.session() as session, session.begin():
            await session.execute(query)

    async def release(self, record: DecisionRecord) -> None:
        """Forget the decision, if its holder still holds the slot: only when it is known
        never to have reached the run, so that the node may take another one."""
        async with self._db.session() as session, session.begin():
            await session.execute(delete(ReviewDecisionRow).where(*_is(record)))

    async def undelivered(self, *, created_before: datetime, limit: int) -> list[DecisionRecord]:
        """Decisions not known to have reached their run, oldest first, in every organization."""
        query = (
            select(ReviewDecisionRow)
            .where(
                ReviewDecisionRow.delivered_at.is_(None),
                ReviewDecisionRow.created_at < created_before,
            )
            .order_by(ReviewDecisionRow.created_at)
            .limit(limit)
        )
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return [_record(row) for row in rows]


def _of_node(node_id: str) -> Any:
    """The rows of every seat of a node."""
    return or_(
        ReviewDecisionRow.node_id == node_id,
        ReviewDecisionRow.node_id.startswith(f"{node_id}#", autoescape=True),
    )


def _is(record: DecisionRecord) -> tuple[Any, ...]:
    slot = record.slot
    return (
        ReviewDecisionRow.organization_id == slot.organization_id,
        ReviewDecisionRow.run_id == slot.run_id,
        ReviewDecisionRow.node_id == slot.key,
        ReviewDecisionRow.attempt == slot.attempt,
        ReviewDecisionRow.holder == record.holder,
    )


def _record(row: ReviewDecisionRow) -> DecisionRecord:
    node_id, _, seat = row.node_id.partition("#")
    return DecisionRecord(
        slot=DecisionSlot(
            row.organization_id, row.run_id, node_id, row.attempt, int(seat) if seat else 1
        ),
        holder=row.holder,
        decision=row.decision,
        temporal_run_id=row.temporal_run_id,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )
