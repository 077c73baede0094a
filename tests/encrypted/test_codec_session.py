"""The Temporal UI's credential for the codec endpoint: an operator signs in at /codec/session
with an API key, and the browser's session cookie then decodes their organization's runs."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from api.deps import get_api_settings
from runlane.payload_crypto import (
    ENCRYPTED_ENCODING,
    CodecSessions,
    generate_key,
    parse_payload_keys,
)
from runlane.settings import Settings
from tests.api.helpers import create_published, linear_definition, wait_for_run
from tests.conftest import ORG_A_KEY, ORG_B_KEY
from tests.encryption import PAYLOAD_KEY

UI = "http://localhost:8233"
API = "http://runlane.test"
COOKIE = "runlane_codec_session"


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """One browser: a cookie jar shared by the sign-in page (same origin) and the UI's calls."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=API) as http:
        yield http


def body(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def payloads_of(response: httpx.Response) -> list[Payload]:
    return list(json_format.Parse(response.text, Payloads()).payloads)


async def decode_from_ui(browser: httpx.AsyncClient, *payloads: Payload) -> httpx.Response:
    """What the UI's fetch with `credentials: 'include'` sends: its origin, and the cookies."""
    return await browser.post(
        "/codec/decode",
        content=body(*payloads),
        headers={"Origin": UI, "X-Namespace": "default", "Content-Type": "application/json"},
        params={"preserveStorageRefs": "true"},
    )


async def run_input(api: httpx.AsyncClient, client: Client, customer: str) -> tuple[str, Payload]:
    """A real run of the API client's organization, and its input as Temporal stores it."""
    workflow_id = await create_published(api, linear_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"json_inputs": {"meta": {"customer_id": customer}}, "text_inputs": {"note": "n"}},
    )
    assert started.status_code == 202, started.text
    run = await wait_for_run(api, started.json()["id"], timeout=90)
    assert run["status"] == "completed", run
    history = await client.get_workflow_handle(run["id"]).fetch_history()
    [stored] = history.events[0].workflow_execution_started_event_attributes.input.payloads
    assert stored.metadata["encoding"] == ENCRYPTED_ENCODING
    assert customer.encode() not in stored.data
    return str(run["id"]), stored


def assert_credentialed_cors(response: httpx.Response) -> None:
    assert response.headers["access-control-allow-origin"] == UI  # exact, never "*"
    assert response.headers["access-control-allow-credentials"] == "true"


async def test_the_ui_decodes_its_organizations_runs_with_a_session_cookie(
    app: FastAPI, api: httpx.AsyncClient, client: Client, browser: httpx.AsyncClient
) -> None:
    run_a, input_a = await run_input(api, client, "customer-of-a")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=API, headers={"Api-Key": ORG_B_KEY}
    ) as api_b:
        _, input_b = await run_input(api_b, client, "customer-of-b")

    # Before signing in, the UI gets the error, readable by it (CORS), and nothing decoded.
    anonymous = await decode_from_ui(browser, input_a)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "missing_api_key"
    assert "/codec/session" in anonymous.json()["error"]["message"]
    assert_credentialed_cors(anonymous)

    page = await browser.get("/codec/session")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'name="api_key"' in page.text and 'method="post"' in page.text

    signed_in = await browser.post(
        "/codec/session", data={"api_key": ORG_A_KEY}, headers={"Origin": API}
    )
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.headers["content-type"].startswith("text/html")
    for told in ("org_a_", "Include cross-origin credentials", f"{API}/codec", UI):
        assert told in signed_in.text
    set_cookie = signed_in.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
    assert {"httponly", "max-age"} <= attributes
    assert "samesite=strict" in set_cookie.lower()
    assert "path=/codec" in set_cookie.lower()
    assert "max-age=43200" in set_cookie.lower()  # 12 hours
    assert ORG_A_KEY not in set_cookie

    decoded = await decode_from_ui(browser, input_a)
    assert decoded.status_code == 200, decoded.text
    assert_credentialed_cors(decoded)
    [plain] = payloads_of(decoded)
    assert json.loads(plain.data)["run_id"] == run_a
    assert b"customer-of-a" in plain.data

    other = await decode_from_ui(browser, input_b)
    assert other.status_code == 403, other.text
    assert b"customer-of-b" not in other.content
    assert_credentialed_cors(other)
    # A header credential is the one used when sent: org B's key does not read org A's run.
    header_wins = await browser.post(
        "/codec/decode",
        content=body(input_a),
        headers={"Origin": UI, "Authorization": f"Bearer {ORG_B_KEY}"},
    )
    assert header_wins.status_code == 403

    signed_out = await browser.delete("/codec/session")
    assert signed_out.status_code == 204
    assert COOKIE not in browser.cookies
    assert (await decode_from_ui(browser, input_a)).status_code == 401


async def test_forged_expired_and_revoked_sessions_are_refused(
    app: FastAPI, settings: Settings, browser: httpx.AsyncClient
) -> None:
    typed = Payload(metadata={"encoding": b"json/plain"}, data=b'{"decision": "approve"}')
    encoded = await browser.post(
        "/codec/encode", content=body(typed), headers={"Authorization": f"Bearer {ORG_A_KEY}"}
    )
    [sealed] = payloads_of(encoded)  # bound to org A
    org_a = settings.key_to_organization()[ORG_A_KEY]

    signed_in = await browser.post("/codec/session", json={"api_key": ORG_A_KEY})
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["organization"] == org_a
    token = browser.cookies[COOKIE]
    browser.cookies.clear()

    async def decode_with(cookie: str) -> httpx.Response:
        return await browser.post(
            "/codec/decode",
            content=body(sealed),
            headers={"Origin": UI, "Cookie": f"{COOKIE}={cookie}"},
        )

    assert payloads_of(await decode_with(token)) == [typed]
    # Another API process with the same RUNLANE_PAYLOAD_KEY issues sessions this one accepts.
    replica = CodecSessions(parse_payload_keys.__wrapped__(PAYLOAD_KEY))
    from_replica = replica.issue(org_a, ORG_A_KEY, int(time.time()) + 60)
    assert payloads_of(await decode_with(from_replica)) == [typed]

    claims_b64, _, mac = token.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(claims_b64 + "=" * (-len(claims_b64) % 4)))
    relabelled = (
        base64.urlsafe_b64encode(json.dumps({**claims, "exp": claims["exp"] + 10**6}).encode())
        .decode()
        .rstrip("=")
    )
    other_keys = CodecSessions(parse_payload_keys(f"k2:{generate_key()}"))
    forged = {
        "claims changed": f"{relabelled}.{mac}",
        "another payload key": other_keys.issue(org_a, ORG_A_KEY, int(time.time()) + 60),
        "expired": replica.issue(org_a, ORG_A_KEY, int(time.time()) - 1),
        "a removed API key": replica.issue(
            org_a, "key_no_longer_configured", int(time.time()) + 60
        ),
        "garbage": "not-a-session",
        "oversized": "a." + "b" * 5000,
        "bad base64": "%%%.%%%",
        "claims not an object": base64.urlsafe_b64encode(b"[1]").decode() + ".AA",
    }
    for what, cookie in forged.items():
        refused = await decode_with(cookie)
        assert refused.status_code == 401, (what, refused.text)
        assert refused.json()["error"]["code"] == "invalid_codec_session", what
        assert_credentialed_cors(refused)


async def test_sign_in_refuses_a_bad_key_and_other_origins(browser: httpx.AsyncClient) -> None:
    bad = await browser.post("/codec/session", data={"api_key": "not-a-key"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_api_key"
    assert "set-cookie" not in bad.headers

    # A lone surrogate survives JSON decoding but no UTF-8 encoding: still just a wrong key.
    surrogate = await browser.post(
        "/codec/session",
        content='{"api_key": "\\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    assert (surrogate.status_code, surrogate.json()["error"]["code"]) == (401, "invalid_api_key")

    empty = await browser.post("/codec/session", data={"api_key": ""})
    assert (empty.status_code, empty.json()["error"]["code"]) == (401, "missing_api_key")

    elsewhere = await browser.post(
        "/codec/session", data={"api_key": ORG_A_KEY}, headers={"Origin": "http://evil.test"}
    )
    assert elsewhere.status_code == 403
    assert "set-cookie" not in elsewhere.headers

    for content, content_type, status in (
        ("{not json", "application/json", 400),
        ("[" * 15_000, "application/json", 400),  # deeper than Python's recursion limit
        (b"\xff\xfe{", "application/json", 400),  # not UTF-8
        ("[1]", "application/json", 400),
        ("api_key", "text/plain", 415),
        ("x" * 20_000, "application/x-www-form-urlencoded", 413),
    ):
        answer = await browser.post(
            "/codec/session", content=content, headers={"Content-Type": content_type}
        )
        assert answer.status_code == status, (content[:20], answer.text)
        assert "error" in answer.json()
    assert COOKIE not in browser.cookies


async def test_the_preflight_allows_credentials_for_the_ui_origin_only(
    browser: httpx.AsyncClient,
) -> None:
    request = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    for route in ("/codec/decode", "/codec/encode"):
        allowed = await browser.options(route, headers={**request, "Origin": UI})
        assert allowed.status_code == 204
        assert_credentialed_cors(allowed)
        other = await browser.options(route, headers={**request, "Origin": "http://evil.test"})
        assert "access-control-allow-origin" not in other.headers
        assert "access-control-allow-credentials" not in other.headers


async def test_without_a_payload_key_there_is_no_session_to_open(
    app: FastAPI, settings: Settings, browser: httpx.AsyncClient
) -> None:
    plain = settings.model_copy(update={"payload_key": SecretStr("")})
    app.dependency_overrides[get_api_settings] = lambda: plain
    assert (await browser.get("/codec/session")).status_code == 404
    refused = await browser.post("/codec/session", json={"api_key": ORG_A_KEY})
    assert refused.json()["error"]["code"] == "codec_session_unavailable"
    # And the UI's credentialed calls still pass CORS (the browser demands the header).
    typed = Payload(metadata={"encoding": b"json/plain"}, data=b"1")
    passed = await decode_from_ui(browser, typed)
    assert passed.status_code == 200
    assert_credentialed_cors(passed)
