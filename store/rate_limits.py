"""Per-organization token buckets kept in the relational store, so that every API replica
takes from the same bucket (the limit is the organization's, not a process's).

A take is ONE statement (an upsert with RETURNING): the row is refilled for the time since its
last update at `rate` tokens a second up to `burst`, then up to `want` whole tokens are taken
(as many as are there; none below one). Both SQLite (the writer lock) and PostgreSQL (the row
lock taken by `ON CONFLICT DO UPDATE`, which re-reads the latest committed row) apply
concurrent takes one after the other, so two replicas can never spend the same token.

Time comes from the database's clock, read inside that statement: replicas whose clocks
disagree still refill one bucket consistently. `updated_at` never goes back (a statement that
started a moment before one that committed first refills nothing, rather than twice).

A store write per request costs (bench `api_overhead`), so each process leases tokens
(:class:`LeasedBuckets`): it takes several at once (at most `rate × L`, and `MAX_LEASE`) and
spends them locally for at most L seconds (`RUNLANE_RATE_LIMIT_LEASE_S`, default
`LEASE_SECONDS`); what is left then lapses (given back to nobody). The limit stays the
organization's: over any interval of T seconds every replica together admits at most
`burst + rate × (T + L)` requests (a token spent was taken at most L earlier). The other way,
a replica may refuse while another still holds a lease: at most `rate × L` tokens per replica,
for at most L seconds. L = 0: one write per request, exact.
"""

from __future__ import annotations

import asyncio
import math
import time
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
# Two-argument minimum and maximum; the whole part of a non-negative number.
_LEAST = {"sqlite": "MIN", "postgresql": "LEAST"}
_GREATEST = {"sqlite": "MAX", "postgresql": "GREATEST"}
_FLOOR = {"sqlite": "CAST({} AS INTEGER)", "postgresql": "FLOOR({})"}

# The SET expressions all read the row as it was before this statement (SQL's rule).
_TAKE = """
INSERT INTO rate_limit_buckets (organization_id, tokens, updated_at, taken)
VALUES (:org, :burst - {first}, {now}, {first})
ON CONFLICT (organization_id) DO UPDATE SET
    tokens = {refill} - {taken},
    taken = {taken},
    updated_at = {greatest}(rate_limit_buckets.updated_at, {now})
RETURNING tokens, taken
"""
_REFILL = (
    "{least}(:burst, rate_limit_buckets.tokens"
    " + {greatest}(0.0, {now} - rate_limit_buckets.updated_at) * :rate)"
)
_TAKEN = "CASE WHEN {refill} >= 1 THEN {least}(:want, {floor}) ELSE 0 END"


@lru_cache
def _statement(dialect: str) -> TextClause:
    now, least, greatest = _NOW[dialect], _LEAST[dialect], _GREATEST[dialect]
    refill = _REFILL.format(least=least, greatest=greatest, now=now)
    taken = _TAKEN.format(refill=refill, least=least, floor=_FLOOR[dialect].format(refill))
    first = f"{least}(:want, {_FLOOR[dialect].format(':burst')})"
    sql = _TAKE.format(now=now, refill=refill, taken=taken, greatest=greatest, first=first)
    if dialect == "postgresql":
        # asyncpg must know the parameters' types; SQLite takes them as they come.
        for name in ("burst", "want", "rate"):
            sql = sql.replace(f":{name}", f"CAST(:{name} AS DOUBLE PRECISION)")
    return text(sql)


@dataclass(frozen=True)
class Take:
    # Whole tokens taken (0: refused).
    taken: int
    # Tokens left in the bucket after this take.
    tokens: float
    # When refused: seconds until a token is there again (0 when some were taken).
    retry_after_s: float


class RateLimitRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        dialect = db.engine.dialect.name
        if dialect not in _NOW:
            raise ValueError(f"rate limits are not supported on {dialect}")
        self._sql = _statement(dialect)

    async def take(self, organization: str, *, rate: float, burst: float, want: int = 1) -> Take:
        """Take up to `want` whole tokens from the organization's bucket (none if it holds
        less than one). `burst` is at least 1."""
        if want < 1 or burst < 1:
            raise ValueError("want and burst must be at least 1")
        params = {"org": organization, "rate": rate, "burst": burst, "want": want}
        # Every request takes its tokens first, so a client that hangs up mid-request often
        # cancels this write: shielded, the transaction always ends and its connection goes
        # back to the pool whole. (The full suite once hung in a test that cancels requests
        # mid-flight, after the limiter came in; a cancelled aiosqlite write is the likely
        # cause, and shielding rules it out.) The caller still sees its cancellation; the
        # tokens taken lapse unspent.
        tokens, taken_float = await asyncio.shield(self._take(params))
        taken = round(taken_float)
        if taken:
            return Take(taken=taken, tokens=tokens, retry_after_s=0.0)
        wait = (1 - tokens) / rate if rate > 0 else math.inf
        return Take(taken=0, tokens=tokens, retry_after_s=max(wait, 0.0))

    async def _take(self, params: dict[str, object]) -> tuple[float, float]:
        """The bucket's tokens after the take, and the tokens taken."""
        async with self._db.engine.begin() as conn:
            row = (await conn.execute(self._sql, params)).one()
        return float(row[0]), float(row[1])


# How long a process may hold tokens it took before spending them (the default of
# `RUNLANE_RATE_LIMIT_LEASE_S`): the bound of the limit's error (see the module's docstring).
# At 100/s: at most 10 tokens leased per replica.
LEASE_SECONDS = 0.1
# The most tokens one take leases, whatever the rate (one write per this many requests at
# best; the measured cost of a write is in bench `api_overhead`).
MAX_LEASE = 64


@dataclass
class _Lease:
    tokens: int = 0
    expires: float = 0.0
    # Tokens the next take asks for: doubled when requests came faster than the lease
    # lasted, halved when one lapsed unspent, so a quiet organization takes one at a time.
    size: int = 1


@dataclass(frozen=True)
class Admission:
    allowed: bool
    # When refused: seconds until a token is there again.
    retry_after_s: float


class LeasedBuckets:
    """One per process: spends leased tokens locally, takes more from the shared bucket
    (`RateLimitRepository`) when its lease is spent or has lapsed."""

    def __init__(self, max_lease: int = MAX_LEASE) -> None:
        self._max_lease = max_lease
        # Keyed by organization: as many as the configured API keys name.
        self._leases: dict[str, _Lease] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def admit(
        self,
        buckets: RateLimitRepository,
        organization: str,
        *,
        rate: float,
        burst: float,
        lease_seconds: float = LEASE_SECONDS,
    ) -> Admission:
        """Admit one request of the organization, or refuse it with the wait. `lease_seconds`
        0: every request takes its token from the store (exact, one write each)."""
        lease = self._leases.setdefault(organization, _Lease())
        if self._spend(lease):
            return Admission(True, 0.0)
        # One take at a time per organization: concurrent requests share what it brings.
        async with self._locks.setdefault(organization, asyncio.Lock()):
            if self._spend(lease):
                return Admission(True, 0.0)
            if time.monotonic() < lease.expires:  # spent before it lapsed: ask for more
                lease.size *= 2
            elif lease.tokens > 0:  # lapsed unspent: more than this process needed
                lease.size = max(1, lease.size // 2)
            cap = max(1, min(self._max_lease, math.floor(rate * lease_seconds)))
            lease.size = min(lease.size, cap)
            take = await buckets.take(organization, rate=rate, burst=burst, want=lease.size)
            if not take.taken:
                lease.tokens, lease.expires = 0, 0.0
                return Admission(False, take.retry_after_s)
            lease.tokens = take.taken - 1
            lease.expires = time.monotonic() + lease_seconds
            return Admission(True, 0.0)

    @staticmethod
    def _spend(lease: _Lease) -> bool:
        if lease.tokens > 0 and time.monotonic() < lease.expires:
            lease.tokens -= 1
            return True
        return False
