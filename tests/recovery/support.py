"""Helpers shared by the recovery tests: node builders and polling on what users see."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import TERMINAL, wait_for_run, wait_until
from tests.peer import Peer

RUNS = "/v1/workflows/runs"


def http_node(peer_url: str, node_id: str, *, body: Any = None, once: bool = False) -> dict:
    """An http_request node calling the peer at /<node_id>; `once`: no activity retries, so a
    scripted failure fails the node (and the run) at the first answer."""
    node: dict[str, Any] = {
        "id": node_id,
        "type": "http_request",
        "config": {"method": "POST", "url": f"{peer_url}/{node_id}"},
    }
    if body is not None:
        node["config"]["body"] = body
    if once:
        node["retry"] = {"max_attempts": 1}
    return node


def chain(*node_ids: str) -> list[dict[str, str]]:
    return [{"source": a, "target": b} for a, b in zip(node_ids, node_ids[1:], strict=False)]


async def start_run(api: httpx.AsyncClient, workflow_id: str, **body: Any) -> dict[str, Any]:
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json=body)
    assert started.status_code == 202, started.text
    return started.json()


async def get_run(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await api.get(f"{RUNS}/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def steps_of(api: httpx.AsyncClient, run_id: str) -> dict[str, dict[str, Any]]:
    response = await api.get(f"{RUNS}/{run_id}/steps")
    assert response.status_code == 200, response.text
    return {step["node_id"]: step for step in response.json()["data"]}


async def retry_plan(api: httpx.AsyncClient, run_id: str, **params: str) -> dict[str, Any]:
    response = await api.get(f"{RUNS}/{run_id}/retry-plan", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def wait_for_attempt(
    api: httpx.AsyncClient, run_id: str, attempt: int, timeout: float = 30.0
) -> dict[str, Any]:
    """The run once its attempt `attempt` has ended (a retried run is running again first)."""

    async def ended() -> dict[str, Any] | None:
        run = await get_run(api, run_id)
        if run["attempt"] == attempt and run["status"] in TERMINAL:
            return run
        return None

    return await wait_until(ended, timeout=timeout)


async def wait_for_step(
    api: httpx.AsyncClient, run_id: str, node_id: str, status: str, timeout: float = 15.0
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        step = (await steps_of(api, run_id))[node_id]
        return step if step["status"] == status else None

    return await wait_until(reached, timeout=timeout)


async def failed_run(api: httpx.AsyncClient, workflow_id: str, **body: Any) -> dict[str, Any]:
    run = await start_run(api, workflow_id, **body)
    ended = await wait_for_run(api, run["id"])
    assert ended["status"] == "error", ended
    return ended


def failing_chain(peer: Peer) -> dict[str, Any]:
    """note -> a -> b -> out, calling the peer; `b` has no activity retries, so a scripted
    failure of /b fails the run."""
    return {
        "nodes": [
            {"id": "note", "type": "start_text"},
            http_node(peer.url, "a"),
            http_node(peer.url, "b", once=True),
            {"id": "out", "type": "end", "config": {"outputs": {"b": "{{b.status}}"}}},
        ],
        "edges": chain("note", "a", "b", "out"),
    }
