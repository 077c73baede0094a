"""Per-organization token buckets kept in the relational store, so that every API replica
takes from the same bucket (the limit is the organization's, not a process's).

A take is ONE statement (an upsert with RETURNING): the row is refilled for the time since its
last update at `rate` tokens a second up to `burst`, and `cost` tokens are taken when that many
are there. Both SQLite (the writer lock) and PostgreSQL (the row lock taken by
`ON CONFLICT DO UPDATE`, which re-reads the latest committed row) apply concurrent takes one
after the other, so two replicas can never spend the same token.

Time comes from the database's clock, read inside that statement: replicas whose clocks
disagree still refill one bucket consistently. `updated_at` never goes back (a statement that
started a moment before one that committed first refills nothing, rather than twice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import TextClause, text

from store.db import Database

# The database's clock in Unix seconds, stable within one statement on both: SQLite reads
# 'now' once per statement step; PostgreSQL's statement_timestamp() is the statement's start.
_NOW = {
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM statement_timestamp()) AS DOUBLE PRECISION)",
}
# Two-argument minimum and maximum.
_LEAST = {"sqlite": "MIN", "postgresql": "LEAST"}
_GREATEST = {"sqlite": "MAX", "postgresql": "GREATEST"}

_TAKE = """
INSERT INTO rate_limit_buckets (organization_id, tokens, updated_at, granted)
VALUES (
    :org,
    CASE WHEN :burst >= :cost THEN :burst - :cost ELSE :burst END,
    {now},
    :burst >= :cost
)
ON CONFLICT (organization_id) DO UPDATE SET
    tokens = CASE WHEN {refill} >= :cost THEN {refill} - :cost ELSE {refill} END,
    granted = {refill} >= :cost,
    updated_at = {greatest}(rate_limit_buckets.updated_at, {now})
RETURNING tokens, granted
"""
_REFILL = (
    "{least}(:burst, rate_limit_buckets.tokens"
    " + {greatest}(0.0, {now} - rate_limit_buckets.updated_at) * :rate)"
)


@lru_cache
def _statement(dialect: str) -> TextClause:
    now, least, greatest = _NOW[dialect], _LEAST[dialect], _GREATEST[dialect]
    refill = _REFILL.format(least=least, greatest=greatest, now=now)
    sql = _TAKE.format(now=now, refill=refill, greatest=greatest)
    if dialect == "postgresql":
        # asyncpg must know the parameters' types; SQLite takes them as they come.
        for name in ("burst", "cost", "rate"):
            sql = sql.replace(f":{name}", f"CAST(:{name} AS DOUBLE PRECISION)")
    return text(sql)


@dataclass(frozen=True)
class Take:
    granted: bool
    # Tokens left in the bucket after this take.
    tokens: float
    # When refused: seconds until `cost` tokens are there again (0 when granted).
    retry_after_s: float


class RateLimitRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        dialect = db.engine.dialect.name
        if dialect not in _NOW:
            raise ValueError(f"rate limits are not supported on {dialect}")
        self._sql = _statement(dialect)

    async def take(self, organization: str, *, rate: float, burst: float, cost: float = 1) -> Take:
        """Take `cost` tokens from the organization's bucket if it holds that many."""
        if not 0 < cost <= burst:
            raise ValueError("cost must be positive and at most the burst")
        params = {"org": organization, "rate": rate, "burst": burst, "cost": cost}
        async with self._db.engine.begin() as conn:
            row = (await conn.execute(self._sql, params)).one()
        tokens, granted = float(row[0]), bool(row[1])
        if granted:
            return Take(granted=True, tokens=tokens, retry_after_s=0.0)
        wait = (cost - tokens) / rate if rate > 0 else math.inf
        return Take(granted=False, tokens=tokens, retry_after_s=max(wait, 0.0))
