"""Retry from a chosen node, and plan tokens, against the real dev server and a loopback peer:
the node and everything downstream of it run again; everything else keeps its recorded outcome
and is not executed again, parallel branches included (the peer counts the calls)."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.client import Client

from tests.api.helpers import assert_replays, create_published, wait_for_run
from tests.peer import Peer
from tests.recovery.support import (
    RUNS,
    get_run,
    http_node,
    retry_plan,
    start_run,
    steps_of,
    wait_for_attempt,
)


def fan_out(peer: Peer) -> dict[str, Any]:
    """in -> shape -> (a | b -> after_b) -> out: two parallel branches of HTTP calls."""
    return {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {"id": "shape", "type": "transform", "config": {"output": {"v": "{{in.v}}"}}},
            http_node(peer.url, "a", body={"v": "{{shape.v}}"}),
            http_node(peer.url, "b", body={"v": "{{shape.v}}"}),
            {
                "id": "after_b",
                "type": "transform",
                "config": {"output": {"b": "{{b.status}}", "v": "{{in.v}}"}},
            },
            {
                "id": "out",
                "type": "end",
                "config": {"outputs": {"a": "{{a.status}}", "after_b": "{{after_b}}"}},
            },
        ],
        "edges": [
            {"source": "in", "target": "shape"},
            {"source": "shape", "target": "a"},
            {"source": "shape", "target": "b"},
            {"source": "b", "target": "after_b"},
            {"source": "a", "target": "out"},
            {"source": "after_b", "target": "out"},
        ],
    }


async def test_retry_from_a_node_of_a_completed_run_reruns_only_what_is_downstream(
    api: httpx.AsyncClient, peer: Peer, client: Client
) -> None:
    workflow_id = await create_published(api, fan_out(peer))
    run = await start_run(api, workflow_id, json_inputs={"in": {"v": 1}})
    done = await wait_for_run(api, run["id"])
    assert done["status"] == "completed", done
    before = await steps_of(api, run["id"])

    plan = await retry_plan(api, run["id"], **{"from": "node", "node_id": "b"})
    assert plan["allowed"] is True, plan
    assert (plan["from"], plan["node_id"]) == ("node", "b")
    assert set(plan["rerun"]) == {"b", "after_b", "out"}
    assert set(plan["reuse"]) == {"in", "shape", "a"}
    assert plan["repeated_side_effects"] == ["b"]
    assert plan["plan_id"].startswith("plan_")

    retried = await api.post(f"{RUNS}/{run['id']}/retry", json={"plan_id": plan["plan_id"]})
    assert retried.status_code == 202, retried.text
    again = await wait_for_attempt(api, run["id"], 2)
    assert again["status"] == "completed", again
    assert again["id"] == run["id"]
    assert again["attempts"][-1]["resumed_from_node_id"] == "b"

    # The parallel branch `a` is not downstream of `b`: not called again, its step as it was.
    assert peer.count("/a") == 1
    assert peer.count("/b") == 2
    after = await steps_of(api, run["id"])
    for kept in ("in", "shape", "a"):
        assert after[kept]["attempt"] == 1
        assert after[kept]["output"] == before[kept]["output"]
        assert after[kept]["started_at"] == before[kept]["started_at"]
    for rerun in ("b", "after_b", "out"):
        assert after[rerun]["attempt"] == 2, after[rerun]
        assert after[rerun]["status"] == "completed"
    assert again["final_outputs"] == done["final_outputs"]

    # The plan was made for attempt 1: the run changed since.
    stale = await api.post(f"{RUNS}/{run['id']}/retry", json={"plan_id": plan["plan_id"]})
    assert stale.status_code == 409, stale.text
    assert stale.json()["error"]["code"] == "plan_stale"
    await assert_replays(client, run["id"])


async def test_retry_from_a_node_with_overrides_reruns_the_named_start_node(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id = await create_published(api, fan_out(peer))
    run = await start_run(api, workflow_id, json_inputs={"in": {"v": 1}})
    assert (await wait_for_run(api, run["id"]))["status"] == "completed"

    plan = await retry_plan(api, run["id"], **{"from": "node", "node_id": "after_b"})
    assert set(plan["rerun"]) == {"after_b", "out"}
    assert plan["repeated_side_effects"] == []

    retried = await api.post(
        f"{RUNS}/{run['id']}/retry",
        json={"from": "node", "node_id": "after_b", "json_inputs": {"in": {"v": 2}}},
    )
    assert retried.status_code == 202, retried.text
    again = await wait_for_attempt(api, run["id"], 2)
    assert again["status"] == "completed", again
    assert again["inputs"]["json_data"] == {"in": {"v": 2}}
    # after_b reads the new input; shape is not downstream of after_b and keeps its output;
    # no HTTP node is downstream of after_b, so nothing is called again.
    steps = await steps_of(api, run["id"])
    assert steps["after_b"]["output"]["v"] == 2
    assert steps["in"]["output"] == {"v": 2} and steps["in"]["attempt"] == 2
    assert steps["shape"]["output"] == {"v": 1} and steps["shape"]["attempt"] == 1
    assert (peer.count("/a"), peer.count("/b")) == (1, 1)


async def test_retry_from_a_node_upstream_of_the_failure(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_json"},
            http_node(peer.url, "first"),
            http_node(peer.url, "second", once=True),
            {"id": "out", "type": "end", "config": {"outputs": {"s": "{{second.status}}"}}},
        ],
        "edges": [
            {"source": "in", "target": "first"},
            {"source": "first", "target": "second"},
            {"source": "second", "target": "out"},
        ],
    }
    workflow_id = await create_published(api, definition)
    peer.fail("/second", 1, 503)
    run = await start_run(api, workflow_id, json_inputs={"in": {}})
    failed = await wait_for_run(api, run["id"])
    assert failed["status"] == "error" and failed["error"]["node_id"] == "second"

    retried = await api.post(f"{RUNS}/{run['id']}/retry", json={"from": "node", "node_id": "first"})
    assert retried.status_code == 202, retried.text
    again = await wait_for_attempt(api, run["id"], 2)
    assert again["status"] == "completed", again
    assert (peer.count("/first"), peer.count("/second")) == (2, 2)


async def test_retry_from_a_node_refuses_what_it_cannot_do(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id = await create_published(api, fan_out(peer))
    run = await start_run(api, workflow_id, json_inputs={"in": {"v": 1}})
    assert (await wait_for_run(api, run["id"]))["status"] == "completed"
    path = f"{RUNS}/{run['id']}"

    refused = {
        "unknown node": await api.post(f"{path}/retry", json={"from": "node", "node_id": "nope"}),
        "node without node_id": await api.post(f"{path}/retry", json={"from": "node"}),
        "node_id with start": await api.post(
            f"{path}/retry", json={"from": "start", "node_id": "b"}
        ),
        "documents from a node": await api.post(
            f"{path}/retry",
            json={"from": "node", "node_id": "b", "documents": {"in": {"file_id": "file_x"}}},
        ),
        "not a plan token": await api.post(f"{path}/retry", json={"plan_id": "plan_%%%.x"}),
        "plan query without node_id": await api.get(f"{path}/retry-plan?from=node"),
        "plan query for an unknown node": await api.get(
            f"{path}/retry-plan?from=node&node_id=nope"
        ),
    }
    for what, response in refused.items():
        assert response.status_code == 422, (what, response.text)
        assert response.json()["error"]["type"] == "invalid_request", what

    # A plan token for another retry than the body asks for.
    plan = await retry_plan(api, run["id"], **{"from": "node", "node_id": "b"})
    mismatch = await api.post(
        f"{path}/retry", json={"plan_id": plan["plan_id"], "from": "node", "node_id": "a"}
    )
    assert mismatch.status_code == 422, mismatch.text
    assert mismatch.json()["error"]["code"] == "plan_mismatch"

    # The failure point of a completed run: planned as not allowed, refused with a 409.
    failure_point = await retry_plan(api, run["id"])
    assert failure_point["allowed"] is False
    refused_retry = await api.post(f"{path}/retry", json={"plan_id": failure_point["plan_id"]})
    assert refused_retry.status_code == 409, refused_retry.text
    # Nothing was retried: still attempt 1, nothing called again.
    assert (await get_run(api, run["id"]))["attempt"] == 1
    assert (peer.count("/a"), peer.count("/b")) == (1, 1)
