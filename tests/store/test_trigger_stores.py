"""The triggers' tables, against SQLite and (when configured) PostgreSQL: schedules, inbound
webhooks, event endpoints and their delivery log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from runlane.secret_box import generate_key, parse_secret_keys
from store.db import Database
from store.endpoints import AttemptOutcome, EndpointRepository
from store.schedules import ScheduleRepository
from store.tables import InboundWebhookRow, WebhookEndpointRow
from store.webhooks import InboundWebhookRepository
from store.workflows import WorkflowRepository

KEYS = parse_secret_keys(generate_key())


# ------------------------------------------------------------------ event endpoints


async def test_subscriptions_follow_enabled_endpoints(db: Database) -> None:
    endpoints = EndpointRepository(db, KEYS)
    first, _ = await endpoints.create(
        "org_a", url="http://a.test/x", events=["run.completed", "run.started"], description=""
    )
    second, secret = await endpoints.create(
        "org_a", url="http://b.test/x", events=["review.decided"], description="b"
    )
    await endpoints.create("org_b", url="http://c.test/x", events=["run.failed"], description="")
    assert await endpoints.subscribed_event_types("org_a") == [
        "review.decided",
        "run.completed",
        "run.started",
    ]
    await endpoints.update("org_a", second.id, disabled=True)
    assert await endpoints.subscribed_event_types("org_a") == ["run.completed", "run.started"]
    # Another organization's endpoint is not found; the secret is stored sealed only.
    assert await endpoints.get("org_b", first.id) is None
    async with db.session() as session:
        rows = (await session.scalars(select(WebhookEndpointRow))).all()
    assert all(secret.encode() not in row.secret_ciphertext for row in rows)
    [target] = await endpoints.targets("org_a", "run.started")
    assert target.id == first.id and target.secret is not None


async def test_a_delivery_log_opened_twice_has_one_entry_per_endpoint(db: Database) -> None:
    """A first attempt that runs again (its worker died) opens nothing more: one statement
    that skips what exists, on either database."""
    endpoints = EndpointRepository(db, KEYS)
    a, _ = await endpoints.create(
        "org_a", url="http://a.test/", events=["run.started"], description=""
    )
    b, _ = await endpoints.create(
        "org_a", url="http://b.test/", events=["run.started"], description=""
    )
    for _ in range(2):
        await endpoints.open_deliveries(
            "org_a",
            event_id="evt_1",
            event_type="run.started",
            run_id="run_1",
            endpoint_ids=[a.id, b.id],
        )
    later = datetime.now(UTC) + timedelta(seconds=30)
    await endpoints.record_attempts(
        "evt_1",
        [
            AttemptOutcome(a.id, succeeded=True, status_code=204),
            AttemptOutcome(b.id, succeeded=False, status_code=503, error="answered HTTP 503"),
        ],
        next_attempt_at=later,
    )
    [to_a] = (await endpoints.deliveries("org_a", a.id, limit=10, cursor=None)).items
    [to_b] = (await endpoints.deliveries("org_a", b.id, limit=10, cursor=None)).items
    assert (to_a.status, to_a.attempts, to_a.last_status_code, to_a.next_attempt_at) == (
        "succeeded",
        1,
        204,
        None,
    )
    assert (to_b.status, to_b.attempts, to_b.last_error) == ("retrying", 1, "answered HTTP 503")
    assert to_b.next_attempt_at is not None and abs(to_b.next_attempt_at - later) < timedelta(
        seconds=1
    )
    await endpoints.stop_deliveries("evt_1", [b.id], "the endpoint was disabled")
    [stopped] = (await endpoints.deliveries("org_a", b.id, limit=10, cursor=None)).items
    assert (stopped.status, stopped.last_error) == ("failed", "the endpoint was disabled")
    assert (await endpoints.deliveries("org_b", a.id, limit=10, cursor=None)).items == []


# ------------------------------------------------------------------ schedules


async def test_changes_of_one_schedule_run_one_after_the_other(db: Database) -> None:
    schedules = ScheduleRepository(db)
    await schedules.add(
        "org_a",
        "sch_" + "0" * 32,
        workflow_id="wf_1",
        spec={"interval_s": 60},
        inputs={},
        config_source="published",
        note="",
    )
    schedule_id = "sch_" + "0" * 32
    inside: list[str] = []

    def change(label: str, spec: dict[str, int]) -> asyncio.Task[object]:
        async def during(_: object) -> None:
            inside.append(f"{label} in")
            await asyncio.sleep(0.2)
            inside.append(f"{label} out")

        return asyncio.create_task(schedules.update("org_a", schedule_id, spec=spec, during=during))

    await asyncio.gather(change("a", {"interval_s": 120}), change("b", {"interval_s": 180}))
    assert inside in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    last = inside[-1][0]
    record = await schedules.get("org_a", schedule_id)
    assert record is not None and record.spec == {"interval_s": 120 if last == "a" else 180}

    async def refuse(_: object) -> None:
        raise RuntimeError("Temporal refused")

    with pytest.raises(RuntimeError):
        await schedules.update("org_a", schedule_id, note="never", during=refuse)
    unchanged = await schedules.get("org_a", schedule_id)
    assert unchanged is not None and unchanged.note == ""
    assert await schedules.update("org_b", schedule_id, note="x") is None
    assert await schedules.delete("org_a", schedule_id)
    assert not await schedules.delete("org_a", schedule_id)


# ------------------------------------------------------------------ inbound webhooks


async def test_a_webhooks_secret_is_sealed_and_opened_for_its_calls(db: Database) -> None:
    workflow = await WorkflowRepository(db).create(
        "org_a", name="w", description="", definition={"nodes": [], "edges": []}
    )
    webhooks = InboundWebhookRepository(db, KEYS)
    created = await webhooks.create(
        "org_a",
        workflow_id=workflow.id,
        input_node="in",
        config_source="published",
        secret="whsec_c2VjcmV0",
    )
    found = await webhooks.for_delivery(created.id)
    assert (
        found is not None and found[1] == "whsec_c2VjcmV0" and found[0].workflow_id == workflow.id
    )
    async with db.session() as session:
        [row] = (await session.scalars(select(InboundWebhookRow))).all()
    assert b"c2VjcmV0" not in row.ciphertext
    assert (await webhooks.list("org_b", workflow.id, limit=10, cursor=None)).items == []
    assert not await webhooks.delete("org_b", created.id)
    assert await webhooks.delete("org_a", created.id)
    assert await webhooks.for_delivery(created.id) is None
