"""A run whose input Temporal cannot carry is refused clearly, not as a server error."""

from __future__ import annotations

import secrets

import httpx

from tests.api.helpers import create_published


async def test_a_too_large_run_input_is_413(api: httpx.AsyncClient) -> None:
    # Random text: large payloads are compressed, so repetitive filler would fit.
    nodes = [{"id": "in", "type": "start_text"}]
    nodes += [
        {"id": f"t{i}", "type": "transform", "config": {"output": secrets.token_urlsafe(1_500)}}
        for i in range(1_600)
    ]
    nodes.append({"id": "out", "type": "end"})
    ids = [n["id"] for n in nodes]
    edges = [{"source": a, "target": b} for a, b in zip(ids, ids[1:], strict=False)]
    workflow_id = await create_published(api, {"nodes": nodes, "edges": edges})
    response = await api.post(f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"in": "x"}})
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["type"] == "payload_too_large" and error["code"] == "run_too_large"
