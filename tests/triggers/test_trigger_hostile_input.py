"""Hostile input against every schedule and inbound-webhook operation (API.md "Triggers",
"Errors", "Request limits"): whatever is sent, the answer is below 500, has the error body when
it is a refusal, and what the organization already has reads back unchanged."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from runlane import search_attributes
from tests.api.helpers import create_published, linear_definition, wait_until
from tests.triggers.test_inbound_webhooks import definition as webhook_definition
from tests.triggers.test_inbound_webhooks import signed

INPUTS = {"json_inputs": {"meta": {"customer_id": "cust_1"}}, "text_inputs": {"note": "hi"}}
MIB = 1024 * 1024


@pytest.fixture
async def cleanup(client: Client) -> AsyncIterator[list[str]]:
    created: list[str] = []
    yield created
    for schedule_id in created:
        try:
            await client.get_schedule_handle(schedule_id).delete()
        except RPCError:
            pass


class Prober:
    """Sends requests and keeps every answer that breaks the rule, to report them all."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.broken: list[str] = []
        self.sent = 0

    async def send(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        raw: bytes | str | None = None,
        headers: Any = None,
        params: Any = None,
    ) -> httpx.Response | None:
        content: bytes | None
        if raw is not None:
            content = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        elif body is not None:
            content = json.dumps(body).encode()  # (escapes lone surrogates)
        else:
            content = None
        sent_headers: Any = headers
        if content is not None and headers is None:
            sent_headers = {"Content-Type": "application/json"}
        self.sent += 1
        what = f"{method} {url[:120]} params={str(params)[:80]} body={(content or b'')[:80]!r}"
        try:
            response = await asyncio.wait_for(
                self.http.request(
                    method, url, content=content, headers=sent_headers, params=params
                ),
                timeout=15,
            )
        except TimeoutError:
            self.broken.append(f"HANG {what}")
            return None
        except Exception as error:  # noqa: BLE001 - an exception out of the app is a 500
            self.broken.append(f"RAISED {type(error).__name__}: {error} :: {what}")
            return None
        if response.status_code >= 500:
            self.broken.append(f"{response.status_code} {what} -> {response.text[:300]}")
        elif response.status_code >= 400:
            try:
                error = response.json()["error"]
                assert set(error) == {"type", "code", "message", "details"}
                assert error["message"] and isinstance(error["details"], dict)
            except Exception:  # noqa: BLE001
                self.broken.append(f"NO ERROR BODY {response.status_code} {what}: {response.text}")
        return response

    def check(self) -> None:
        assert not self.broken, f"{len(self.broken)} of {self.sent}:\n" + "\n".join(self.broken)


HEX = "0123456789abcdef" * 2
HOSTILE_IDS = [
    "x" * 10240,
    "sch_" + "0" * 10240,
    "%00",
    "sch_%00" + HEX[:-3],
    "..%2F..%2Fetc%2Fpasswd",
    "%2E%2E",
    "sch_%C3%A9%E6%97%A5",
    "%F0%9F%92%A5",
    "%ED%A0%80",
    "sch_%ED%A0%80",
    "%FF%FE",
    "sch_" + HEX.upper(),
    "wh_" + HEX,
    "run_" + HEX,
    "wf_" + HEX,
    "sch_" + HEX,
    " sch_" + HEX,
    "sch_" + HEX + "%20",
]

VALID_BACKFILL = {"start_at": "2020-01-01T00:00:00Z", "end_at": "2020-01-02T00:00:00Z"}


def _schedule_ops(schedule_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", f"/v1/schedules/{schedule_id}", None),
        ("PATCH", f"/v1/schedules/{schedule_id}", {"note": "x"}),
        ("POST", f"/v1/schedules/{schedule_id}/trigger", None),
        ("POST", f"/v1/schedules/{schedule_id}/backfill", VALID_BACKFILL),
        ("DELETE", f"/v1/schedules/{schedule_id}", None),
    ]


def _workflow_ops(workflow_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("POST", f"/v1/workflows/{workflow_id}/schedules", {"spec": {"interval_s": 60}}),
        ("GET", f"/v1/workflows/{workflow_id}/schedules", None),
        ("POST", f"/v1/workflows/{workflow_id}/webhooks", {}),
        ("GET", f"/v1/workflows/{workflow_id}/webhooks", None),
    ]


def _webhook_ops(webhook_id: str) -> list[tuple[str, str, Any]]:
    return [("DELETE", f"/v1/webhooks/{webhook_id}", None)]


def schedule_bodies() -> list[Any]:
    """Raw JSON texts and values for a schedule's create (and, without spec, its PATCH)."""
    deep = "[" * 10_000 + "]" * 10_000
    deep_object = '{"spec":' * 10_000 + "1" + "}" * 10_000
    raw = [
        "[]",
        '"spec"',
        "null",
        "",
        "{",
        deep,
        deep_object,
        "1e999",
        "1" + "0" * 5000,
        "NaN",
        "Infinity",
        '{"spec": {"interval_s": NaN}}',
        '{"spec": {"interval_s": Infinity}}',
        '{"spec": {"interval_s": -Infinity}}',
        '{"spec": {"interval_s": 1e999}}',
        '{"spec": {"interval_s": ' + "9" * 5000 + "}}",
        '{"spec": {"interval_s": 60}, "note": NaN}',
        '{"spec": {"interval_s": 60}, "inputs": {"json_inputs": {"meta": NaN}}}',
        '{"spec": {"interval_s": 60}, "inputs": {"json_inputs": {"meta": 1e999}}}',
        '{"spec": {"interval_s": 60}, "inputs": {"json_inputs": {"meta": ' + "1" * 5000 + "}}}",
        '{"spec": {"interval_s": 60}, "inputs": {"json_inputs": {"meta": '
        + "[" * 10_000
        + "]" * 10_000
        + "}}}",
        '{"spec": {"interval_s": 60}, "inputs": {"json_inputs": {"\\ud800": {}}}}',
        '{"spec": {"interval_s": 60}, "inputs": {"json_inputs": {"meta": {"\\udfff": 1}}}}',
        '{"spec": {"interval_s": 60}, "note": "a\\u0000b"}',
        '{"spec": {"interval_s": 60}, "note": "\\ud800"}',
        '{"spec": {"interval_s": 60, "timezone": "UTC\\u0000"}}',
        '{"spec": {"cron": ["0 9 * * *\\u0000"]}}',
        '{"spec": {"cron": ["0 9 * * *\\udc00"]}}',
        '{"spec": {"interval_s": 60}, "spec": {"interval_s": "x"}}',
        b'{"spec": {"interval_s": 60}, "note": "\xff\xfe"}',
        b"\xef\xbb\xbf{}",
        b"\x00\x00\x00{",
    ]
    values: list[Any] = [
        {"spec": {"interval_s": 1e308}},
        {"spec": {"interval_s": -1}},
        {"spec": {"interval_s": 0}},
        {"spec": {"interval_s": 0.0001}},
        {"spec": {"interval_s": 60.5}},
        {"spec": {"interval_s": True}},
        {"spec": {"interval_s": "60"}},
        {"spec": {"interval_s": [60]}},
        {"spec": {"interval_s": {"s": 60}}},
        {"spec": {"interval_s": 10**20}},
        {"spec": {"interval_s": 60, "jitter_s": 1e308}},
        {"spec": {"interval_s": 60, "jitter_s": -1}},
        {"spec": {"interval_s": 60, "jitter_s": True}},
        {"spec": {"interval_s": 60, "jitter_s": "1"}},
        {"spec": {"cron": ["* * * * *"] * 10_000}},
        {"spec": {"cron": ["0 9 * * " + "1," * 50_000]}},
        {"spec": {"cron": ["x" * 100 * 1024]}},
        {"spec": {"cron": "0 9 * * *"}},
        {"spec": {"cron": [9]}},
        {"spec": {"cron": [None]}},
        {"spec": {"cron": [[]]}},
        {"spec": {"cron": [""]}},
        {"spec": {"cron": ["   "]}},
        {"spec": {"cron": ["@every 0s"]}},
        {"spec": {"cron": ["@every -1s"]}},
        {"spec": {"cron": ["@every 99999999999h"]}},
        {"spec": {"cron": ["@nonsense"]}},
        {"spec": {"cron": ["@"]}},
        {"spec": {"cron": ["CRON_TZ=../../etc/passwd 0 9 * * *"]}},
        {"spec": {"cron": ["CRON_TZ=Mars/Olympus 0 9 * * *"]}},
        {"spec": {"cron": ["TZ=" + "x" * 190 + " 0 9 * * *"]}},
        {"spec": {"cron": ["61 * * * *"]}},
        {"spec": {"cron": ["* * * * * * * *"]}},
        {"spec": {"cron": ["0 0 * * * 1969"]}},
        {"spec": {"cron": ["0 0 0 0 0 0 0"]}},
        {"spec": {"cron": ["*/0 * * * *"]}},
        {"spec": {"cron": ["0-999999999 * * * *"]}},
        {"spec": {"cron": ["0 9 * * MON-FRI"], "timezone": "x" * 10240}},
        {"spec": {"interval_s": 60, "timezone": "../../etc/passwd"}},
        {"spec": {"interval_s": 60, "timezone": "Europe/../../../etc/passwd"}},
        {"spec": {"interval_s": 60, "timezone": "/etc/localtime"}},
        {"spec": {"interval_s": 60, "timezone": ""}},
        {"spec": {"interval_s": 60, "timezone": 1}},
        {"spec": {"interval_s": 60, "timezone": "Local"}},
        {"spec": {"interval_s": 60, "timezone": "\ud800"}},
        {"spec": {"interval_s": 60, "timezone": "x" * (5 * MIB)}},
        {"spec": {"interval_s": 60, "start_at": "0001-01-01T00:00:00Z"}},
        {"spec": {"interval_s": 60, "start_at": "0001-01-01T00:00:00+01:00"}},
        {"spec": {"interval_s": 60, "end_at": "9999-12-31T23:59:59Z"}},
        {"spec": {"interval_s": 60, "end_at": "9999-12-31T23:59:59-01:00"}},
        {"spec": {"interval_s": 60, "start_at": "2030-01-01T00:00:00"}},
        {"spec": {"interval_s": 60, "start_at": "2030-01-01"}},
        {"spec": {"interval_s": 60, "start_at": "2030-13-01T00:00:00Z"}},
        {"spec": {"interval_s": 60, "start_at": "2030-01-01T00:00:00+25:00"}},
        {"spec": {"interval_s": 60, "start_at": 1700000000}},
        {"spec": {"interval_s": 60, "start_at": True}},
        {"spec": {"interval_s": 60, "start_at": "x" * 10240}},
        {"spec": {"interval_s": 60, "start_at": "\ud800"}},
        {
            "spec": {
                "interval_s": 60,
                "start_at": "2030-01-02T00:00:00Z",
                "end_at": "2030-01-01T00:00:00Z",
            }
        },
        {"spec": {"interval_s": 60, "extra": 1}},
        {"spec": {"interval_s": 60}, "extra": 1},
        {"spec": {"interval_s": 60}, "id": "sch_" + HEX},
        {"spec": {"interval_s": 60}, "organization_id": "org_other"},
        {"spec": {"interval_s": 60}, "inputs": {"extra": {}}},
        {"spec": {"interval_s": 60}, "inputs": []},
        {"spec": {"interval_s": 60}, "inputs": "x"},
        {"spec": {"interval_s": 60}, "inputs": {"json_inputs": []}},
        {"spec": {"interval_s": 60}, "inputs": {"json_inputs": {"meta": "x" * (5 * MIB)}}},
        {"spec": {"interval_s": 60}, "inputs": {"json_inputs": {"k" * (5 * MIB): {}}}},
        {"spec": {"interval_s": 60}, "inputs": {"json_inputs": {"ghost": {}}}},
        {"spec": {"interval_s": 60}, "inputs": {"text_inputs": {"note": 5}}},
        {"spec": {"interval_s": 60}, "inputs": {"text_inputs": {"note": None}}},
        {"spec": {"interval_s": 60}, "inputs": {"text_inputs": {"note": "x" * (5 * MIB)}}},
        {"spec": {"interval_s": 60}, "inputs": {"text_inputs": {"note": "\ud800"}}},
        {"spec": {"interval_s": 60}, "inputs": {"text_inputs": {"note": "a\u0000b"}}},
        {"spec": {"interval_s": 60}, "inputs": {"documents": {"doc": {"content": "eA=="}}}},
        {"spec": {"interval_s": 60}, "inputs": {"documents": {"doc": {"file_id": "file_nope"}}}},
        {"spec": {"interval_s": 60}, "inputs": {"documents": {"doc": {"file_id": "x" * 10240}}}},
        {"spec": {"interval_s": 60}, "inputs": {"documents": {"doc": {"file_id": "\u0000"}}}},
        {"spec": {"interval_s": 60}, "inputs": {"documents": {"doc": "file_x"}}},
        {"spec": {"interval_s": 60}, "inputs": {"documents": []}},
        {"spec": {"interval_s": 60}, "config_source": "tomorrow"},
        {"spec": {"interval_s": 60}, "config_source": None},
        {"spec": {"interval_s": 60}, "overlap": "sometimes"},
        {"spec": {"interval_s": 60}, "overlap": "buffer_all"},
        {"spec": {"interval_s": 60}, "overlap": 1},
        {"spec": {"interval_s": 60}, "paused": "yes"},
        {"spec": {"interval_s": 60}, "paused": 1},
        {"spec": {"interval_s": 60}, "paused": None},
        {"spec": {"interval_s": 60}, "note": 1},
        {"spec": {"interval_s": 60}, "note": ["x"]},
        {"spec": {"interval_s": 60}, "note": "n" * (5 * MIB)},
        {"spec": None},
        {"spec": []},
        {"spec": "every day"},
        {"spec": {}},
        {},
    ]
    return [*raw, *values]


async def test_hostile_input_to_every_trigger_operation_gets_a_4xx_and_changes_nothing(
    api: httpx.AsyncClient, org_b: httpx.AsyncClient, cleanup: list[str]
) -> None:
    probe = Prober(api)
    workflow_id = await create_published(api, linear_definition())
    hook_workflow = await create_published(api, webhook_definition())
    schedule = (
        await api.post(
            f"/v1/workflows/{workflow_id}/schedules",
            json={"spec": {"interval_s": 3600}, "inputs": INPUTS, "note": "keep", "paused": True},
        )
    ).json()
    cleanup.append(schedule["id"])
    second = (
        await api.post(
            f"/v1/workflows/{workflow_id}/schedules",
            json={"spec": {"cron": ["0 0 29 2 *"]}, "inputs": INPUTS, "paused": True},
        )
    ).json()
    cleanup.append(second["id"])
    webhook = (await api.post(f"/v1/workflows/{hook_workflow}/webhooks")).json()
    webhook2 = (await api.post(f"/v1/workflows/{hook_workflow}/webhooks")).json()
    before = (await api.get(f"/v1/schedules/{schedule['id']}")).json()
    hooks_before = (await api.get(f"/v1/workflows/{hook_workflow}/webhooks")).json()["data"]

    # Organization B's objects.
    b_workflow = await create_published(org_b, linear_definition())
    b_schedule = (
        await org_b.post(
            f"/v1/workflows/{b_workflow}/schedules",
            json={"spec": {"interval_s": 3600}, "inputs": INPUTS, "paused": True},
        )
    ).json()
    cleanup.append(b_schedule["id"])
    b_hook_workflow = await create_published(org_b, webhook_definition())
    b_webhook = (await org_b.post(f"/v1/workflows/{b_hook_workflow}/webhooks")).json()

    # 1. Hostile ids everywhere an id goes.
    created_by_probe: list[httpx.Response] = []
    for hostile in HOSTILE_IDS:
        ops = [*_schedule_ops(hostile), *_workflow_ops(hostile), *_webhook_ops(hostile)]
        for method, url, body in ops:
            response = await probe.send(method, url, body=body)
            if response is not None and response.status_code < 400:
                probe.broken.append(f"ACCEPTED {method} {url[:80]}: {response.status_code}")
        body = b"{}"
        response = await probe.send(
            "POST", f"/hooks/{hostile}", raw=body, headers=signed(webhook["secret"], body, "m1")
        )
        if response is not None and response.status_code != 404:
            probe.broken.append(f"/hooks/{hostile[:40]}: {response.status_code}")

    # Another organization's objects answer exactly like missing ones.
    missing_schedule, missing_workflow, missing_hook = "sch_" + HEX, "wf_" + HEX, "wh_" + HEX
    for theirs, missing in (
        (_schedule_ops(b_schedule["id"]), _schedule_ops(missing_schedule)),
        (_workflow_ops(b_workflow), _workflow_ops(missing_workflow)),
        (_workflow_ops(b_hook_workflow), _workflow_ops(missing_workflow)),
        (_webhook_ops(b_webhook["id"]), _webhook_ops(missing_hook)),
    ):
        for (method, url, body), (_, missing_url, _) in zip(theirs, missing, strict=True):
            answer = await probe.send(method, url, body=body)
            expected = await probe.send(method, missing_url, body=body)
            assert answer is not None and expected is not None
            seen = (answer.status_code, answer.json()["error"]["code"])
            wanted = (expected.status_code, expected.json()["error"]["code"])
            if seen != wanted or seen[0] != 404:
                probe.broken.append(f"OTHER ORG {method} {url}: {seen} vs missing {wanted}")

    # 2. Query parameters of every list.
    page = (await api.get(f"/v1/workflows/{hook_workflow}/webhooks", params={"limit": 1})).json()
    hook_cursor = page["next_cursor"]
    sched_page = (await api.get("/v1/schedules", params={"limit": 1})).json()
    sched_cursor = sched_page["next_cursor"]
    b_cursor_page = await org_b.get("/v1/schedules", params={"limit": 1})
    assert hook_cursor and sched_cursor and b_cursor_page.status_code == 200
    lists = [
        "/v1/schedules",
        f"/v1/workflows/{workflow_id}/schedules",
        f"/v1/workflows/{hook_workflow}/webhooks",
    ]
    hostile_params: list[Any] = [
        {"limit": 0},
        {"limit": -1},
        {"limit": 10**20},
        {"limit": "abc"},
        {"limit": ""},
        {"limit": "1.5"},
        {"limit": "1e3"},
        {"limit": "\u0661"},
        [("limit", "1"), ("limit", "2")],
        {"cursor": "x"},
        {"cursor": ""},
        {"cursor": "a" * 60_000},
        {"cursor": "%00"},
        {"cursor": "\u00e9"},
        {"cursor": "W10"},
        {"cursor": base64.urlsafe_b64encode(b"[" * 700).decode()},
        {"cursor": base64.urlsafe_b64encode(b'["9999-99-99","x"]').decode()},
        {"cursor": base64.urlsafe_b64encode(b'["0001-01-01T00:00:00+14:00","x"]').decode()},
        {"cursor": base64.urlsafe_b64encode(b'["2020-01-01T00:00:00Z","\\u0000"]').decode()},
        {"cursor": base64.urlsafe_b64encode(b'["2020-01-01T00:00:00Z","\\ud800"]').decode()},
        {"cursor": base64.urlsafe_b64encode(b'{"o":"asc","k":[1,2]}').decode()},
        {"cursor": hook_cursor},
        {"cursor": sched_cursor},
        {"cursor": sched_cursor, "order": "asc"},
        {"cursor": hook_cursor, "after": sched_cursor},
        {"after": "x"},
        {"order": "sideways"},
        {"order": ""},
        {"order": "DESC"},
        {"sort_by": "name"},
    ]
    for url in lists:
        for params in hostile_params:
            await probe.send("GET", url, params=params)
    # The raw forms httpx would otherwise encode.
    for query in ("cursor=%ED%A0%80", "cursor=%FF", "limit=%00", "order=%ED%A0%80", "cursor=%00"):
        for url in lists:
            await probe.send("GET", f"{url}?{query}")

    # 3. Bodies of create and PATCH.
    create_url = f"/v1/workflows/{workflow_id}/schedules"
    patch_url = f"/v1/schedules/{schedule['id']}"
    for body in schedule_bodies():
        if isinstance(body, str | bytes):
            response = await probe.send("POST", create_url, raw=body)
            await probe.send("PATCH", patch_url, raw=body)
        else:
            response = await probe.send("POST", create_url, body=body)
            patch_body = body
            if isinstance(body, dict) and body.get("spec") == {"interval_s": 60}:
                patch_body = {k: v for k, v in body.items() if k != "spec"}
            if patch_body not in ({}, {"spec": None}, {"paused": None}, {"config_source": None}):
                patched = await probe.send("PATCH", patch_url, body=patch_body)
                if patched is not None and patched.status_code < 400:
                    probe.broken.append(f"PATCH ACCEPTED {str(patch_body)[:200]}")
        if response is not None and response.status_code == 201:
            cleanup.append(response.json()["id"])
            created_by_probe.append(response)
    # Wrong content types.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        await probe.send("POST", create_url, raw=b"spec=1", headers={"Content-Type": content_type})

    # 4. Backfill bodies.
    backfill_url = f"/v1/schedules/{schedule['id']}/backfill"
    now = datetime.now(UTC).replace(microsecond=0)
    for body in [
        {"start_at": "2020-01-01T00:00:00Z", "end_at": "2020-01-01T00:00:00Z"},
        {"start_at": "2020-01-02T00:00:00Z", "end_at": "2020-01-01T00:00:00Z"},
        {"start_at": "1925-01-01T00:00:00Z", "end_at": "2025-01-01T00:00:00Z"},
        {"start_at": "1970-01-01T00:00:00Z", "end_at": now.isoformat()},
        {"start_at": "0001-01-01T00:00:00Z", "end_at": "9999-12-31T23:59:59Z"},
        {"start_at": "2020-01-01T00:00:00", "end_at": "2020-01-02T00:00:00"},
        {"start_at": "2020-01-01T00:00:00Z", "end_at": "2999-01-01T00:00:00Z"},
        {"start_at": 1, "end_at": 2},
        {"start_at": None, "end_at": None},
        {"start_at": "\ud800", "end_at": "x" * 10240},
        {**VALID_BACKFILL, "extra": 1},
        {"start_at": "2020-01-01T00:00:00Z"},
        {},
        [],
        "x",
        None,
    ]:
        await probe.send("POST", backfill_url, body=body)
    for raw in ("", "null", "[" * 10_000, '{"start_at": NaN, "end_at": 1e999}', b"\xff"):
        await probe.send("POST", backfill_url, raw=raw)
    # On the cron schedule, a century (as long as the store takes) is 14 Feb 29ths.
    await probe.send(
        "POST",
        f"/v1/schedules/{second['id']}/backfill",
        body={"start_at": "1970-01-01T00:00:00Z", "end_at": "1970-01-02T00:00:00Z"},
    )

    # 5. Webhook creation bodies.
    hook_create = f"/v1/workflows/{hook_workflow}/webhooks"
    for body in [
        [],
        "x",
        1,
        {"input_node": 1},
        {"input_node": "x" * 10240},
        {"input_node": "\u0000"},
        {"input_node": "\ud800"},
        {"input_node": "../../etc"},
        {"input_node": "ghost"},
        {"config_source": "tomorrow"},
        {"config_source": None},
        {"extra": 1},
        {"secret": "whsec_" + "A" * 44},
        {"id": "wh_" + HEX},
        {"input_node": "meta", "x" * (5 * MIB): 1},
    ]:
        response = await probe.send("POST", hook_create, body=body)
        if response is not None and response.status_code < 400:
            probe.broken.append(f"WEBHOOK ACCEPTED {str(body)[:100]}: {response.text[:200]}")
    for raw in ("[" * 10_000, "1e999", "NaN", '{"input_node": "\\ud800"}', b"\xff\xfe"):
        await probe.send("POST", hook_create, raw=raw)

    # 6. Deliveries: headers and bodies.
    hook_url = f"/hooks/{webhook['id']}"
    secret = webhook["secret"]

    def raw_signature(delivery_id: bytes, timestamp: bytes, body: bytes) -> str:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        mac = hmac.new(key, delivery_id + b"." + timestamp + b"." + body, hashlib.sha256)
        return "v1," + base64.b64encode(mac.digest()).decode()

    stamp = str(int(datetime.now(UTC).timestamp()))
    good = b'{"customer_id": "c"}'
    header_cases: list[Any] = [
        {"webhook-id": "m" * 10240, **_without(signed(secret, good, "m" * 10240), "webhook-id")},
        {**signed(secret, good, "h1"), "webhook-signature": "v1," + "A" * 10240},
        {**signed(secret, good, "h2"), "webhook-timestamp": "9" * 10240},
        {**signed(secret, good, "h3"), "webhook-timestamp": "1" * 400},
        {**signed(secret, good, "h4"), "webhook-timestamp": "nan"},
        {**signed(secret, good, "h5"), "webhook-timestamp": "-inf"},
        {**signed(secret, good, "h6"), "webhook-timestamp": "-1"},
        {**signed(secret, good, "h7"), "webhook-signature": "v1"},
        {**signed(secret, good, "h8"), "webhook-signature": "v1,a,b"},
        {**signed(secret, good, "h9"), "webhook-signature": "v1,%%%"},
        {**signed(secret, good, "h10"), "webhook-signature": " ".join(["v1,AAAA"] * 2000)},
        {**signed(secret, good, "h11"), "webhook-signature": "v2," + "A" * 44},
        [
            ("webhook-id", "dup1"),
            ("webhook-id", "dup2"),
            ("webhook-timestamp", stamp),
            ("webhook-signature", raw_signature(b"dup1", stamp.encode(), good)),
        ],
        [
            *signed(secret, good, "dup3").items(),
            ("webhook-signature", "v1,AAAA"),
        ],
        [
            ("webhook-id", b"\xff\xfe\xc3\xa9"),
            ("webhook-timestamp", stamp),
            ("webhook-signature", raw_signature(b"\xff\xfe\xc3\xa9", stamp.encode(), good)),
        ],
        [
            ("webhook-id", b"caf\xc3\xa9"),
            ("webhook-timestamp", stamp),
            ("webhook-signature", raw_signature(b"caf\xc3\xa9", stamp.encode(), good)),
        ],
        [
            ("webhook-id", "ok1"),
            ("webhook-timestamp", b"\xd9\xa1\xd9\xa2"),
            ("webhook-signature", b"v1,\xff"),
        ],
        {"webhook-id": "x y", **_without(signed(secret, good, "x y"), "webhook-id")},
        {},
        {"webhook-id": "", "webhook-timestamp": "", "webhook-signature": ""},
    ]
    for headers in header_cases:
        response = await probe.send("POST", hook_url, raw=good, headers=headers)
        if response is not None and response.status_code < 400:
            probe.broken.append(f"HOOK ACCEPTED {str(headers)[:200]}: {response.status_code}")
    bodies: list[bytes] = [
        b"",
        b"\xff\xfe\x00",
        b"\xed\xa0\x80",
        "caf\u00e9".encode("latin-1"),
        b"[" * 10_000 + b"]" * 10_000,
        b'{"customer_id": NaN}',
        b'{"customer_id": 1e999}',
        b'{"customer_id": ' + b"1" * 5000 + b"}",
        b'{"customer_id": "\\ud800"}',
        b'{"customer_id": "' + b"x" * (5 * MIB) + b'"}',
        b"null",
        b"[]",
        b'"x"',
        b"{",
    ]
    for index, body in enumerate(bodies):
        delivery = f"body{index}".encode()
        headers = {
            "webhook-id": delivery.decode(),
            "webhook-timestamp": stamp,
            "webhook-signature": raw_signature(delivery, stamp.encode(), body),
            "content-type": "application/json",
        }
        response = await probe.send("POST", hook_url, raw=body, headers=headers)
        if response is not None and response.status_code < 400:
            probe.broken.append(f"HOOK BODY ACCEPTED {body[:60]!r}: {response.status_code}")
    for content_type in ("text/plain", "multipart/form-data; boundary=x", "application/x-junk"):
        headers = {**signed(secret, good, f"ct-{content_type[:4]}"), "content-type": content_type}
        response = await probe.send("POST", hook_url, raw=good, headers=headers)

    # Afterwards: what the organization had reads back unchanged.
    after = (await api.get(f"/v1/schedules/{schedule['id']}")).json()
    for key in ("spec", "inputs", "note", "overlap", "paused", "config_source", "workflow_id"):
        if after.get(key) != before.get(key):
            probe.broken.append(f"SCHEDULE CHANGED {key}: {before.get(key)} -> {after.get(key)}")
    listed = (await api.get(f"/v1/workflows/{hook_workflow}/webhooks")).json()["data"]
    if [h["id"] for h in listed] != [h["id"] for h in hooks_before]:
        probe.broken.append(f"WEBHOOKS CHANGED: {hooks_before} -> {listed}")
    assert {webhook2["id"], webhook["id"]} <= {h["id"] for h in listed}
    schedules = {
        s["id"] for s in (await api.get("/v1/schedules", params={"limit": 200})).json()["data"]
    }
    expected = {schedule["id"], second["id"], *(r.json()["id"] for r in created_by_probe)}
    if schedules != expected:
        probe.broken.append(f"SCHEDULES: {schedules} != {expected}")
    if created_by_probe:
        probe.broken.append(
            "CREATED: " + "; ".join(str(r.json()["spec"])[:100] for r in created_by_probe)
        )
    # The webhook's secret is what it was: a signed call still starts a run.
    body = b'{"customer_id": "after"}'
    delivered = await api.post(
        f"/hooks/{webhook2['id']}", content=body, headers=signed(webhook2["secret"], body, "ok")
    )
    assert delivered.status_code == 202, delivered.text
    # B's objects too.
    assert (await org_b.get(f"/v1/schedules/{b_schedule['id']}")).status_code == 200
    b_hooks = (await org_b.get(f"/v1/workflows/{b_hook_workflow}/webhooks")).json()["data"]
    assert [h["id"] for h in b_hooks] == [b_webhook["id"]]
    probe.check()


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


def with_secret(name: str) -> dict[str, Any]:
    """linear_definition with an http_request (never reached in these tests) that sends a
    secret: a run start checks the secret exists."""
    definition = linear_definition()
    call = {
        "id": "call",
        "type": "http_request",
        "config": {
            "method": "POST",
            "url": "http://127.0.0.1:9/hook",
            "headers": {"Authorization": f"Bearer {{{{$secrets.{name}}}}}"},
        },
    }
    out = next(n for n in definition["nodes"] if n["id"] == "out")
    edges = [e for e in definition["edges"] if e["target"] != "out"]
    return {
        "nodes": [*[n for n in definition["nodes"] if n["id"] != "out"], call, out],
        "edges": [
            *edges,
            {"source": "shape", "target": "call"},
            {"source": "call", "target": "out"},
        ],
    }


async def test_a_fire_whose_snapshot_needs_a_missing_secret_fails_visibly(
    api: httpx.AsyncClient, cleanup: list[str]
) -> None:
    assert (await api.put("/v1/secrets/hook_token", json={"value": "t0k"})).status_code == 200
    workflow_id = await create_published(api, linear_definition())
    created = await api.post(
        f"/v1/workflows/{workflow_id}/schedules",
        json={"spec": {"interval_s": 3600}, "inputs": INPUTS, "paused": True},
    )
    assert created.status_code == 201, created.text
    schedule = created.json()
    cleanup.append(schedule["id"])
    # v2 sends a secret nobody stored.
    draft = await api.put(
        f"/v1/workflows/{workflow_id}/draft", json={"definition": with_secret("gone_token")}
    )
    assert draft.status_code == 200, draft.text
    assert (await api.post(f"/v1/workflows/{workflow_id}/publish")).status_code == 201

    # Triggered (paused, still): the error a run start answers, naming the secret.
    triggered = await api.post(f"/v1/schedules/{schedule['id']}/trigger")
    assert triggered.status_code == 422, triggered.text
    error = triggered.json()["error"]
    assert error["code"] == "unknown_secret" and "gone_token" in error["message"], error

    async def failed_fire() -> dict[str, Any] | None:
        read = await api.get(f"/v1/schedules/{schedule['id']}")
        assert read.status_code == 200, read.text
        failed = [r for r in read.json()["recent_runs"] if r["run_id"] is None]
        return failed[0] if failed else None

    fire = await wait_until(failed_fire)
    assert fire["status"] == "error" and fire["error"]["code"] == "unknown_secret"
    assert "gone_token" in fire["error"]["message"]
    listed = await api.get("/v1/schedules")
    assert listed.status_code == 200 and [s["id"] for s in listed.json()["data"]] == [
        schedule["id"]
    ]

    # Stored: the next fire starts the run.
    assert (await api.put("/v1/secrets/gone_token", json={"value": "x"})).status_code == 200
    triggered = await api.post(f"/v1/schedules/{schedule['id']}/trigger")
    assert triggered.status_code == 202, triggered.text


async def test_empty_patch_paused_trigger_and_deleting_twice(
    api: httpx.AsyncClient, cleanup: list[str]
) -> None:
    workflow_id = await create_published(api, linear_definition())
    created = await api.post(
        f"/v1/workflows/{workflow_id}/schedules",
        json={"spec": {"interval_s": 3600}, "inputs": INPUTS, "note": "n", "paused": True},
    )
    schedule = created.json()
    cleanup.append(schedule["id"])
    url = f"/v1/schedules/{schedule['id']}"
    fields = ("spec", "inputs", "note", "overlap", "paused", "config_source")

    # An empty PATCH ({}) changes nothing; no body at all is a request without its body.
    patched = await api.patch(url, json={})
    assert patched.status_code == 200, patched.text
    assert {k: patched.json()[k] for k in fields} == {k: schedule[k] for k in fields}
    for content in (b"", None):
        patched = await api.patch(url, content=content)
        assert patched.status_code == 422, patched.text
        assert patched.json()["error"]["details"]["errors"][0]["loc"] == ["body"]

    # Paused, a trigger still starts a run.
    assert (await api.patch(url, json={"paused": True})).json()["paused"] is True
    triggered = await api.post(f"{url}/trigger")
    assert triggered.status_code == 202, triggered.text

    # Deleted twice: 204, then 404; twice at once: one 204, one 404.
    assert (await api.delete(url)).status_code == 204
    again = await api.delete(url)
    assert again.status_code == 404 and again.json()["error"]["code"] == "schedule_not_found"
    other = (
        await api.post(
            f"/v1/workflows/{workflow_id}/schedules",
            json={"spec": {"interval_s": 3600}, "inputs": INPUTS, "paused": True},
        )
    ).json()
    cleanup.append(other["id"])
    both = await asyncio.gather(*(api.delete(f"/v1/schedules/{other['id']}") for _ in range(2)))
    assert sorted(b.status_code for b in both) == [204, 404], [b.text for b in both]


async def test_patches_at_once_all_apply_in_temporal_as_in_the_answer(
    api: httpx.AsyncClient, client: Client, cleanup: list[str]
) -> None:
    """Temporal silently drops a schedule update made from a description that another update
    has changed since: two PATCHes at once both answered 200, the read showed both, and the
    Temporal Schedule (what fires) held only one."""
    workflow_id = await create_published(api, linear_definition())
    created = await api.post(
        f"/v1/workflows/{workflow_id}/schedules",
        json={"spec": {"interval_s": 3600}, "inputs": INPUTS, "paused": True},
    )
    schedule_id = created.json()["id"]
    cleanup.append(schedule_id)
    url = f"/v1/schedules/{schedule_id}"

    first, second = await asyncio.gather(
        api.patch(url, json={"spec": {"interval_s": 7200}, "note": "a"}),
        api.patch(url, json={"paused": False, "overlap": "allow_all"}),
    )
    assert first.status_code == 200 and second.status_code == 200, (first.text, second.text)
    read = (await api.get(url)).json()
    assert read["spec"] == {"interval_s": 7200} and read["note"] == "a", read
    assert read["paused"] is False and read["overlap"] == "allow_all", read
    times = [datetime.fromisoformat(t) for t in read["next_run_times"]]
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(times)} == {7200.0}, times

    # Many at once, each setting the note: the row and Temporal end on the same one.
    answers = await asyncio.gather(*(api.patch(url, json={"note": f"n{i}"}) for i in range(6)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    note = (await api.get(url)).json()["note"]
    described = await client.get_schedule_handle(schedule_id).describe()
    assert described.schedule.state.note == note


async def test_inputs_temporal_cannot_carry_are_refused_when_the_schedule_is_made(
    api: httpx.AsyncClient, cleanup: list[str]
) -> None:
    """Under the 4 MiB JSON rule, but over Temporal's payload limit once compressed (random
    text does not compress): a run start answers 413; a schedule was created (201), and each
    fire then failed after its retries (a trigger answered 503 after 10 s)."""
    workflow_id = await create_published(api, linear_definition())
    noise = base64.b64encode(os.urandom(int(2.9 * MIB))).decode()
    heavy = {"json_inputs": {"meta": {"customer_id": noise}}, "text_inputs": {"note": "x"}}
    url = f"/v1/workflows/{workflow_id}/schedules"
    refused = await api.post(url, json={"spec": {"interval_s": 3600}, "inputs": heavy})
    assert refused.status_code == 413, refused.text[:500]
    assert refused.json()["error"]["code"] == "run_too_large"
    assert (await api.get("/v1/schedules")).json()["data"] == []

    created = await api.post(
        url, json={"spec": {"interval_s": 3600}, "inputs": INPUTS, "paused": True}
    )
    assert created.status_code == 201, created.text
    cleanup.append(created.json()["id"])
    patched = await api.patch(f"/v1/schedules/{created.json()['id']}", json={"inputs": heavy})
    assert patched.status_code == 413, patched.text[:500]
    read = (await api.get(f"/v1/schedules/{created.json()['id']}")).json()
    assert read["inputs"]["json_inputs"] == INPUTS["json_inputs"]


async def test_zones_are_iana_names_also_in_a_cron_prefix(
    api: httpx.AsyncClient, cleanup: list[str]
) -> None:
    """`localtime` (a file of the tzdata directory) and `CRON_TZ=Local` were taken: both
    mean the zone of whatever host reads them (Temporal's server)."""
    workflow_id = await create_published(api, linear_definition())
    url = f"/v1/workflows/{workflow_id}/schedules"
    for spec, where in (
        ({"cron": ["0 9 * * *"], "timezone": "localtime"}, ["body", "spec", "timezone"]),
        ({"cron": ["CRON_TZ=Local 0 9 * * *"]}, ["body", "spec", "cron", 0]),
        ({"cron": ["0 8 * * *", "TZ=Mars/Olympus 0 9 * * *"]}, ["body", "spec", "cron", 1]),
    ):
        refused = await api.post(url, json={"spec": spec, "inputs": INPUTS})
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_schedule_spec", error
        assert [e["loc"] for e in error["details"]["errors"]] == [where], error
    assert (await api.get("/v1/schedules")).json()["data"] == []
    created = await api.post(
        url, json={"spec": {"cron": ["CRON_TZ=Europe/Paris 0 9 * * *"]}, "inputs": INPUTS}
    )
    assert created.status_code == 201, created.text
    cleanup.append(created.json()["id"])
    assert all(t.endswith(("07:00:00Z", "08:00:00Z")) for t in created.json()["next_run_times"])


async def test_calls_racing_a_delete_answer_that_the_schedule_is_missing(
    api: httpx.AsyncClient, cleanup: list[str]
) -> None:
    """A trigger, backfill or PATCH that meets the Temporal Schedule deleted under it answered
    404 `run_not_found` (Temporal's NOT_FOUND, mapped for runs) or 502 (a call cancelled as
    the schedule went): it is the schedule that is missing."""
    workflow_id = await create_published(api, linear_definition())
    backfill = {"start_at": "2020-01-01T00:00:00Z", "end_at": "2020-01-01T05:00:00Z"}
    seen: set[tuple[int, str]] = set()
    for _ in range(12):
        created = await api.post(
            f"/v1/workflows/{workflow_id}/schedules",
            json={"spec": {"interval_s": 3600}, "inputs": INPUTS, "paused": True},
        )
        url = f"/v1/schedules/{created.json()['id']}"
        cleanup.append(created.json()["id"])
        answers = await asyncio.gather(
            api.delete(url),
            api.post(f"{url}/trigger"),
            api.post(f"{url}/backfill", json=backfill),
            api.patch(url, json={"note": "x"}),
            api.delete(url),
        )
        for answer in answers:
            code = answer.json()["error"]["code"] if answer.status_code >= 400 else ""
            seen.add((answer.status_code, code))
    assert seen <= {(204, ""), (202, ""), (200, ""), (404, "schedule_not_found")}, seen


async def test_a_create_cut_short_leaves_no_temporal_schedule_without_its_row(
    api: httpx.AsyncClient, client: Client, cleanup: list[str]
) -> None:
    """A client that hangs up while its schedule is being made (the request cancelled) left,
    now and then, a Temporal Schedule whose row had been removed: it fired launchers that
    failed for ever, and no API call showed or deleted it."""
    workflow_id = await create_published(api, linear_definition())
    organization = (await api.get(f"/v1/workflows/{workflow_id}")).json()["organization_id"]
    body = {"spec": {"interval_s": 3600}, "inputs": INPUTS, "paused": True}
    for attempt in range(60):
        try:
            await asyncio.wait_for(
                api.post(f"/v1/workflows/{workflow_id}/schedules", json=body),
                timeout=0.002 + attempt * 0.001,
            )
        except TimeoutError:
            pass

    async def agree() -> set[str] | None:
        listed = await api.get("/v1/schedules", params={"limit": 200})
        rows = {s["id"] for s in listed.json()["data"]}
        query = f"{search_attributes.ORGANIZATION.name} = '{organization}'"
        in_temporal = {s.id async for s in await client.list_schedules(query=query)}
        cleanup.extend(in_temporal - set(cleanup))
        return rows if rows == in_temporal else None

    await wait_until(agree)


async def test_a_patch_cut_short_leaves_the_row_and_temporal_agreeing(
    api: httpx.AsyncClient, client: Client, cleanup: list[str]
) -> None:
    """A PATCH whose client hangs up after Temporal took the new spec, before the row did:
    the read would show a spec that is not the one that fires."""
    workflow_id = await create_published(api, linear_definition())
    created = await api.post(
        f"/v1/workflows/{workflow_id}/schedules",
        json={"spec": {"interval_s": 3600}, "inputs": INPUTS, "paused": True},
    )
    schedule_id = created.json()["id"]
    cleanup.append(schedule_id)
    url = f"/v1/schedules/{schedule_id}"

    async def agree() -> bool:
        read = (await api.get(url)).json()
        described = await client.get_schedule_handle(schedule_id).describe()
        every = [i.every.total_seconds() for i in described.schedule.spec.intervals]
        return every == [read["spec"]["interval_s"]]

    for attempt in range(40):
        try:
            await asyncio.wait_for(
                api.patch(url, json={"spec": {"interval_s": 60 * (attempt + 2)}}),
                timeout=0.002 + attempt * 0.001,
            )
        except TimeoutError:
            pass
        await wait_until(agree, timeout=3)
