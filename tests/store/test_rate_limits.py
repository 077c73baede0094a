"""The shared token bucket: one statement per take, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import pytest

from store.db import Database
from store.rate_limits import RateLimitRepository


async def test_a_bucket_grants_its_burst_then_refuses_with_the_wait(db: Database) -> None:
    buckets = RateLimitRepository(db)
    # A slow refill: one token every 100 s, so nothing refills during the test.
    takes = [await buckets.take("org_a", rate=0.01, burst=3) for _ in range(4)]
    assert [t.granted for t in takes] == [True, True, True, False]
    refused = takes[-1]
    # The missing token comes back after (1 - what is left) / rate seconds.
    assert 0 < refused.retry_after_s <= 100
    assert refused.retry_after_s == pytest.approx((1 - refused.tokens) / 0.01)
    # Another organization has its own bucket.
    assert (await buckets.take("org_b", rate=0.01, burst=3)).granted


async def test_a_bucket_refills_at_its_rate(db: Database) -> None:
    buckets = RateLimitRepository(db)
    assert (await buckets.take("org_a", rate=20, burst=1)).granted
    refused = await buckets.take("org_a", rate=20, burst=1)
    assert not refused.granted and refused.retry_after_s <= 1 / 20
    deadline = time.monotonic() + 5
    while not (await buckets.take("org_a", rate=20, burst=1)).granted:
        assert time.monotonic() < deadline, "the bucket never refilled"


async def test_concurrent_takes_never_spend_a_token_twice(db: Database) -> None:
    buckets = RateLimitRepository(db)
    # Takes on several pooled connections at once, as several replicas would send them.
    takes = await asyncio.gather(*(buckets.take("org_a", rate=0.001, burst=10) for _ in range(30)))
    assert sum(t.granted for t in takes) == 10
