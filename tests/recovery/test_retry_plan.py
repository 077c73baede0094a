"""The retry plan changes nothing and says exactly what the retry then does."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import create_published
from tests.peer import Peer
from tests.recovery.support import (
    RUNS,
    failed_run,
    get_run,
    http_node,
    retry_plan,
    steps_of,
    wait_for_attempt,
)

HTTP_NODES = ("a", "b", "c", "never")


def branching(peer: Peer) -> dict[str, Any]:
    """note -> a -> ok? -(true)-> b (fails once) -> c -> out; -(false)-> never -> out."""
    return {
        "nodes": [
            {"id": "note", "type": "start_text"},
            http_node(peer.url, "a"),
            {"id": "ok", "type": "condition", "config": {"expression": "a.status == `200`"}},
            http_node(peer.url, "b", once=True),
            http_node(peer.url, "c"),
            http_node(peer.url, "never"),
            {"id": "out", "type": "end", "config": {"outputs": {"note": "{{note.text}}"}}},
        ],
        "edges": [
            {"source": "note", "target": "a"},
            {"source": "a", "target": "ok"},
            {"source": "ok", "target": "b", "branch": "true"},
            {"source": "ok", "target": "never", "branch": "false"},
            {"source": "b", "target": "c"},
            {"source": "c", "target": "out"},
            {"source": "never", "target": "out"},
        ],
    }


def calls(peer: Peer) -> dict[str, int]:
    return {node_id: peer.count(f"/{node_id}") for node_id in HTTP_NODES}


async def snapshot(api: httpx.AsyncClient, run_id: str) -> tuple[dict, dict]:
    return await get_run(api, run_id), await steps_of(api, run_id)


def check_peer_matches_plan(
    plan: dict[str, Any], before: dict[str, int], after: dict[str, int]
) -> None:
    for node_id in HTTP_NODES:
        if node_id in plan["reuse"]:
            assert after[node_id] == before[node_id], (node_id, plan, before, after)
    for node_id in plan["repeated_side_effects"]:
        assert node_id in plan["rerun"] and before[node_id] >= 1, (node_id, plan)
        assert after[node_id] == before[node_id] + 1, (node_id, plan, before, after)


async def test_plan_changes_nothing_and_matches_the_retry_from_failure_point(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id = await create_published(api, branching(peer))
    peer.fail("/b", 1, 500)
    failed = await failed_run(api, workflow_id, text_inputs={"note": "x"})
    run_id = failed["id"]
    record, steps = await snapshot(api, run_id)
    assert steps["never"]["status"] == "skipped"

    plan = await retry_plan(api, run_id)
    from_start = await retry_plan(api, run_id, **{"from": "start"})
    assert await retry_plan(api, run_id) == plan  # asking twice: same answer
    assert await snapshot(api, run_id) == (record, steps)  # nothing changed
    assert calls(peer) == {"a": 1, "b": 1, "c": 0, "never": 0}

    assert plan["from"] == "failure_point" and plan["allowed"] is True
    assert "reason" not in plan or plan["reason"] is None
    assert set(plan["reuse"]) | set(plan["rerun"]) == set(steps)
    assert not set(plan["reuse"]) & set(plan["rerun"])
    # `ok` was evaluated in the task that scheduled `b`, the task the reset goes back to.
    assert set(plan["reuse"]) == {"note", "a", "ok", "never"}
    assert set(plan["rerun"]) == {"b", "c", "out"}
    assert plan["repeated_side_effects"] == ["b"]
    assert from_start["from"] == "start" and from_start["reuse"] == []
    assert from_start["rerun"] == list(steps)
    assert from_start["repeated_side_effects"] == ["a", "b"]

    before = calls(peer)
    assert (await api.post(f"{RUNS}/{run_id}/retry", json={})).status_code == 202
    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed", done
    after = calls(peer)
    check_peer_matches_plan(plan, before, after)
    # Side-effecting nodes re-run that never ran before (c) run exactly once; `never` stays
    # on the untaken branch.
    assert after == {"a": 1, "b": 2, "c": 1, "never": 0}
    new_steps = await steps_of(api, run_id)
    for node_id in plan["rerun"]:
        assert new_steps[node_id]["attempt"] == 2 or new_steps[node_id]["status"] == "skipped"
    for node_id in plan["reuse"]:
        assert new_steps[node_id] == steps[node_id], node_id


async def test_plan_from_start_matches_the_retry_from_start(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id = await create_published(api, branching(peer))
    peer.fail("/b", 1, 500)
    failed = await failed_run(api, workflow_id, text_inputs={"note": "x"})
    run_id = failed["id"]
    before_snapshot = await snapshot(api, run_id)
    plan = await retry_plan(api, run_id, **{"from": "start"})
    assert await snapshot(api, run_id) == before_snapshot

    before = calls(peer)
    retried = await api.post(f"{RUNS}/{run_id}/retry", json={"from": "start"})
    assert retried.status_code == 202, retried.text
    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed", done
    after = calls(peer)
    check_peer_matches_plan(plan, before, after)
    assert after == {"a": 2, "b": 2, "c": 1, "never": 0}
    assert done["inputs"] == failed["inputs"]


async def test_plan_of_a_run_that_cannot_be_retried(api: httpx.AsyncClient, peer: Peer) -> None:
    workflow_id = await create_published(api, branching(peer))
    run = (
        await api.post(f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"note": "x"}})
    ).json()
    done = await wait_for_attempt(api, run["id"], 1)
    assert done["status"] == "completed"
    for params in ({}, {"from": "start"}):
        plan = await retry_plan(api, run["id"], **params)
        assert plan["allowed"] is False
        assert "completed" in plan["reason"] and "restart" in plan["reason"]
        assert plan["reuse"] == plan["rerun"] == plan["repeated_side_effects"] == []
    missing = await api.get(f"{RUNS}/run_doesnotexist/retry-plan")
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["type"] == "not_found"
