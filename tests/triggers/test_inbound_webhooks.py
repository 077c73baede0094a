"""Inbound webhooks (API.md "Triggers"): signed calls start runs, against the real app, worker
and Temporal dev server. What a sender sees: 202 and the run, 200 and the same run for a
delivery sent again, 401 and no run for anything that does not verify."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from standardwebhooks import Webhook

from store.db import Database
from store.tables import InboundWebhookRow
from tests.api.helpers import create_published, wait_for_run, wait_until

SCHEMA = {"type": "object", "required": ["customer_id"]}


def definition(
    *, json_starts: tuple[str, ...] = ("meta",), label: str = "v1", text_start: bool = False
) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"id": node, "type": "start_json", "config": {"schema": SCHEMA}} for node in json_starts
    ]
    if text_start:
        nodes.append({"id": "note", "type": "start_text"})
    starts = [node["id"] for node in nodes]
    nodes.append(
        {
            "id": "out",
            "type": "end",
            "config": {"outputs": {"customer": f"{{{{{starts[0]}.customer_id}}}}", "v": label}},
        }
    )
    return {"nodes": nodes, "edges": [{"source": s, "target": "out"} for s in starts]}


def signed(
    secret: str, body: bytes, delivery_id: str, *, at: datetime | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers a sender adds, signed with the reference library."""
    timestamp = at or datetime.now(UTC)
    signature = Webhook(secret).sign(delivery_id, timestamp, body.decode())
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


async def create_webhook(api: httpx.AsyncClient, workflow_id: str, **body: Any) -> dict[str, Any]:
    created = await api.post(f"/v1/workflows/{workflow_id}/webhooks", json=body)
    assert created.status_code == 201, created.text
    return created.json()


async def deliver(
    api: httpx.AsyncClient, webhook: dict[str, Any], payload: Any, delivery_id: str
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = signed(webhook["secret"], body, delivery_id)
    # No API key: the signature is the credential.
    return await api.post(
        f"/hooks/{webhook['id']}", content=body, headers={**headers, "Api-Key": ""}
    )


async def webhook_runs(api: httpx.AsyncClient, workflow_id: str) -> list[dict[str, Any]]:
    listed = await api.get(
        "/v1/workflows/runs", params={"workflow_id": workflow_id, "trigger_type": "webhook"}
    )
    assert listed.status_code == 200, listed.text
    return listed.json()["data"]  # type: ignore[no-any-return]


async def test_a_signed_call_starts_a_run_whose_input_is_the_body(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, definition())
    webhook = await create_webhook(api, workflow_id)
    assert set(webhook) == {
        "id",
        "workflow_id",
        "input_node",
        "config_source",
        "url",
        "created_at",
        "secret",
    }
    assert webhook["id"].startswith("wh_")
    assert webhook["url"] == f"http://runlane.test/hooks/{webhook['id']}"
    assert (webhook["workflow_id"], webhook["input_node"], webhook["config_source"]) == (
        workflow_id,
        "meta",
        "published",
    )
    assert webhook["secret"].startswith("whsec_")
    assert len(base64.b64decode(webhook["secret"].removeprefix("whsec_"), validate=True)) == 32

    payload = {"customer_id": "cust_9", "amount": 12.5, "tags": ["a", "é"]}
    started = await deliver(api, webhook, payload, "msg_first")
    assert started.status_code == 202, started.text
    assert started.json() == {"run_id": started.json()["run_id"], "status": "pending"}
    run = await wait_for_run(api, started.json()["run_id"])
    assert run["status"] == "completed", run
    assert run["trigger"] == {
        "type": "webhook",
        "source_run_id": None,
        "webhook_id": webhook["id"],
        "delivery_id": "msg_first",
    }
    assert run["inputs"]["json_data"] == {"meta": payload}
    assert run["final_outputs"] == {"customer": "cust_9", "v": "v1"}
    assert webhook["secret"] not in json.dumps(run)


async def test_the_same_delivery_id_answers_the_first_run_also_when_sent_ten_times_at_once(
    api: httpx.AsyncClient,
) -> None:
    workflow_id = await create_published(api, definition())
    webhook = await create_webhook(api, workflow_id)
    first = await deliver(api, webhook, {"customer_id": "c1"}, "msg_1")
    assert first.status_code == 202, first.text
    # Sent again, re-signed a moment later (as senders retry): the first run, nothing new.
    again = await deliver(api, webhook, {"customer_id": "c1"}, "msg_1")
    assert again.status_code == 200, again.text
    assert again.json()["run_id"] == first.json()["run_id"]

    burst = await asyncio.gather(
        *(deliver(api, webhook, {"customer_id": "c2"}, "msg_burst") for _ in range(10))
    )
    assert all(r.status_code in (200, 202) for r in burst), [r.text for r in burst]
    # One of them started the run (202), unless the run had already ended when that one's
    # start reached Temporal: then every answer is the replay's 200. Never two 202s.
    assert [r.status_code for r in burst].count(202) <= 1
    assert len({r.json()["run_id"] for r in burst}) == 1

    # Two deliveries, two runs (visibility catches up on its own time).
    async def both_listed() -> list[dict[str, Any]] | None:
        runs = await webhook_runs(api, workflow_id)
        return runs if len(runs) >= 2 else None

    runs = await wait_until(both_listed)
    assert sorted(r["trigger"]["delivery_id"] for r in runs) == ["msg_1", "msg_burst"]


def _sig(secret: str, body: bytes, delivery_id: str, at: datetime) -> str:
    return signed(secret, body, delivery_id, at=at)["webhook-signature"]


async def test_calls_that_do_not_verify_answer_401_and_start_no_run(
    api: httpx.AsyncClient,
) -> None:
    workflow_id = await create_published(api, definition())
    webhook = await create_webhook(api, workflow_id)
    secret, url = webhook["secret"], f"/hooks/{webhook['id']}"
    body = json.dumps({"customer_id": "c"}).encode()
    now = datetime.now(UTC)
    good = signed(secret, body, "msg_x")
    other_secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    cases: dict[str, tuple[bytes, dict[str, str]]] = {
        "no headers": (body, {}),
        "no signature": (body, {**good, "webhook-signature": ""}),
        "wrong secret": (body, signed(other_secret, body, "msg_x")),
        "tampered body": (json.dumps({"customer_id": "d"}).encode(), good),
        "bad base64": (body, {**good, "webhook-signature": "v1,a"}),
        "no comma": (body, {**good, "webhook-signature": "v1" + good["webhook-signature"][3:]}),
        "two commas": (body, {**good, "webhook-signature": good["webhook-signature"] + ",x"}),
        "other version": (
            body,
            {**good, "webhook-signature": "v2" + good["webhook-signature"][2:]},
        ),
        "6 min old": (body, signed(secret, body, "msg_x", at=now - timedelta(minutes=6))),
        "6 min ahead": (body, signed(secret, body, "msg_x", at=now + timedelta(minutes=6))),
        "timestamp not a number": (body, {**good, "webhook-timestamp": "soon"}),
        "timestamp not finite": (body, {**good, "webhook-timestamp": "nan"}),
        "signed id differs": (body, {**good, "webhook-id": "msg_y"}),
        "body not UTF-8": (b"\xff\xfe{}", good),
    }
    for name, (content, headers) in cases.items():
        response = await api.post(url, content=content, headers=headers)
        assert response.status_code == 401, (name, response.text)
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("authentication", "invalid_webhook_signature")
        assert "does not verify" in error["message"], name

    # Several signatures, one of them valid (a sender rotating secrets): accepted.
    several = {
        **good,
        "webhook-signature": f"v1,{base64.b64encode(b'x' * 32).decode()} "
        + _sig(secret, body, "msg_x", now),
    }
    accepted = await api.post(url, content=body, headers=several)
    assert accepted.status_code == 202, accepted.text

    # Once that run is listed, nothing else ever was: none of the refused calls started one.
    runs = await wait_until(lambda: webhook_runs(api, workflow_id))
    assert [r["id"] for r in runs] == [accepted.json()["run_id"]]


async def test_bodies_the_input_node_cannot_take_answer_422_and_keep_the_delivery_id_free(
    api: httpx.AsyncClient,
) -> None:
    workflow_id = await create_published(api, definition())
    webhook = await create_webhook(api, workflow_id)
    url = f"/hooks/{webhook['id']}"

    async def send(body: bytes, delivery_id: str = "msg_1") -> httpx.Response:
        return await api.post(
            url, content=body, headers=signed(webhook["secret"], body, delivery_id)
        )

    refused = await send(b'{"amount": 3}')
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_inputs"
    assert "meta" in error["message"] and "customer_id" in error["message"]

    for body, problem in (
        (b"", "Expecting value"),
        (b"customer_id=c", "Expecting value"),
        (b'{"customer_id": NaN}', "NaN"),
        (b'{"customer_id": 1e999}', "finite"),
        (b'{"customer_id": "\\ud800"}', "surrogate"),
        (b"[" * 100 + b"]" * 100, "nested more than 64"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deep"),
        (b'{"customer_id": ' + b"1" * 5000 + b"}", "digits"),
    ):
        response = await send(body)
        assert response.status_code == 422, (body[:40], response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_json", (body[:40], error)
        assert problem in error["message"], (body[:40], error["message"])

    # A malformed delivery id, once the signature verified.
    odd_id = await send(b'{"customer_id": "c"}', "msg with spaces")
    assert odd_id.status_code == 422, odd_id.text
    assert odd_id.json()["error"]["code"] == "invalid_webhook_id"

    # Nothing was recorded for the refused calls: the same delivery id, fixed, starts the run.
    fixed = await send(b'{"customer_id": "c"}')
    assert fixed.status_code == 202, fixed.text


async def test_inputs_over_4_mib_answer_413(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, definition())
    webhook = await create_webhook(api, workflow_id)
    response = await deliver(api, webhook, {"customer_id": "c", "blob": "x" * (4 << 20)}, "m")
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "run_too_large"


async def test_unknown_and_deleted_webhooks_answer_404(
    api: httpx.AsyncClient, org_b: httpx.AsyncClient
) -> None:
    workflow_id = await create_published(api, definition())
    webhook = await create_webhook(api, workflow_id)
    body = b'{"customer_id": "c"}'
    headers = signed(webhook["secret"], body, "msg_1")
    for unknown in ("wh_" + "0" * 32, "nope", "wh_" + "0" * 32 + "%0A", "%ED%A0%80", "x" * 3000):
        response = await api.post(f"/hooks/{unknown}", content=body, headers=headers)
        assert response.status_code == 404, (unknown, response.text)
        assert response.json()["error"]["type"] == "not_found"

    # Another organization can neither list nor delete it: 404, as if missing.
    assert (await org_b.get(f"/v1/workflows/{workflow_id}/webhooks")).status_code == 404
    assert (await org_b.delete(f"/v1/webhooks/{webhook['id']}")).status_code == 404

    deleted = await api.delete(f"/v1/webhooks/{webhook['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    again = await api.delete(f"/v1/webhooks/{webhook['id']}")
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "webhook_not_found"
    gone = await api.post(f"/hooks/{webhook['id']}", content=body, headers=headers)
    assert gone.status_code == 404, gone.text
    assert (await api.get(f"/v1/workflows/{workflow_id}/webhooks")).json()["data"] == []


async def test_lists_page_newest_first_and_never_show_the_secret(
    api: httpx.AsyncClient, database: Database
) -> None:
    workflow_id = await create_published(api, definition())
    made = [await create_webhook(api, workflow_id) for _ in range(3)]
    first = await api.get(f"/v1/workflows/{workflow_id}/webhooks", params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    rest = await api.get(
        f"/v1/workflows/{workflow_id}/webhooks", params={"cursor": page["next_cursor"]}
    )
    listed = page["data"] + rest.json()["data"]
    assert [w["id"] for w in listed] == [w["id"] for w in reversed(made)]
    assert rest.json()["next_cursor"] is None
    for webhook in made:
        assert webhook["secret"] not in first.text + rest.text
    assert all("secret" not in w for w in listed)
    assert listed[0]["url"] == made[-1]["url"]
    bad = await api.get(f"/v1/workflows/{workflow_id}/webhooks", params={"cursor": "bogus"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"
    assert (await api.get("/v1/workflows/wf_nope/webhooks")).status_code == 404

    # At rest: ciphertext only, which is not the secret in any encoding.
    async with database.session() as session:
        rows = (await session.scalars(select(InboundWebhookRow))).all()
    stored = {row.id: row for row in rows}
    for webhook in made:
        row = stored[webhook["id"]]
        raw = base64.b64decode(webhook["secret"].removeprefix("whsec_"))
        assert webhook["secret"].encode() not in row.ciphertext and raw not in row.ciphertext


async def test_creation_checks_the_input_node_against_the_definition_the_runs_use(
    api: httpx.AsyncClient, org_b: httpx.AsyncClient
) -> None:
    two = await create_published(api, definition(json_starts=("meta", "extra")))
    several = await api.post(f"/v1/workflows/{two}/webhooks")
    assert several.status_code == 422, several.text
    assert several.json()["error"]["code"] == "invalid_input_node"
    assert "several start_json" in several.json()["error"]["message"]
    chosen = await create_webhook(api, two, input_node="extra")
    assert chosen["input_node"] == "extra"
    for node, problem in (("out", "is a end node"), ("ghost", "has no node 'ghost'")):
        refused = await api.post(f"/v1/workflows/{two}/webhooks", json={"input_node": node})
        assert refused.status_code == 422, refused.text
        assert problem in refused.json()["error"]["message"]

    no_json = {
        "nodes": [
            {"id": "note", "type": "start_text"},
            {"id": "out", "type": "end", "config": {"outputs": {}}},
        ],
        "edges": [{"source": "note", "target": "out"}],
    }
    texts = await create_published(api, no_json)
    none = await api.post(f"/v1/workflows/{texts}/webhooks", json={})
    assert none.status_code == 422 and "no start_json" in none.json()["error"]["message"]

    # Unpublished: the same 409 as a run start; the draft may be used instead.
    created = await api.post("/v1/workflows", json={"name": "d", "definition": definition()})
    draft_only = created.json()["id"]
    unpublished = await api.post(f"/v1/workflows/{draft_only}/webhooks")
    assert unpublished.status_code == 409, unpublished.text
    assert unpublished.json()["error"]["code"] == "workflow_not_published"
    drafted = await create_webhook(api, draft_only, config_source="draft")
    run = await deliver(api, drafted, {"customer_id": "c"}, "msg_draft")
    assert run.status_code == 202, run.text
    record = await wait_for_run(api, run.json()["run_id"])
    assert record["workflow"]["snapshot_id"] is None and record["status"] == "completed"

    # Other organizations' workflows and unknown ones: 404.
    assert (await org_b.post(f"/v1/workflows/{two}/webhooks")).status_code == 404
    assert (await api.post("/v1/workflows/wf_nope/webhooks")).status_code == 404
    assert (await api.post(f"/v1/workflows/{two}/webhooks", json={"x": 1})).status_code == 422


async def test_each_call_runs_the_snapshot_published_when_it_arrives(
    api: httpx.AsyncClient,
) -> None:
    workflow_id = await create_published(api, definition(label="v1"))
    webhook = await create_webhook(api, workflow_id)
    replaced = await api.put(
        f"/v1/workflows/{workflow_id}/draft", json={"definition": definition(label="v2")}
    )
    assert replaced.status_code == 200, replaced.text
    assert (await api.post(f"/v1/workflows/{workflow_id}/publish")).status_code == 201
    started = await deliver(api, webhook, {"customer_id": "c"}, "msg_v2")
    run = await wait_for_run(api, started.json()["run_id"])
    assert run["workflow"]["version"] == 2 and run["final_outputs"]["v"] == "v2"


async def test_a_workflow_needing_other_inputs_names_them_when_called(
    api: httpx.AsyncClient,
) -> None:
    # A webhook feeds one start_json node; the run service refuses a run missing the others.
    workflow_id = await create_published(api, definition(text_start=True))
    webhook = await create_webhook(api, workflow_id)
    response = await deliver(api, webhook, {"customer_id": "c"}, "msg_1")
    assert response.status_code == 422, response.text
    assert "missing input for start node 'note'" in response.json()["error"]["message"]
