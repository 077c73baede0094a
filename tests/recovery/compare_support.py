"""The workflow the compare and dry-run tests change between versions, and a client of the
other organization."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import create_published, wait_for_run
from tests.peer import Peer
from tests.recovery.support import http_node, start_run


def routed(
    peer: Peer,
    *,
    threshold: int = 10,
    tag: str = "v1",
    notify_tag: str = "v1",
    extra: bool = False,
    second_call: bool = False,
) -> dict[str, Any]:
    """in -> shape -> big (shape.amount > threshold) -> hi (true) | lo (false) -> out, and
    in -> call -> out, in -> notify -> out (two http_request nodes). `extra` adds a pure node,
    `second_call` an http_request node `call2` and a transform `after2` that reads it."""
    nodes: list[dict[str, Any]] = [
        {"id": "in", "type": "start_json"},
        {
            "id": "shape",
            "type": "transform",
            "config": {"output": {"amount": "{{in.amount}}", "tag": tag}},
        },
        {
            "id": "big",
            "type": "condition",
            "config": {"expression": f"shape.amount > `{threshold}`"},
        },
        {"id": "hi", "type": "transform", "config": {"output": {"route": "high"}}},
        {"id": "lo", "type": "transform", "config": {"output": {"route": "low"}}},
        http_node(peer.url, "call", body={"amount": "{{in.amount}}"}),
        http_node(peer.url, "notify", body={"tag": notify_tag}),
        {
            "id": "out",
            "type": "end",
            "config": {"outputs": {"tag": "{{shape.tag}}", "route": "{{hi.route}}{{lo.route}}"}},
        },
    ]
    edges = [
        {"source": "in", "target": "shape"},
        {"source": "shape", "target": "big"},
        {"source": "big", "target": "hi", "branch": "true"},
        {"source": "big", "target": "lo", "branch": "false"},
        {"source": "hi", "target": "out"},
        {"source": "lo", "target": "out"},
        {"source": "in", "target": "call"},
        {"source": "call", "target": "out"},
        {"source": "in", "target": "notify"},
        {"source": "notify", "target": "out"},
    ]
    if extra:
        nodes.append({"id": "extra", "type": "transform", "config": {"output": "{{in.amount}}"}})
        edges += [{"source": "in", "target": "extra"}, {"source": "extra", "target": "out"}]
    if second_call:
        nodes.append(http_node(peer.url, "call2"))
        nodes.append({"id": "after2", "type": "transform", "config": {"output": "{{call2.body}}"}})
        edges += [
            {"source": "in", "target": "call2"},
            {"source": "call2", "target": "after2"},
            {"source": "after2", "target": "out"},
        ]
    return {"nodes": nodes, "edges": edges}


async def completed_run(
    api: httpx.AsyncClient, peer: Peer, amount: int = 50
) -> tuple[str, dict[str, Any]]:
    """The workflow published as `routed(peer)` and one completed run of it (big: true)."""
    workflow_id = await create_published(api, routed(peer), name="Routed")
    run = await start_run(api, workflow_id, json_inputs={"in": {"amount": amount}})
    ended = await wait_for_run(api, run["id"])
    assert ended["status"] == "completed", ended
    assert ended["final_outputs"] == {"tag": "v1", "route": "high"}
    return workflow_id, ended


async def replace_draft(api: httpx.AsyncClient, workflow_id: str, definition: dict) -> None:
    replaced = await api.put(f"/v1/workflows/{workflow_id}/draft", json={"definition": definition})
    assert replaced.status_code == 200, replaced.text


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """API.md's error body with this status (and code)."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "code", "message", "details"}, error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)
