"""The shared token bucket: one statement per take, on SQLite and PostgreSQL; and the
per-process leases that spend its tokens a few at a time within the documented bound."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from store.db import Database
from store.rate_limits import LEASE_SECONDS, LeasedBuckets, RateLimitRepository


async def test_a_bucket_grants_its_burst_then_refuses_with_the_wait(db: Database) -> None:
    buckets = RateLimitRepository(db)
    # A slow refill: one token every 100 s, so nothing refills during the test.
    takes = [await buckets.take("org_a", rate=0.01, burst=3) for _ in range(4)]
    assert [t.taken for t in takes] == [1, 1, 1, 0]
    refused = takes[-1]
    # The missing token comes back after (1 - what is left) / rate seconds.
    assert 0 < refused.retry_after_s <= 100
    assert refused.retry_after_s == pytest.approx((1 - refused.tokens) / 0.01)
    # Another organization has its own bucket.
    assert (await buckets.take("org_b", rate=0.01, burst=3)).taken == 1


async def test_a_take_gets_as_many_whole_tokens_as_are_there(db: Database) -> None:
    buckets = RateLimitRepository(db)
    assert (await buckets.take("org_a", rate=0.01, burst=5, want=3)).taken == 3
    assert (await buckets.take("org_a", rate=0.01, burst=5, want=3)).taken == 2
    assert (await buckets.take("org_a", rate=0.01, burst=5, want=3)).taken == 0
    # A first take of more than the burst gets the burst.
    assert (await buckets.take("org_b", rate=0.01, burst=5, want=8)).taken == 5


async def test_a_bucket_refills_at_its_rate(db: Database) -> None:
    buckets = RateLimitRepository(db)
    assert (await buckets.take("org_a", rate=20, burst=1)).taken
    refused = await buckets.take("org_a", rate=20, burst=1)
    assert not refused.taken and refused.retry_after_s <= 1 / 20
    deadline = time.monotonic() + 5
    while not (await buckets.take("org_a", rate=20, burst=1)).taken:
        assert time.monotonic() < deadline, "the bucket never refilled"


async def test_concurrent_takes_never_spend_a_token_twice(db: Database) -> None:
    buckets = RateLimitRepository(db)
    # Takes on several pooled connections at once, as several replicas would send them.
    takes = await asyncio.gather(*(buckets.take("org_a", rate=0.001, burst=10) for _ in range(30)))
    assert sum(t.taken for t in takes) == 10


async def test_leases_of_two_replicas_stay_within_the_bound(db: Database) -> None:
    """Two processes' leases over one bucket, driven far past the limit for a while: together
    they admit at most burst + rate x (elapsed + LEASE_SECONDS), and each admits some."""
    buckets = RateLimitRepository(db)
    replicas = [LeasedBuckets(), LeasedBuckets()]
    rate, burst = 200.0, 20.0
    admitted = [0, 0]
    started = time.monotonic()

    async def hammer(index: int) -> None:
        while time.monotonic() - started < 0.5:
            admission = await replicas[index].admit(buckets, "org_a", rate=rate, burst=burst)
            if admission.allowed:
                admitted[index] += 1
            else:
                assert 0 < admission.retry_after_s <= 1 / rate
                await asyncio.sleep(0)

    await asyncio.gather(*(hammer(i) for i in (0, 1) for _ in range(4)))
    elapsed = time.monotonic() - started
    assert sum(admitted) <= burst + rate * (elapsed + LEASE_SECONDS)
    assert all(admitted)


async def test_a_low_rate_is_exact_one_token_at_a_time(db: Database) -> None:
    buckets = RateLimitRepository(db)
    replicas = [LeasedBuckets(), LeasedBuckets()]
    allowed = [
        (await replicas[i % 2].admit(buckets, "org_a", rate=0.01, burst=3)).allowed
        for i in range(5)
    ]
    assert allowed == [True, True, True, False, False]


async def test_takes_cancelled_mid_write_leave_the_store_usable(db: Database) -> None:
    """Clients hang up while their request takes its token: each take is cancelled at a
    different point of its write. Every write still ends (no transaction left holding the
    database for busy_timeout's 15 s), so takes right after answer at once."""
    buckets = RateLimitRepository(db)
    for attempt in range(15):
        task = asyncio.create_task(buckets.take("org_cut", rate=0.001, burst=20))
        await asyncio.sleep(attempt * 0.0005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    after = await asyncio.wait_for(buckets.take("org_cut_other", rate=1, burst=1), timeout=5)
    assert after.taken == 1
    # Each of the 15 cancelled takes took one token or none: the bucket of 20 has more.
    left = await asyncio.wait_for(buckets.take("org_cut", rate=0.001, burst=20), timeout=5)
    assert left.taken == 1
