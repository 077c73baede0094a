"""With RUNLANE_PAYLOAD_KEY set: nothing a run carries is readable in Temporal's history (the
CLI shows ciphertext), and the codec endpoint decodes only for the run's own organization."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from runlane.payload_crypto import ENCRYPTED_ENCODING
from tests.api.helpers import create_published, temporal_cli, wait_for_run
from tests.conftest import ORG_A_KEY, ORG_B_KEY
from tests.peer import Peer

UI = "http://localhost:8233"


def as_org(app: FastAPI, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runlane.test",
        headers={"Origin": UI, **headers},
    )


@pytest.fixture
async def org_b(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with as_org(app, Authorization=f"Bearer {ORG_B_KEY}") as http:
        yield http


@pytest.fixture
async def org_a_codec(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with as_org(app, Authorization=f"Bearer {ORG_A_KEY}") as http:
        yield http


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with as_org(app) as http:
        yield http


def body(payloads: list[Payload]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def payloads_of(response: httpx.Response) -> list[Payload]:
    return list(json_format.Parse(response.text, Payloads()).payloads)


async def run_with_secret_header(api: httpx.AsyncClient, peer: Peer, canary: str) -> str:
    definition = {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {
                "id": "call",
                "type": "http_request",
                "config": {
                    "method": "POST",
                    "url": f"{peer.url}/charge",
                    "headers": {"Authorization": f"Bearer {canary}"},
                    "body": {"customer": "{{meta.customer}}"},
                },
            },
            {"id": "out", "type": "end", "config": {"outputs": {"status": "{{call.status}}"}}},
        ],
        "edges": [{"source": "meta", "target": "call"}, {"source": "call", "target": "out"}],
    }
    workflow_id = await create_published(api, definition)
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"customer": "c1"}}}
    )
    assert started.status_code == 202, started.text
    run = await wait_for_run(api, started.json()["id"], timeout=90)
    assert run["status"] == "completed", run
    [call] = peer.calls_to("/charge")
    assert call.headers["Authorization"] == f"Bearer {canary}"
    return str(run["id"])


def shown_text(stdout: str) -> str:
    """The CLI's JSON and, since it prints payload data as base64, every payload's data."""
    data = b"\n".join(p.data for _, p in stored_payloads(json.loads(stdout)))
    return stdout + "\n" + data.decode(errors="replace")


def stored_payloads(node: Any, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every payload in `temporal workflow show --output json`, with where it sits."""
    if isinstance(node, dict):
        if set(node) >= {"metadata", "data"} and isinstance(node["metadata"], dict):
            yield path, json_format.ParseDict(node, Payload())
            return
        for key, value in node.items():
            yield from stored_payloads(value, f"{path}/{key}")
    elif isinstance(node, list):
        for value in node:
            yield from stored_payloads(value, path)


# What stays plain, by design: search attributes (Temporal indexes them; Runlane puts no
# secret there) and the bookkeeping Temporal's core SDK writes into a local activity's marker
# (sequence number, activity id and type, time), which no codec sees. The result is encrypted.
PLAIN_BY_DESIGN = ("/searchAttributes/", "/markerRecordedEventAttributes/details/data")


async def test_a_header_secret_is_absent_from_the_history_the_cli_shows(
    api: httpx.AsyncClient, client: Client, peer: Peer, org_a_codec: httpx.AsyncClient
) -> None:
    canary = f"canary-{uuid.uuid4()}"
    run_id = await run_with_secret_header(api, peer, canary)

    shown = temporal_cli(client, "workflow", "show", "--workflow-id", run_id)

    assert shown.returncode == 0, shown.stderr
    assert canary not in shown_text(shown.stdout)
    history = json.loads(shown.stdout)
    payloads = list(stored_payloads(history))
    plain = [
        (path, p.metadata.get("encoding"))
        for path, p in payloads
        if p.metadata.get("encoding") != ENCRYPTED_ENCODING
        and not any(part in path for part in PLAIN_BY_DESIGN)
    ]
    assert plain == []
    encrypted = [p for _, p in payloads if p.metadata.get("encoding") == ENCRYPTED_ENCODING]
    # Start input, the activity's input and result, two local activities' results, the result.
    assert len(encrypted) >= 6
    # The run's organization decodes them through the codec endpoint and finds the header.
    decoded = await org_a_codec.post("/codec/decode", content=body(encrypted))
    assert decoded.status_code == 200, decoded.text
    assert canary in b"".join(p.data for p in payloads_of(decoded)).decode()


async def test_the_codec_endpoint_refuses_anonymous_and_other_organizations(
    app: FastAPI,
    api: httpx.AsyncClient,
    client: Client,
    peer: Peer,
    anonymous: httpx.AsyncClient,
    org_b: httpx.AsyncClient,
    org_a_codec: httpx.AsyncClient,
) -> None:
    canary = f"canary-{uuid.uuid4()}"
    run_id = await run_with_secret_header(api, peer, canary)
    history = await client.get_workflow_handle(run_id).fetch_history()
    [run_input] = history.events[0].workflow_execution_started_event_attributes.input.payloads
    content = body([run_input])

    missing = await anonymous.post("/codec/decode", content=content)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"
    assert missing.headers["access-control-allow-origin"] == UI  # the UI shows the message
    async with as_org(app, Authorization="Bearer not-a-key") as wrong:
        assert (await wrong.post("/codec/decode", content=content)).status_code == 401

    other = await org_b.post("/codec/decode", content=content)
    assert other.status_code == 403, other.text
    assert canary not in other.text and run_id not in other.text
    # The same answer for a run that does not exist: nothing tells the two apart.
    relabelled = Payload()
    relabelled.CopyFrom(run_input)
    relabelled.metadata["runlane-workflow-id"] = b"run_" + uuid.uuid4().hex.encode()
    ghost = await org_b.post("/codec/decode", content=body([relabelled]))
    assert (ghost.status_code, ghost.json()["error"]) == (403, other.json()["error"])
    # The run's own organization reads it.
    owned = await org_a_codec.post("/codec/decode", content=content)
    assert owned.status_code == 200 and canary in payloads_of(owned)[0].data.decode()


async def test_encode_binds_to_the_callers_organization(
    org_a_codec: httpx.AsyncClient, org_b: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    """What an operator types in the UI (a signal's input, say) names no run: it is bound to
    the organization whose key encoded it."""
    typed = Payload(metadata={"encoding": b"json/plain"}, data=b'{"decision": "approve"}')

    assert (await anonymous.post("/codec/encode", content=body([typed]))).status_code == 401
    encoded = await org_a_codec.post("/codec/encode", content=body([typed]))
    assert encoded.status_code == 200, encoded.text
    [sealed] = payloads_of(encoded)
    assert sealed.metadata["encoding"] == ENCRYPTED_ENCODING
    assert b"approve" not in sealed.data

    assert payloads_of(await org_a_codec.post("/codec/decode", content=body([sealed]))) == [typed]
    assert (await org_b.post("/codec/decode", content=body([sealed]))).status_code == 403


async def test_payloads_bound_to_nothing_are_decoded_for_nobody(
    client: Client, org_a_codec: httpx.AsyncClient
) -> None:
    # The client's converter outside any workflow context: no Runlane path writes these.
    [unbound] = await client.data_converter.encode(["written with no workflow context"])
    assert unbound.metadata["encoding"] == ENCRYPTED_ENCODING
    refused = await org_a_codec.post("/codec/decode", content=body([unbound]))
    assert refused.status_code == 403


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The app on 127.0.0.1, for the Temporal CLI to call (lifespan off: the fixtures supply
    its client and database)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as probe:
        while True:
            try:
                if (await probe.get(f"{base}/healthz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not come up"
            await asyncio.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        await task


async def test_the_cli_reads_the_history_with_codec_auth(
    api: httpx.AsyncClient, client: Client, peer: Peer, served: str
) -> None:
    canary = f"canary-{uuid.uuid4()}"
    run_id = await run_with_secret_header(api, peer, canary)
    codec = ("--codec-endpoint", f"{served}/codec")

    def show(*extra: str) -> subprocess.CompletedProcess[str]:
        return temporal_cli(client, "workflow", "show", "--workflow-id", run_id, *codec, *extra)

    # `subprocess` blocks: run it off the loop that serves the API it calls.
    read = await asyncio.to_thread(show, "--codec-auth", f"Bearer {ORG_A_KEY}")
    assert read.returncode == 0, read.stderr
    assert canary in shown_text(read.stdout)

    for refused in (
        await asyncio.to_thread(show),
        await asyncio.to_thread(show, "--codec-auth", f"Bearer {ORG_B_KEY}"),
    ):
        assert refused.returncode != 0
        assert canary not in refused.stdout + refused.stderr
