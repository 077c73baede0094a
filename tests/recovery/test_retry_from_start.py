"""Retry from the start: the same run id re-executes the whole graph, with optional overriding
inputs."""

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

HTTP_NODES = ("a", "b")


def definition(peer: Peer) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": "meta",
                "type": "start_json",
                "config": {"schema": {"type": "object", "required": ["customer_id"]}},
            },
            {"id": "note", "type": "start_text"},
            http_node(peer.url, "a", body={"customer": "{{meta.customer_id}}"}),
            http_node(peer.url, "b", body={"note": "{{note.text}}"}, once=True),
            {
                "id": "out",
                "type": "end",
                "config": {
                    "outputs": {
                        "customer": "{{a.body.received.customer}}",
                        "note": "{{b.body.received.note}}",
                    }
                },
            },
        ],
        "edges": [
            {"source": "meta", "target": "a"},
            {"source": "note", "target": "b"},
            {"source": "a", "target": "b"},
            {"source": "b", "target": "out"},
        ],
    }


async def failed(api: httpx.AsyncClient, peer: Peer) -> dict[str, Any]:
    workflow_id = await create_published(api, definition(peer))
    peer.fail("/b", 1, 500)
    run = await failed_run(
        api,
        workflow_id,
        json_inputs={"meta": {"customer_id": "cust_1"}},
        text_inputs={"note": "first"},
    )
    assert {n: peer.count(f"/{n}") for n in HTTP_NODES} == {"a": 1, "b": 1}
    return run


async def test_retry_from_start_with_overrides_reexecutes_everything(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    run = await failed(api, peer)
    run_id = run["id"]
    plan = await retry_plan(api, run_id, **{"from": "start"})
    assert plan["from"] == "start" and plan["allowed"] is True
    assert plan["reuse"] == []
    assert set(plan["rerun"]) == {"meta", "note", "a", "b", "out"}
    assert plan["repeated_side_effects"] == ["a", "b"]

    answer = await api.post(
        f"{RUNS}/{run_id}/retry",
        json={"from": "start", "json_inputs": {"meta": {"customer_id": "cust_2"}}},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["id"] == run_id

    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed", done
    assert done["id"] == run_id
    # Every http node ran exactly once more, with the new input.
    assert {n: peer.count(f"/{n}") for n in HTTP_NODES} == {"a": 2, "b": 2}
    assert peer.calls_to("/a")[-1].body == {"customer": "cust_2"}
    assert done["inputs"]["json_data"] == {"meta": {"customer_id": "cust_2"}}
    assert done["inputs"]["text_data"] == {"note": "first"}  # not overridden: kept
    assert done["final_outputs"] == {"customer": "cust_2", "note": "first"}
    assert done["error"] is None
    assert [(a["attempt"], a["status"], a["resumed_from_node_id"]) for a in done["attempts"]] == [
        (1, "error", None),
        (2, "completed", None),
    ]
    assert done["attempts"][0]["temporal_run_id"] == run["temporal"]["run_id"]
    assert done["temporal"]["run_id"] == done["attempts"][1]["temporal_run_id"]
    assert done["temporal"]["run_id"] != run["temporal"]["run_id"]
    steps = await steps_of(api, run_id)
    assert all(s["status"] == "completed" and s["attempt"] == 2 for s in steps.values()), steps
    assert steps["meta"]["output"] == {"customer_id": "cust_2"}


async def test_retry_from_start_rejects_bad_overrides_and_leaves_the_run_alone(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    run = await failed(api, peer)
    run_id = run["id"]
    before_steps = await steps_of(api, run_id)

    schema_violation = await api.post(
        f"{RUNS}/{run_id}/retry", json={"from": "start", "json_inputs": {"meta": {"x": 1}}}
    )
    assert schema_violation.status_code == 422, schema_violation.text
    error = schema_violation.json()["error"]
    assert error["type"] == "invalid_request"
    assert [e["node_id"] for e in error["details"]["errors"]] == ["meta"]

    unknown = await api.post(
        f"{RUNS}/{run_id}/retry", json={"from": "start", "text_inputs": {"nope": "x"}}
    )
    assert unknown.status_code == 422, unknown.text
    assert "nope" in {e["node_id"] for e in unknown.json()["error"]["details"]["errors"]}

    mistyped = await api.post(
        f"{RUNS}/{run_id}/retry", json={"from": "start", "json_inputs": {"note": {"a": 1}}}
    )
    assert mistyped.status_code == 422, mistyped.text
    assert "note" in {e["node_id"] for e in mistyped.json()["error"]["details"]["errors"]}

    without_start = await api.post(
        f"{RUNS}/{run_id}/retry", json={"json_inputs": {"meta": {"customer_id": "cust_2"}}}
    )
    assert without_start.status_code == 422, without_start.text
    assert without_start.json()["error"]["type"] == "invalid_request"
    assert "start" in str(without_start.json()["error"])

    # Nothing happened to the run.
    after = await get_run(api, run_id)
    assert after == run
    assert after["status"] == "error" and after["attempt"] == 1
    assert await steps_of(api, run_id) == before_steps
    assert {n: peer.count(f"/{n}") for n in HTTP_NODES} == {"a": 1, "b": 1}
