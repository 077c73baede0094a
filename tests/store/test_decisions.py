"""Recorded decisions: one per node and attempt whoever races for it, kept until delivered."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from store.db import Database
from store.decisions import DecisionRepository, DecisionSlot

SLOT = DecisionSlot("org_a", "run_1", "review", 1)


@pytest.fixture
def decisions(db: Database) -> DecisionRepository:
    return DecisionRepository(db)


async def test_one_holder_per_slot_even_at_once(decisions: DecisionRepository) -> None:
    claims = await asyncio.gather(
        *(
            decisions.claim(
                SLOT, holder=f"h{i}", decision={"decision": "approve"}, temporal_run_id="t1"
            )
            for i in range(8)
        )
    )
    assert sorted(created for _, created in claims) == [False] * 7 + [True]
    winner = next(record for record, created in claims if created)
    assert {record.holder for record, _ in claims} == {winner.holder}
    assert await decisions.get(SLOT) == winner
    assert winner.delivered_at is None and winner.created_at.utcoffset() is not None


async def test_slots_are_per_organization_node_and_attempt(
    decisions: DecisionRepository,
) -> None:
    others = [
        DecisionSlot("org_b", "run_1", "review", 1),
        DecisionSlot("org_a", "run_1", "other", 1),
        DecisionSlot("org_a", "run_1", "review", 2),
    ]
    for slot in [SLOT, *others]:
        _, created = await decisions.claim(slot, holder="h", decision={}, temporal_run_id=None)
        assert created, slot
    latest = await decisions.held_by("org_a", "run_1", "review", "h")
    assert latest is not None and latest.slot.attempt == 2
    assert await decisions.held_by("org_a", "run_1", "review", "someone else") is None


async def test_delivered_decisions_leave_the_outbox(decisions: DecisionRepository) -> None:
    record, _ = await decisions.claim(SLOT, holder="h", decision={"a": 1}, temporal_run_id="t")
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await decisions.undelivered(created_before=later, limit=10) == [record]
    assert await decisions.undelivered(created_before=record.created_at, limit=10) == []
    await decisions.mark_delivered(record)
    assert await decisions.undelivered(created_before=later, limit=10) == []
    delivered = await decisions.get(SLOT)
    assert delivered is not None and delivered.delivered_at is not None


async def test_a_released_slot_takes_a_new_decision(decisions: DecisionRepository) -> None:
    record, _ = await decisions.claim(SLOT, holder="h1", decision={}, temporal_run_id=None)
    stranger = dataclasses.replace(record, holder="h2")
    await decisions.release(stranger)  # not the holder: nothing happens
    assert await decisions.get(SLOT) == record
    await decisions.release(record)
    assert await decisions.get(SLOT) is None
    again, created = await decisions.claim(SLOT, holder="h2", decision={}, temporal_run_id=None)
    assert created and again.holder == "h2"


async def test_seats_of_a_node_are_listed_in_order_and_apart_from_its_neighbours(
    decisions: DecisionRepository,
) -> None:
    """A node that needs several approvals takes seats 1, 2, ...; seat 1 is the row a single
    decision always had. Another node's seats are not mistaken for this one's, whatever LIKE
    would make of the '_' in its id."""
    slot = dataclasses.replace(SLOT, node_id="re_view")
    for seat in (3, 1, 2):
        await decisions.claim(
            dataclasses.replace(slot, seat=seat),
            holder=f"h{seat}",
            decision={"decision": "approve", "reviewer": f"r{seat}"},
            temporal_run_id="t1",
        )
    await decisions.claim(
        dataclasses.replace(slot, node_id="reXview", seat=2),
        holder="other",
        decision={"decision": "approve"},
        temporal_run_id="t1",
    )
    seats = await decisions.of_node(slot)
    assert [(r.slot.seat, r.holder) for r in seats] == [(1, "h1"), (2, "h2"), (3, "h3")]
    assert all(r.slot.node_id == "re_view" for r in seats)
    assert await decisions.get(slot) == seats[0]
    assert (await decisions.held_by("org_a", "run_1", "re_view", "h2")) == seats[1]
    assert await decisions.held_by("org_a", "run_1", "re_view", "other") is None
    taken, created = await decisions.claim(
        dataclasses.replace(slot, seat=2),
        holder="late",
        decision={"decision": "reject"},
        temporal_run_id="t1",
    )
    assert not created and taken == seats[1]
