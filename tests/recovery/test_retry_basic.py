from __future__ import annotations

import httpx

from tests.api.helpers import create_published, wait_for_run
from tests.peer import Peer


def http_chain(peer: Peer) -> dict:
    return {
        "nodes": [
            {"id": "note", "type": "start_text"},
            {
                "id": "a",
                "type": "http_request",
                "config": {"method": "POST", "url": f"{peer.url}/a"},
            },
            {
                "id": "b",
                "type": "http_request",
                "config": {
                    "method": "POST",
                    "url": f"{peer.url}/b",
                    "body": {"a": "{{a.body.path}}"},
                },
                "retry": {"max_attempts": 1},
            },
            {"id": "out", "type": "end", "config": {"outputs": {"b": "{{b.status}}"}}},
        ],
        "edges": [
            {"source": "note", "target": "a"},
            {"source": "a", "target": "b"},
            {"source": "b", "target": "out"},
        ],
    }


async def test_retry_from_failure_point_reuses_completed_steps(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id = await create_published(api, http_chain(peer))
    peer.fail("/b", 1, 503)
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"note": "x"}}
    )
    run_id = started.json()["id"]
    failed = await wait_for_run(api, run_id)
    assert failed["status"] == "error"
    assert failed["error"]["node_id"] == "b"
    plan = (await api.get(f"/v1/workflows/runs/{run_id}/retry-plan")).json()
    assert plan["allowed"] is True
    assert "a" in plan["reuse"] and "b" in plan["rerun"]
    assert plan["repeated_side_effects"] == ["b"]

    retried = await api.post(f"/v1/workflows/runs/{run_id}/retry", json={})
    assert retried.status_code == 202, retried.text
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed", done
    assert done["attempt"] == 2
    assert [a["attempt"] for a in done["attempts"]] == [1, 2]
    assert done["attempts"][1]["resumed_from_node_id"] == "b"
    assert peer.count("/a") == 1
    assert peer.count("/b") == 2
    steps = {
        s["node_id"]: s
        for s in (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    }
    assert steps["a"]["attempt"] == 1 and steps["b"]["attempt"] == 2
