"""The codec endpoint the Temporal UI and CLI call to show compressed payloads."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from api.routes.codec import MAX_DECODED_BYTES
from runlane.converter import ZLIB_ENCODING
from tests.api.helpers import create_published, linear_definition, wait_for_run

UI = "http://localhost:8233"


@pytest.fixture
async def ui(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """What the Temporal UI sends from the browser: its origin, no API key."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runlane.test",
        headers={"Origin": UI, "X-Namespace": "default"},
    ) as http:
        yield http


def body(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def payloads_of(response: httpx.Response) -> list[Payload]:
    return list(json_format.Parse(response.text, Payloads()).payloads)


async def test_the_ui_reads_a_large_runs_compressed_input(
    api: httpx.AsyncClient, client: Client, ui: httpx.AsyncClient
) -> None:
    note = "Check every line of the invoice. " * 10_000  # 330 KB: over the threshold
    workflow_id = await create_published(api, linear_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"json_inputs": {"meta": {"customer_id": "c1"}}, "text_inputs": {"note": note}},
    )
    assert started.status_code == 202, started.text
    run = await wait_for_run(api, started.json()["id"])
    assert run["status"] == "completed"
    history = await client.get_workflow_handle(run["id"]).fetch_history()
    attributes = history.events[0].workflow_execution_started_event_attributes
    [stored] = attributes.input.payloads
    assert stored.metadata["encoding"] == ZLIB_ENCODING  # unreadable in the UI as it is

    decoded = await ui.post("/codec/decode", content=body(stored))

    assert decoded.status_code == 200, decoded.text
    assert decoded.headers["access-control-allow-origin"] == UI
    [payload] = payloads_of(decoded)
    assert payload.metadata["encoding"] == b"json/plain"
    run_input = json.loads(payload.data)
    assert run_input["run_id"] == run["id"]
    assert run_input["inputs"]["text_data"]["note"] == note


async def test_small_payloads_pass_and_large_ones_round_trip(ui: httpx.AsyncClient) -> None:
    small = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a": 1}')
    large = Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"x" * 300_000 + b'"')

    encoded = await ui.post("/codec/encode", content=body(small, large))
    assert encoded.status_code == 200, encoded.text
    encoded_small, encoded_large = payloads_of(encoded)
    assert encoded_small == small
    assert encoded_large.metadata["encoding"] == ZLIB_ENCODING

    decoded = await ui.post("/codec/decode", content=body(encoded_small, encoded_large))
    assert payloads_of(decoded) == [small, large]


async def test_the_browser_preflight_is_answered_for_the_ui_origin_only(
    ui: httpx.AsyncClient,
) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    for host in ("localhost", "127.0.0.1"):  # whichever host the operator typed
        allowed = await ui.options(
            "/codec/decode", headers={**preflight, "Origin": f"http://{host}:8233"}
        )
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == f"http://{host}:8233"
        assert "x-namespace" in allowed.headers["access-control-allow-headers"]

    other = await ui.options("/codec/decode", headers={**preflight, "Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        ("not json", 400, "malformed_request"),
        ('{"payloads": [{"data": 5}]}', 400, "malformed_request"),
        ('{"payloads": "x"}', 400, "malformed_request"),
        (
            body(Payload(metadata={"encoding": ZLIB_ENCODING}, data=b"not zlib at all")),
            422,
            "invalid_payload",
        ),
        (
            # Inflates to more than the limit from a few kilobytes: refused, not inflated.
            body(
                Payload(
                    metadata={"encoding": ZLIB_ENCODING},
                    data=zlib.compress(b"\0" * (MAX_DECODED_BYTES + 1)),
                )
            ),
            413,
            "payload_too_large",
        ),
        (
            # A whole zlib stream whose content is not a Payload message.
            json.dumps(
                {
                    "payloads": [
                        {
                            "metadata": {"encoding": base64.b64encode(ZLIB_ENCODING).decode()},
                            "data": base64.b64encode(zlib.compress(b"\xff" * 16)).decode(),
                        }
                    ]
                }
            ),
            422,
            "invalid_payload",
        ),
    ],
)
async def test_bad_bodies_get_the_error_body_with_cors(
    ui: httpx.AsyncClient, content: str, status: int, code: str
) -> None:
    response = await ui.post("/codec/decode", content=content)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    # The UI can read the message instead of reporting a CORS failure.
    assert response.headers["access-control-allow-origin"] == UI
