"""The effects ledger and usage records: written per activity attempt, read per run, summed
per organization over a time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.db import Database
from store.usage import AttemptRecord, EffectRecord, RunRef, UsageRepository

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _ref(org: str, run_id: str, node_id: str, attempt: int = 1, wf: str = "wf_a") -> RunRef:
    return RunRef(
        organization_id=org,
        workflow_id=wf,
        run_id=run_id,
        node_id=node_id,
        temporal_workflow_id=run_id,
        temporal_run_id="exec-1",
        activity_attempt=attempt,
    )


def _effect(status: int | None, at: datetime, url: str = "http://peer/x?token=***") -> EffectRecord:
    return EffectRecord(
        method="POST",
        url=url,
        idempotency_key="run_1:call",
        status_code=status,
        bytes_sent=10,
        bytes_received=0 if status is None else 100,
        at=at,
    )


async def test_a_runs_effects_and_usage_per_node(db: Database) -> None:
    usage = UsageRepository(db)
    await usage.record(
        [
            AttemptRecord(_ref("org_a", "run_1", "call", 1), T0, effects=[_effect(500, T0)]),
            AttemptRecord(
                _ref("org_a", "run_1", "call", 2),
                T0 + timedelta(seconds=1),
                executions=0,
                effects=[_effect(None, T0 + timedelta(seconds=1))],
            ),
        ]
    )
    await usage.record(
        [
            AttemptRecord(
                _ref("org_a", "run_1", "call", 3),
                T0 + timedelta(seconds=2),
                executions=0,
                effects=[_effect(200, T0 + timedelta(seconds=2))],
                costs={"llm_tokens": 1200},
            ),
            AttemptRecord(_ref("org_a", "run_1", "shape"), T0, activity_attempts=0),
            AttemptRecord(_ref("org_a", "run_2", "call"), T0, effects=[_effect(200, T0)]),
        ]
    )
    ledger = await usage.run_ledger("run_1")
    assert [(e.activity_attempt, e.status_code) for e in ledger.effects] == [
        (1, 500),
        (2, None),
        (3, 200),
    ]
    first = ledger.effects[0]
    assert (first.method, first.url, first.idempotency_key, first.at) == (
        "POST",
        "http://peer/x?token=***",
        "run_1:call",
        T0,
    )
    call = ledger.nodes["call"]
    assert (call.nodes_executed, call.activity_attempts, call.http_requests) == (1, 3, 3)
    assert (call.http_bytes_sent, call.http_bytes_received) == (30, 200)
    assert call.cost == {"llm_tokens": 1200}
    shape = ledger.nodes["shape"]
    assert (shape.nodes_executed, shape.activity_attempts, shape.http_requests) == (1, 0, 0)
    total = ledger.total
    assert (total.nodes_executed, total.activity_attempts, total.http_requests) == (2, 3, 3)
    assert total.cost == {"llm_tokens": 1200}

    totals = await usage.run_totals(["run_1", "run_2", "run_none"])
    assert set(totals) == {"run_1", "run_2"}
    assert totals["run_1"].http_requests == 3 and totals["run_1"].cost == {"llm_tokens": 1200}
    assert totals["run_2"].http_requests == 1 and totals["run_2"].cost == {}
    assert (await usage.run_ledger("run_none")).effects == []
    assert await usage.run_totals([]) == {}


async def test_organization_totals_by_window_and_workflow(db: Database) -> None:
    usage = UsageRepository(db)
    await usage.record(
        [
            AttemptRecord(
                _ref("org_a", "run_1", "n"), T0, effects=[_effect(200, T0)], costs={"usd": 0.5}
            ),
            AttemptRecord(
                _ref("org_a", "run_2", "n", wf="wf_b"),
                T0 + timedelta(hours=1),
                effects=[_effect(200, T0)],
                costs={"usd": 0.25},
            ),
            AttemptRecord(_ref("org_b", "run_3", "n"), T0, effects=[_effect(200, T0)]),
        ]
    )
    everything = await usage.organization_totals("org_a", start=None, end=None)
    assert (everything.nodes_executed, everything.http_requests) == (2, 2)
    assert everything.cost == {"usd": 0.75}
    first_hour = await usage.organization_totals("org_a", start=T0, end=T0 + timedelta(hours=1))
    assert (first_hour.http_requests, first_hour.cost) == (1, {"usd": 0.5})
    of_b = await usage.organization_totals("org_a", start=None, end=None, workflow_id="wf_b")
    assert (of_b.http_requests, of_b.cost) == (1, {"usd": 0.25})
    nothing = await usage.organization_totals("org_c", start=None, end=None)
    assert (nothing.nodes_executed, nothing.http_requests, nothing.cost) == (0, 0, {})


async def test_values_a_column_cannot_take_are_bounded(db: Database) -> None:
    usage = UsageRepository(db)
    long_url = "http://peer/" + "a" * 20_000 + "\x00"
    await usage.record(
        [AttemptRecord(_ref("org_a", "run_1", "n"), T0, effects=[_effect(200, T0, long_url)])]
    )
    [effect] = (await usage.run_ledger("run_1")).effects
    assert "\x00" not in effect.url and len(effect.url) == 8192
