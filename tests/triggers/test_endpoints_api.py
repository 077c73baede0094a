"""`/v1/webhook-endpoints`: subscribing, validation, organizations, the secret shown once, and
the delivery log's pages."""

from __future__ import annotations

import json

import httpx
import pytest
from temporalio.client import Client

from runlane.settings import Settings
from store.db import Database
from store.endpoints import EndpointRepository
from tests.conftest import ORG_B_KEY
from tests.peer import Peer
from tests.triggers.events import deliver, org_a, run_event, subscribe
from triggers.endpoints import EndpointService


async def test_an_endpoint_is_created_read_changed_and_deleted(api: httpx.AsyncClient) -> None:
    created = await subscribe(
        api,
        "https://hooks.example.com/runlane",
        ["run.failed", "run.completed", "run.failed"],
        description="ops",
    )
    assert created["id"].startswith("we_")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) == 6 + 44
    assert created["events"] == ["run.completed", "run.failed"]
    assert (created["disabled"], created["description"]) == (False, "ops")

    read = (await api.get(f"/v1/webhook-endpoints/{created['id']}")).json()
    listed = (await api.get("/v1/webhook-endpoints")).json()["data"]
    # The secret is shown once, in the creation's answer only.
    assert "secret" not in read and all("secret" not in e for e in listed)
    assert read == {k: v for k, v in created.items() if k != "secret"}
    assert [e["id"] for e in listed] == [created["id"]]

    patched = await api.patch(
        f"/v1/webhook-endpoints/{created['id']}",
        json={"url": "https://other.example.com/x", "events": ["review.requested"]},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["url"] == "https://other.example.com/x"
    assert patched.json()["events"] == ["review.requested"]
    assert patched.json()["description"] == "ops" and "secret" not in patched.json()

    assert (await api.delete(f"/v1/webhook-endpoints/{created['id']}")).status_code == 204
    gone = await api.get(f"/v1/webhook-endpoints/{created['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "webhook_endpoint_not_found"


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"url": "ftp://example.com/x", "events": ["run.completed"]}, "url", "http"),
        ({"url": "https:///nohost", "events": ["run.completed"]}, "url", "host"),
        ({"url": "/relative", "events": ["run.completed"]}, "url", "absolute"),
        ({"url": "https://e.com/" + "a" * 2048, "events": ["run.completed"]}, "url", "2048"),
        ({"url": "https://e.com/a b", "events": ["run.completed"]}, "url", "spaces"),
        ({"url": "https://e.com/\ud800", "events": ["run.completed"]}, "url", "unicode"),
        ({"url": "https://example.com/x", "events": []}, "events", "at least 1"),
        ({"url": "https://example.com/x", "events": ["run.exploded"]}, "events", "run.started"),
        ({"url": "https://example.com/x", "events": "run.completed"}, "events", "list"),
        ({"url": 42, "events": ["run.completed"]}, "url", "string"),
        ({"events": ["run.completed"]}, "url", "required"),
        ({"url": "https://example.com/x", "events": ["run.completed"], "x": 1}, "x", "xtra"),
    ],
)
async def test_a_bad_subscription_is_refused_naming_the_field(
    api: httpx.AsyncClient, body: dict, loc: str, words: str
) -> None:
    # Escaped JSON: a lone surrogate travels as "\\ud800", as a hostile client sends it.
    answer = await api.post(
        "/v1/webhook-endpoints",
        content=json.dumps(body),
        headers={"content-type": "application/json"},
    )

    assert answer.status_code == 422, answer.text
    errors = answer.json()["error"]["details"]["errors"]
    assert any(loc in error["loc"] and words in error["message"] for error in errors), errors
    assert (await api.get("/v1/webhook-endpoints")).json()["data"] == []


async def test_a_body_that_is_not_json_is_refused(api: httpx.AsyncClient) -> None:
    answer = await api.post(
        "/v1/webhook-endpoints", content=b"\xff\xfe{", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_json"


async def test_a_bad_change_is_refused_and_changes_nothing(api: httpx.AsyncClient) -> None:
    created = await subscribe(api, "https://hooks.example.com/a", ["run.completed"])
    for body in (
        {"url": "mailto:ops@example.com"},
        {"events": []},
        {"events": ["nope"]},
        {"disabled": "maybe"},
        {"url": "https://ok.example.com", "events": ["run.nope"]},
    ):
        answer = await api.patch(f"/v1/webhook-endpoints/{created['id']}", json=body)
        assert answer.status_code == 422, (body, answer.text)
    read = (await api.get(f"/v1/webhook-endpoints/{created['id']}")).json()
    assert (read["url"], read["events"]) == ("https://hooks.example.com/a", ["run.completed"])


async def test_private_addresses_are_refused_unless_allowed(
    database: Database, settings: Settings
) -> None:
    """RUNLANE_HTTP_ALLOW_PRIVATE=false: a loopback/private literal, or a name resolving to one,
    is refused at subscription and on change (the tests' settings allow them otherwise)."""

    async def resolve(host: str, port: int) -> list[str]:
        return {"inside.example.com": ["10.1.2.3"]}.get(host, ["93.184.215.14"])

    endpoints = EndpointRepository(database, settings.secret_keys())
    strict = EndpointService(endpoints, allow_private=False, resolve=resolve)
    org = org_a(settings)
    for url in ("http://127.0.0.1:9000/hook", "http://[::1]/x", "https://inside.example.com/h"):
        with pytest.raises(Exception) as refused:
            await strict.create(org, url=url, events=["run.completed"])
        assert getattr(refused.value, "code", None) == "invalid_webhook_endpoint"
        assert "RUNLANE_HTTP_ALLOW_PRIVATE" in str(refused.value)
    record, _ = await strict.create(org, url="https://public.example.com/h", events=["run.failed"])
    with pytest.raises(Exception) as refused:
        await strict.update(org, record.id, url="http://192.168.1.1/")
    assert getattr(refused.value, "code", None) == "invalid_webhook_endpoint"
    allowed = EndpointService(endpoints, allow_private=True, resolve=resolve)
    await allowed.update(org, record.id, url="http://192.168.1.1/")


async def test_other_organizations_endpoints_are_not_found(
    api: httpx.AsyncClient,
) -> None:
    created = await subscribe(api, "https://hooks.example.com/a", ["run.completed"])
    other = {"Api-Key": ORG_B_KEY}
    path = f"/v1/webhook-endpoints/{created['id']}"

    answers = [
        await api.get(path, headers=other),
        await api.patch(path, json={"disabled": True}, headers=other),
        await api.delete(path, headers=other),
        await api.get(f"{path}/deliveries", headers=other),
    ]

    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert (await api.get("/v1/webhook-endpoints", headers=other)).json()["data"] == []
    assert (await api.get(path)).json()["disabled"] is False
    for bad in ("we_nope", "we_" + "0" * 32, "%00", "%ED%A0%80", "x" * 5000):
        answer = await api.get(f"/v1/webhook-endpoints/{bad}/deliveries")
        assert answer.status_code == 404, (bad, answer.text)


async def test_the_delivery_log_pages_newest_first(
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    database: Database,
    http_client: httpx.AsyncClient,
    peer: Peer,
) -> None:
    endpoint = await subscribe(api, f"{peer.url}/log", ["run.completed", "run.started"])
    events = [run_event(org_a(settings), kind) for kind in ("run.started", "run.completed")]
    events.append(run_event(org_a(settings)))
    for event in events:  # one after the other: the log's order is the events' order
        await deliver(client, settings, database, http_client, event)
    path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"

    first = (await api.get(path, params={"limit": 2})).json()
    second = (await api.get(path, params={"limit": 2, "cursor": first["next_cursor"]})).json()

    assert [d["event_id"] for d in first["data"] + second["data"]] == [
        e.id for e in reversed(events)
    ]
    assert second["next_cursor"] is None
    assert all(d["status"] == "succeeded" and d["attempts"] == 1 for d in first["data"])
    bad = await api.get(path, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"


async def test_subscribed_event_types_are_those_of_enabled_endpoints(
    api: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    endpoints = EndpointRepository(database, settings.secret_keys())
    await subscribe(api, "https://a.example.com", ["run.failed", "run.completed"])
    await subscribe(api, "https://b.example.com", ["run.completed", "review.requested"])
    off = await subscribe(api, "https://c.example.com", ["run.cancelled"])
    await api.patch(f"/v1/webhook-endpoints/{off['id']}", json={"disabled": True})
    await api.post(
        "/v1/webhook-endpoints",
        json={"url": "https://d.example.com", "events": ["run.retried"]},
        headers={"Api-Key": ORG_B_KEY},
    )

    assert await endpoints.subscribed_event_types(org_a(settings)) == [
        "review.requested",
        "run.completed",
        "run.failed",
    ]
    assert await endpoints.subscribed_event_types("org_nobody") == []
