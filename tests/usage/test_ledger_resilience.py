"""The ledger never fails or holds up a node: a store that cannot be reached is logged and the
run goes on; a slow store delays an attempt by at most the ledger's wait; records that arrive
while a write is in flight are written together."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.registry import ActivityDeps, default_registry
from activities.usage import Ledger, temporal_organizations
from runlane.settings import Settings
from runs.usage import RunUsage
from store.db import Database
from store.usage import AttemptRecord, RunRef, UsageRepository
from tests.api.helpers import create_published
from tests.peer import Peer
from tests.usage.test_ledger import call_definition, run_to_end, steps_of
from workflows.models import RunState
from workflows.worker import create_worker


@pytest.fixture
async def worker(
    client: Client, settings: Settings, http_client: httpx.AsyncClient
) -> AsyncIterator[Worker]:
    """A worker whose ledger's store is down (nothing listens on port 1)."""
    unreachable = Database("postgresql+asyncpg://runlane@127.0.0.1:1/runlane")
    ledger = Ledger(UsageRepository(unreachable), organizations=temporal_organizations(client))
    deps = ActivityDeps(settings=settings, http_client=http_client, ledger=ledger)
    try:
        async with create_worker(
            client,
            task_queue=settings.task_queue,
            activities=default_registry().activities(deps),
            ledger=ledger,
        ) as running:
            yield running
    finally:
        await ledger.close()
        await unreachable.dispose()


async def test_a_store_out_of_reach_is_logged_and_the_run_goes_on(
    api: httpx.AsyncClient, peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="runlane.usage")
    workflow_id = await create_published(api, call_definition(f"{peer.url}/ok"))
    run = await run_to_end(api, workflow_id)
    assert run["status"] == "completed", run
    assert peer.count("/ok") == 1
    # Nothing was recorded (the API's store never heard of it), and the worker said so.
    assert (await steps_of(api, run["id"]))["call"]["effects"] == []
    assert run["usage"]["http_requests"] == 0
    assert any("not written" in record.getMessage() for record in caplog.records)


def _record(run_id: str) -> AttemptRecord:
    ref = RunRef("org_a", "wf_a", run_id, "n", run_id, "exec", 1)
    return AttemptRecord(ref=ref, at=datetime.now(UTC))


class HeldStore:
    """A store whose first write waits until released; it keeps what each write got."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.writes: list[list[str]] = []

    async def record(self, attempts: Iterable[AttemptRecord]) -> None:
        if not self.writes:
            self.writes.append([a.ref.run_id for a in attempts])
            await self.release.wait()
            return
        self.writes.append([a.ref.run_id for a in attempts])


async def test_a_slow_store_delays_an_attempt_by_the_wait_at_most() -> None:
    store = HeldStore()
    ledger = Ledger(store, wait_s=0.2)
    began = time.monotonic()
    await ledger.record(_record("run_1"))
    assert 0.15 < time.monotonic() - began < 2
    # Records arriving while the first write is held go together in the next one.
    waiting = [asyncio.create_task(ledger.record(_record(f"run_{i}"))) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    store.release.set()
    await asyncio.gather(*waiting)
    await ledger.close()
    assert store.writes == [["run_1"], ["run_2", "run_3", "run_4"]]


class OneBadRecord:
    """Refuses any write that holds `run_bad`: one bad record must not lose the others."""

    def __init__(self) -> None:
        self.written: list[str] = []

    async def record(self, attempts: Iterable[AttemptRecord]) -> None:
        ids = [a.ref.run_id for a in attempts]
        if "run_bad" in ids:
            raise ValueError("a value the column cannot take")
        self.written.extend(ids)


async def test_one_bad_record_does_not_lose_the_others() -> None:
    store = OneBadRecord()
    ledger = Ledger(store)
    await asyncio.gather(*(ledger.record(_record(r)) for r in ("run_1", "run_bad", "run_2")))
    await ledger.close()
    assert sorted(store.written) == ["run_1", "run_2"]


async def test_runs_read_without_their_ledger_when_the_store_is_down() -> None:
    """Runs are Temporal's to show: a ledger that cannot be read leaves usage out (None) and
    steps without effects, rather than failing the read."""
    unreachable = Database("postgresql+asyncpg://runlane@127.0.0.1:1/runlane")
    try:
        usage = RunUsage(UsageRepository(unreachable), default_registry())
        assert await usage.totals(["run_x"]) == {"run_x": None}
        state = RunState.model_validate(
            {
                "run_id": "run_x",
                "organization_id": "org_a",
                "workflow": {
                    "workflow_id": "wf_a",
                    "snapshot_id": None,
                    "version": None,
                    "name_at_run_time": "w",
                },
                "trigger": {},
                "inputs": {},
                "status": "completed",
                "timing": {"created_at": datetime.now(UTC).isoformat()},
            }
        )
        assert await usage.steps(state) == {}
    finally:
        await unreachable.dispose()
