"""Idempotency keys: the first claim wins, every later one sees the winner's record."""

from __future__ import annotations

import asyncio

from store.idempotency import IdempotencyRepository

ORG = "org_a"


async def test_first_claim_wins_and_later_ones_see_it(idempotency: IdempotencyRepository) -> None:
    first, created = await idempotency.claim(
        ORG, command_id="cmd-1", operation="start", target="wf_1", body_hash="h1", result_id="run_1"
    )
    again, created_again = await idempotency.claim(
        ORG,
        command_id="cmd-1",
        operation="cancel",
        target="run_9",
        body_hash="h2",
        result_id="run_2",
    )

    assert created is True
    assert created_again is False
    assert again == first
    assert (again.operation, again.target, again.body_hash, again.result_id) == (
        "start",
        "wf_1",
        "h1",
        "run_1",
    )
    assert await idempotency.get(ORG, "cmd-1") == first
    assert first.created_at.utcoffset() is not None


async def test_keys_are_scoped_to_the_organization(idempotency: IdempotencyRepository) -> None:
    await idempotency.claim(
        ORG, command_id="cmd-1", operation="start", target="wf_1", body_hash="h", result_id="run_1"
    )

    record, created = await idempotency.claim(
        "org_b",
        command_id="cmd-1",
        operation="start",
        target="wf_1",
        body_hash="h",
        result_id="run_2",
    )

    assert created is True
    assert record.result_id == "run_2"
    assert await idempotency.get("org_c", "cmd-1") is None


async def test_concurrent_claims_of_one_key_have_exactly_one_winner(
    idempotency: IdempotencyRepository,
) -> None:
    results = await asyncio.gather(
        *(
            idempotency.claim(
                ORG,
                command_id="race",
                operation="start",
                target="wf_1",
                body_hash="h",
                result_id=f"run_{i}",
            )
            for i in range(20)
        )
    )

    winners = [record for record, created in results if created]
    assert len(winners) == 1
    assert {record for record, _ in results} == {winners[0]}
    assert await idempotency.get(ORG, "race") == winners[0]
