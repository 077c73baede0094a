"""Request limits (API.md): bodies, run inputs and runs too large are refused clearly (413),
before anything is read whole or stored."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx

from runlane.settings import Settings
from tests.api.helpers import create_published, linear_definition, review_definition, wait_for_run


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


async def _streamed(total_bytes: int, produced: list[int]) -> AsyncIterator[bytes]:
    """A highly compressible JSON body without Content-Length, counting what was sent."""
    chunk = b" " * (1024 * 1024)
    yield b'{"json_inputs": {"meta": "'
    while produced[0] < total_bytes:
        produced[0] += len(chunk)
        yield chunk
    yield b'"}}'


async def test_a_body_over_the_limit_is_413_before_it_is_read_whole(
    api: httpx.AsyncClient,
) -> None:
    workflow_id = await create_published(api, linear_definition())
    limit = Settings().request_limit_bytes
    produced = [0]
    response = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        content=_streamed(200 * 1024 * 1024, produced),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "request_too_large" and error["type"] == "payload_too_large"
    assert str(limit) in error["message"]
    # Refused as soon as the excess was seen: nowhere near the 200 MB offered.
    assert produced[0] <= limit + 2 * 1024 * 1024


async def test_a_declared_length_over_the_limit_is_refused_unread(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, linear_definition())
    produced = [0]
    limit = Settings().request_limit_bytes
    response = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        content=_streamed(limit + 10, produced),
        headers={"Content-Type": "application/json", "Content-Length": str(limit + 100)},
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "request_too_large"
    assert produced[0] <= 1024 * 1024  # at most the first chunk was pulled


async def test_inputs_over_4_mib_of_json_are_run_too_large(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, linear_definition())
    response = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={
            "json_inputs": {"meta": {"customer_id": "c", "pad": "x" * (3 * 1024 * 1024)}},
            "text_inputs": {"note": "y" * (1024 * 1024 + 10)},
        },
    )
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "run_too_large"
    assert "json_inputs and text_inputs" in error["message"]
    listed = await api.get("/v1/workflows/runs", params={"workflow_id": workflow_id})
    assert listed.json()["data"] == []  # nothing was started


async def test_a_retry_too_large_for_temporal_leaves_the_run_retryable(
    api: httpx.AsyncClient,
) -> None:
    """A retry from the start whose overrides pass the 4 MiB rule but not Temporal's payload
    limit is refused (413) before anything starts; the retry slot it took used to stay taken,
    so every later retry of the run was 409 "already being retried"."""
    workflow_id = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 1}}}
    )
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    rejected = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "reject"}
    )
    assert rejected.status_code == 202
    assert (await wait_for_run(api, run_id))["status"] == "error"

    pad = secrets.token_urlsafe(2_300_000)  # ~3 MB of JSON, incompressible past 2 MB
    too_large = await api.post(
        f"/v1/workflows/runs/{run_id}/retry",
        json={"from": "start", "json_inputs": {"meta": {"amount": 2, "pad": pad}}},
    )
    assert too_large.status_code == 413, too_large.text
    assert too_large.json()["error"]["code"] == "run_too_large"
    run = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
    assert run["status"] == "error" and run["attempt"] == 1
    retried = await api.post(f"/v1/workflows/runs/{run_id}/retry", json={})
    assert retried.status_code == 202, retried.text
    assert (await wait_for_run(api, run_id, until={"waiting_for_human"}))["attempt"] == 2
