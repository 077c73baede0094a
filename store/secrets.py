"""Organizations' secrets: names in the clear, values only as ciphertext (runlane/secret_box.py).

Every method is scoped to one organization: another's secrets look missing. Values leave this
module in one place only, `values()`, which the worker's http_request activity calls to send
them; the API writes values and reads names, never values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from runlane.paging import Order
from runlane.secret_box import Sealed, SecretKeys
from runlane.templating import is_secret_name
from store.db import Database
from store.pagination import Page, after_time_cursor, encode_time_cursor, make_page, ordered
from store.tables import SecretRow

# Each failed attempt means a concurrent PUT of the same new name inserted it first.
_PUT_ATTEMPTS = 5


@dataclass(frozen=True)
class SecretRecord:
    """What may be shown of a secret: never its value."""

    organization_id: str
    name: str
    created_at: datetime
    updated_at: datetime


class SecretRepository:
    def __init__(self, db: Database, keys: SecretKeys) -> None:
        self._db = db
        self._keys = keys

    async def put(self, org: str, name: str, value: str) -> SecretRecord:
        """Create the secret, or replace its value (sealed with the current key)."""
        if not is_secret_name(name):
            raise ValueError("not a secret name")
        sealed = self._keys.seal(org, name, value)
        for _ in range(_PUT_ATTEMPTS):
            now = datetime.now(UTC)
            try:
                async with self._db.session() as session, session.begin():
                    row = await session.get(SecretRow, (org, name), with_for_update=True)
                    if row is None:
                        row = SecretRow(
                            organization_id=org,
                            name=name,
                            key_id=sealed.key_id,
                            ciphertext=sealed.data,
                            created_at=now,
                            updated_at=now,
                        )
                        session.add(row)
                    else:
                        row.key_id = sealed.key_id
                        row.ciphertext = sealed.data
                        row.updated_at = now
            except IntegrityError:
                continue
            return _record(row)
        raise RuntimeError(f"could not store secret {name}: too many concurrent writes")

    async def get(self, org: str, name: str) -> SecretRecord | None:
        if not is_secret_name(name):
            return None
        async with self._db.session() as session:
            row = await session.get(SecretRow, (org, name))
        return _record(row) if row is not None else None

    async def list(
        self, org: str, *, limit: int, cursor: str | None, order: Order = "desc"
    ) -> Page[SecretRecord]:
        """By creation time: newest first (`desc`) or oldest first (`asc`)."""
        query = select(SecretRow).where(SecretRow.organization_id == org)
        if cursor is not None:
            query = query.where(
                after_time_cursor(SecretRow.created_at, SecretRow.name, cursor, order)
            )
        query = query.order_by(*ordered(order, SecretRow.created_at, SecretRow.name))
        async with self._db.session() as session:
            rows = (await session.scalars(query.limit(limit + 1))).all()
        return make_page(
            rows, limit, _record, lambda r: encode_time_cursor(r.created_at, r.name, order)
        )

    async def delete(self, org: str, name: str) -> bool:
        """Whether there was such a secret. Runs that already resolved it keep what they sent;
        nodes that resolve it later fail (UnknownSecret)."""
        if not is_secret_name(name):
            return False
        query = delete(SecretRow).where(SecretRow.organization_id == org, SecretRow.name == name)
        async with self._db.session() as session, session.begin():
            result = await session.execute(query)
        return bool(getattr(result, "rowcount", 0))

    async def missing(self, org: str, names: Iterable[str]) -> Sequence[str]:
        """The names, in the order given, that the organization has no secret by."""
        wanted = list(dict.fromkeys(names))
        valid = [name for name in wanted if is_secret_name(name)]
        found: set[str] = set()
        if valid:
            query = select(SecretRow.name).where(
                SecretRow.organization_id == org, SecretRow.name.in_(valid)
            )
            async with self._db.session() as session:
                found = set((await session.scalars(query)).all())
        return [name for name in wanted if name not in found]

    async def values(self, org: str, names: Iterable[str]) -> dict[str, str]:
        """The decrypted values of the organization's secrets by these names; a name it has no
        secret by is left out. SecretDecryptError when a value cannot be decrypted."""
        valid = [name for name in dict.fromkeys(names) if is_secret_name(name)]
        if not valid:
            return {}
        query = select(SecretRow).where(SecretRow.organization_id == org, SecretRow.name.in_(valid))
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return {
            row.name: self._keys.open(org, row.name, Sealed(row.key_id, row.ciphertext))
            for row in rows
        }


def _record(row: SecretRow) -> SecretRecord:
    return SecretRecord(
        organization_id=row.organization_id,
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
