"""A secret's value reaches the HTTP peer and nowhere else (API.md "Secrets").

Each test stores a canary (`canary-<uuid>`) as a secret, runs a workflow whose http_request
sends it, and then looks for the canary everywhere a run shows itself: Temporal's history as
the CLI prints it (payloads decoded), the run record, its steps, the run list, the SSE stream,
error messages and every log line the test process wrote (the worker runs in it). The peer,
and only the peer, must have it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.api.helpers import create_published, temporal_cli, wait_for_run
from tests.peer import Peer

TOKEN = "{{$secrets.token}}"


def canary() -> str:
    return f"canary-{uuid.uuid4()}"


def calling(url: str, *, retry: int | None = None, before: dict | None = None) -> dict[str, Any]:
    """start_json -> [before] -> http_request `call` -> end. The secret goes in a header, in the
    JSON body (which the peer echoes back) and wherever `url` puts it."""
    call: dict[str, Any] = {
        "id": "call",
        "type": "http_request",
        "label": "Charge",
        "config": {
            "method": "POST",
            "url": url,
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "body": {"customer": "{{meta.customer}}", "token": TOKEN, "note": f"sig={TOKEN}"},
        },
    }
    if retry is not None:
        call["retry"] = {"max_attempts": retry}
    nodes = [{"id": "meta", "type": "start_json"}, call]
    edges = [{"source": "call", "target": "out"}]
    if before is not None:
        nodes.append(before)
        edges += [
            {"source": "meta", "target": before["id"]},
            {"source": before["id"], "target": "call"},
        ]
    else:
        edges.append({"source": "meta", "target": "call"})
    nodes.append({"id": "out", "type": "end", "config": {"outputs": {"answer": "{{call.body}}"}}})
    return {"nodes": nodes, "edges": edges}


async def start(api: httpx.AsyncClient, definition: dict[str, Any]) -> httpx.Response:
    workflow_id = await create_published(api, definition)
    return await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"customer": "c1"}}}
    )


async def run_to_end(api: httpx.AsyncClient, definition: dict[str, Any]) -> dict[str, Any]:
    started = await start(api, definition)
    assert started.status_code == 202, started.text
    return await wait_for_run(api, started.json()["id"], timeout=60)


# ---------------------------------------------------------------- where a run shows itself


def temporal_show(client: Client, run_id: str) -> str:
    """`temporal workflow show --output json` of the run, with every payload's data decoded
    (the CLI prints it as base64)."""
    shown = temporal_cli(client, "workflow", "show", "--workflow-id", run_id)
    assert shown.returncode == 0, shown.stderr
    decoded = [data.decode(errors="replace") for data in payload_data(json.loads(shown.stdout))]
    assert decoded, "no payloads found: the CLI's output changed shape"
    return "\n".join([shown.stdout, *decoded])


def payload_data(node: Any) -> Iterator[bytes]:
    if isinstance(node, dict):
        if isinstance(node.get("metadata"), dict) and isinstance(node.get("data"), str):
            try:
                yield base64.b64decode(node["data"])
            except (binascii.Error, ValueError):
                yield node["data"].encode()
            return
        for value in node.values():
            yield from payload_data(value)
    elif isinstance(node, list):
        for value in node:
            yield from payload_data(value)


async def sse_text(api: httpx.AsyncClient, run_id: str) -> str:
    lines = []
    async with api.stream("GET", f"/v1/workflows/runs/{run_id}/events") as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            lines.append(line)
            if line == "event: end":
                break
    text = "\n".join(lines)
    assert "event: step" in text and "event: run" in text
    return text


async def everything_shown(api: httpx.AsyncClient, client: Client, run_id: str) -> dict[str, str]:
    """Every view of the run, by where it comes from."""
    base = f"/v1/workflows/runs/{run_id}"
    views = {
        "run record": (await api.get(base)).text,
        "steps": (await api.get(f"{base}/steps")).text,
        "step": (await api.get(f"{base}/steps/call")).text,
        "run list": (await api.get("/v1/workflows/runs")).text,
        "SSE events": await sse_text(api, run_id),
        # `subprocess` blocks: off the loop that serves the API.
        "Temporal history": await asyncio.to_thread(temporal_show, client, run_id),
    }
    assert run_id in views["run list"]
    return views


def assert_nowhere(secret: str, views: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    for where, text in views.items():
        assert secret not in text, f"the secret's value shows in the {where}"
    logged = caplog.text + "\n".join(str(record.__dict__) for record in caplog.records)
    assert secret not in logged, "the secret's value shows in a log line"


# ------------------------------------------------------------------------------ the tests


async def test_the_value_reaches_the_peer_and_nothing_else(
    api: httpx.AsyncClient, client: Client, peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = canary()
    assert (await api.put("/v1/secrets/token", json={"value": secret})).status_code == 200

    run = await run_to_end(api, calling(f"{peer.url}/charge?sig={TOKEN}"))

    assert run["status"] == "completed", run
    [call] = [c for c in peer.calls if c.path.startswith("/charge")]
    assert call.headers["Authorization"] == f"Bearer {secret}"
    assert call.path == f"/charge?sig={secret}"
    assert call.body == {"customer": "c1", "token": secret, "note": f"sig={secret}"}
    # The peer echoed path and body back; the step's output shows them masked.
    step = (await api.get(f"/v1/workflows/runs/{run['id']}/steps/call")).json()
    assert step["output"]["body"]["received"] == {
        "customer": "c1",
        "token": "***",
        "note": "sig=***",
    }
    assert step["output"]["body"]["path"] == "/charge?sig=***"
    assert run["final_outputs"]["answer"]["received"]["token"] == "***"

    views = await everything_shown(api, client, run["id"])
    assert_nowhere(secret, views, caplog)
    # History holds the template, which is what the run's definition and the activity's
    # input carry.
    assert TOKEN in views["Temporal history"]


async def test_an_error_message_shows_the_url_masked(
    api: httpx.AsyncClient, client: Client, peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = canary()
    assert (await api.put("/v1/secrets/token", json={"value": secret})).status_code == 200
    peer.fail(f"/fail?token={secret}", times=1, status=500)

    run = await run_to_end(api, calling(f"{peer.url}/fail?token={TOKEN}", retry=1))

    assert run["status"] == "error", run
    assert peer.calls_to(f"/fail?token={secret}"), "the peer was called with the value"
    error = run["error"]
    assert error["node_id"] == "call"
    assert error["message"] == f"POST {peer.url}/fail?token=*** answered HTTP 500"
    views = await everything_shown(api, client, run["id"])
    assert_nowhere(secret, views, caplog)


async def test_a_connection_failure_shows_the_url_masked(
    api: httpx.AsyncClient, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = canary()
    assert (await api.put("/v1/secrets/token", json={"value": secret})).status_code == 200
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    run = await run_to_end(api, calling(f"http://127.0.0.1:1/x?token={TOKEN}", retry=1))

    assert run["status"] == "error", run
    message = run["error"]["message"]
    assert message.startswith("POST http://127.0.0.1:1/x?token=*** failed: "), message
    views = await everything_shown(api, client, run["id"])
    assert_nowhere(secret, views, caplog)


async def test_an_unknown_secret_is_refused_at_start_naming_it(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    definition = calling(f"{peer.url}/charge")
    definition["nodes"][1]["config"]["headers"]["X-Other"] = "{{$secrets.other_key}}"
    assert (await api.put("/v1/secrets/token", json={"value": canary()})).status_code == 200

    started = await start(api, definition)

    assert started.status_code == 422, started.text
    error = started.json()["error"]
    assert error["code"] == "unknown_secret"
    assert "'other_key'" in error["message"]
    assert error["details"]["errors"] == [
        {
            "loc": ["definition", "nodes", "call", "config"],
            "node_id": "call",
            "secret": "other_key",
            "message": "secret 'other_key' does not exist in this organization",
        }
    ]
    assert (await api.get("/v1/workflows/runs")).json()["data"] == []
    assert peer.calls == []


async def test_another_organization_cannot_use_the_secret(
    api: httpx.AsyncClient, org_b: httpx.AsyncClient, peer: Peer
) -> None:
    secret_a, secret_b = canary(), canary()
    assert (await api.put("/v1/secrets/token", json={"value": secret_a})).status_code == 200
    definition = calling(f"{peer.url}/charge")

    refused = await start(org_b, definition)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "unknown_secret"
    assert "'token'" in refused.json()["error"]["message"]

    # With a secret of its own by the same name, org B's run sends org B's value.
    assert (await org_b.put("/v1/secrets/token", json={"value": secret_b})).status_code == 200
    run = await run_to_end(org_b, definition)
    assert run["status"] == "completed", run
    [call] = peer.calls
    assert call.headers["Authorization"] == f"Bearer {secret_b}"
    assert secret_a not in json.dumps([c.__dict__ for c in peer.calls])


async def test_a_secret_deleted_while_the_run_waits_fails_its_node(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    assert (await api.put("/v1/secrets/token", json={"value": canary()})).status_code == 200
    pause = {"id": "pause", "type": "delay", "config": {"seconds": 1}}
    started = await start(api, calling(f"{peer.url}/charge", before=pause))
    assert started.status_code == 202, started.text
    assert (await api.delete("/v1/secrets/token")).status_code == 204

    run = await wait_for_run(api, started.json()["id"], timeout=60)

    assert run["status"] == "error", run
    assert run["error"]["node_id"] == "call"
    assert run["error"]["type"] == "UnknownSecret"
    assert "'token'" in run["error"]["message"]
    assert peer.calls == []


async def test_secrets_are_refused_outside_http_request_fields(api: httpx.AsyncClient) -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "shape", "type": "transform", "config": {"output": {"t": TOKEN}}},
            {"id": "out", "type": "end", "config": {"outputs": {"t": "{{shape.t}}"}}},
        ],
        "edges": [{"source": "in", "target": "shape"}, {"source": "shape", "target": "out"}],
    }
    created = await api.post("/v1/workflows", json={"name": "leaky", "definition": definition})
    assert created.status_code == 422, created.text
    errors = created.json()["error"]["details"]["errors"]
    messages = [e["message"] for e in errors if e["node_id"] in ("shape", "out")]
    assert any("$secrets.token" in m and "not allowed" in m for m in messages), errors
