"""Idempotency keys: which result a command id produced, claimed atomically per organization."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from store.db import Database
from store.tables import IdempotencyRow


@dataclass(frozen=True)
class IdempotencyRecord:
    organization_id: str
    command_id: str
    operation: str
    target: str
    body_hash: str
    result_id: str
    created_at: datetime


class IdempotencyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, org: str, command_id: str) -> IdempotencyRecord | None:
        query = select(IdempotencyRow).where(
            IdempotencyRow.organization_id == org, IdempotencyRow.command_id == command_id
        )
        async with self._db.session() as session:
            row = await session.scalar(query)
        return _record(row) if row is not None else None

    async def claim(
        self,
        org: str,
        *,
        command_id: str,
        operation: str,
        target: str,
        body_hash: str,
        result_id: str,
    ) -> tuple[IdempotencyRecord, bool]:
        """(record, True) for the first claim of the key; (the existing record, False) after.
        The primary key decides the race, so it holds across API replicas."""
        while True:
            row = IdempotencyRow(
                organization_id=org,
                command_id=command_id,
                operation=operation,
                target=target,
                body_hash=body_hash,
                result_id=result_id,
                created_at=datetime.now(UTC),
            )
            try:
                async with self._db.session() as session, session.begin():
                    session.add(row)
            except IntegrityError:
                existing = await self.get(org, command_id)
                if existing is None:  # a slot released in between: claim it again
                    continue
                return existing, False
            return _record(row), True

    async def release(self, org: str, *, command_id: str, body_hash: str) -> bool:
        """Delete the key if `body_hash` still holds it: for slots whose holder's effect was
        refused outright (command keys themselves are never deleted)."""
        query = delete(IdempotencyRow).where(
            IdempotencyRow.organization_id == org,
            IdempotencyRow.command_id == command_id,
            IdempotencyRow.body_hash == body_hash,
        )
        async with self._db.session() as session, session.begin():
            result = await session.execute(query)
        return bool(getattr(result, "rowcount", 0))


def _record(row: IdempotencyRow) -> IdempotencyRecord:
    return IdempotencyRecord(
        organization_id=row.organization_id,
        command_id=row.command_id,
        operation=row.operation,
        target=row.target,
        body_hash=row.body_hash,
        result_id=row.result_id,
        created_at=row.created_at,
    )
