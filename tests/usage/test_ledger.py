"""The side-effect ledger and usage, end to end: a real worker sends requests to a real peer on
127.0.0.1, and what the API answers shows every request sent, across activity retries and run
retries, with secrets as `***`; usage per step, per run, and per organization over time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.api.helpers import create_published, wait_for_run
from tests.conftest import ORG_B_KEY
from tests.peer import Peer

FAST_RETRIES = {"max_attempts": 3, "initial_interval_s": 0.1, "backoff": 1.0}


def call_definition(url: str, retry: dict[str, Any] | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {
        "id": "call",
        "type": "http_request",
        "label": "Call the peer",
        "config": {"method": "POST", "url": url, "body": {"customer": "{{meta.customer_id}}"}},
    }
    if retry is not None:
        call["retry"] = retry
    return {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            call,
            {"id": "out", "type": "end", "config": {"outputs": {"status": "{{call.status}}"}}},
        ],
        "edges": [{"source": "meta", "target": "call"}, {"source": "call", "target": "out"}],
    }


async def run_to_end(api: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"customer_id": "c1"}}}
    )
    assert started.status_code == 202, started.text
    return await wait_for_run(api, started.json()["id"])


async def steps_of(api: httpx.AsyncClient, run_id: str) -> dict[str, dict[str, Any]]:
    answer = await api.get(f"/v1/workflows/runs/{run_id}/steps")
    assert answer.status_code == 200, answer.text
    return {step["node_id"]: step for step in answer.json()["data"]}


def counts(usage: dict[str, Any]) -> tuple[int, int, int]:
    return usage["nodes_executed"], usage["activity_attempts"], usage["http_requests"]


async def test_every_request_of_every_activity_attempt_is_in_the_ledger(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    peer.fail("/flaky", 2, status=503)
    workflow_id = await create_published(api, call_definition(f"{peer.url}/flaky", FAST_RETRIES))
    run = await run_to_end(api, workflow_id)
    assert run["status"] == "completed", run
    run_id = run["id"]

    steps = await steps_of(api, run_id)
    effects = steps["call"]["effects"]
    assert [(e["attempt"], e["activity_attempt"], e["status_code"]) for e in effects] == [
        (1, 1, 503),
        (1, 2, 503),
        (1, 3, 200),
    ]
    for effect in effects:
        assert effect["method"] == "POST"
        assert effect["url"] == f"{peer.url}/flaky"
        assert effect["idempotency_key"] == f"{run_id}:call"
        assert datetime.fromisoformat(effect["at"]) <= datetime.now(UTC)
    assert [e["at"] for e in effects] == sorted(e["at"] for e in effects)
    # Pure nodes send nothing: no ledger on their steps, usage only.
    assert "effects" not in steps["meta"] and "effects" not in steps["out"]

    call_usage = steps["call"]["usage"]
    assert counts(call_usage) == (1, 3, 3)
    sent = sum(len(raw) for _, raw in peer.raw_calls_to("/flaky"))
    assert sent > 0 and call_usage["http_bytes_sent"] == sent
    assert call_usage["http_bytes_received"] > 0 and call_usage["cost"] == {}
    assert counts(steps["meta"]["usage"]) == (1, 0, 0)
    assert counts(steps["out"]["usage"]) == (1, 0, 0)

    record = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
    assert counts(record["usage"]) == (3, 3, 3)
    assert record["usage"]["http_bytes_sent"] == sent
    assert record["usage"]["http_bytes_received"] == call_usage["http_bytes_received"]
    one = (await api.get(f"/v1/workflows/runs/{run_id}/steps/call")).json()
    assert one["effects"] == effects and one["usage"] == call_usage
    listed = (await api.get("/v1/workflows/runs", params={"workflow_id": workflow_id})).json()
    assert [r["usage"] for r in listed["data"]] == [record["usage"]]


async def test_a_retried_run_shows_the_requests_of_both_attempts(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    peer.fail("/once", 1, status=500)
    definition = call_definition(f"{peer.url}/once", {"max_attempts": 1})
    workflow_id = await create_published(api, definition)
    failed = await run_to_end(api, workflow_id)
    assert failed["status"] == "error", failed
    run_id = failed["id"]
    assert [e["status_code"] for e in (await steps_of(api, run_id))["call"]["effects"]] == [500]

    retried = await api.post(f"/v1/workflows/runs/{run_id}/retry", json={})
    assert retried.status_code == 202, retried.text
    done = await wait_for_run(api, run_id, {"completed"})
    assert done["attempt"] == 2

    steps = await steps_of(api, run_id)
    assert [
        (e["attempt"], e["activity_attempt"], e["status_code"]) for e in steps["call"]["effects"]
    ] == [(1, 1, 500), (2, 1, 200)]
    assert peer.count("/once") == 2
    # The start node completed before the failure point: reused, not executed again.
    assert counts(steps["meta"]["usage"]) == (1, 0, 0)
    assert counts(steps["call"]["usage"]) == (2, 2, 2)
    assert counts(done["usage"]) == (4, 2, 2)


async def test_a_secret_in_the_url_never_shows(api: httpx.AsyncClient, peer: Peer) -> None:
    value = "tok-Zq8x-7c1f-secret"
    put = await api.put("/v1/secrets/peer_token", json={"value": value})
    assert put.status_code == 200, put.text
    url = f"{peer.url}/hook?token={{{{$secrets.peer_token}}}}"
    workflow_id = await create_published(api, call_definition(url))
    run = await run_to_end(api, workflow_id)
    assert run["status"] == "completed", run
    assert peer.count(f"/hook?token={value}") == 1  # the peer got the value itself

    run_id = run["id"]
    steps = await steps_of(api, run_id)
    [effect] = steps["call"]["effects"]
    assert effect["url"] == f"{peer.url}/hook?token=***"
    answers = [
        await api.get(f"/v1/workflows/runs/{run_id}"),
        await api.get(f"/v1/workflows/runs/{run_id}/steps"),
        await api.get(f"/v1/workflows/runs/{run_id}/steps/call"),
        await api.get("/v1/workflows/runs", params={"workflow_id": workflow_id}),
        await api.get("/v1/usage"),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert value not in answer.text
        assert "tok-Zq8x" not in answer.text


async def test_usage_sums_the_organizations_runs_by_workflow_and_time(
    api: httpx.AsyncClient, app: Any, peer: Peer
) -> None:
    before = datetime.now(UTC)
    first_wf = await create_published(api, call_definition(f"{peer.url}/a"), name="first")
    other_wf = await create_published(api, call_definition(f"{peer.url}/b"), name="other")
    assert (await run_to_end(api, first_wf))["status"] == "completed"
    between = datetime.now(UTC)
    assert (await run_to_end(api, first_wf))["status"] == "completed"
    assert (await run_to_end(api, other_wf))["status"] == "completed"

    async def usage(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
        answer = await client.get("/v1/usage", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    everything = await usage(api)
    assert everything["from"] is None and everything["workflow_id"] is None
    assert datetime.fromisoformat(everything["to"]) >= between
    assert counts(everything["usage"]) == (9, 3, 3)
    assert everything["usage"]["http_bytes_sent"] > 0
    assert everything["usage"]["cost"] == {}

    of_first = await usage(api, workflow_id=first_wf)
    assert of_first["workflow_id"] == first_wf
    assert counts(of_first["usage"]) == (6, 2, 2)
    since = await usage(api, **{"from": between.isoformat()})
    assert datetime.fromisoformat(since["from"]) == between
    assert counts(since["usage"]) == (6, 2, 2)
    window = await usage(api, **{"from": before.isoformat(), "to": between.isoformat()})
    assert counts(window["usage"]) == (3, 1, 1)
    assert counts((await usage(api, **{"to": before.isoformat()}))["usage"]) == (0, 0, 0)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runlane.test", headers={"Api-Key": ORG_B_KEY}
    ) as other_org:
        assert counts((await usage(other_org))["usage"]) == (0, 0, 0)
        assert counts((await usage(other_org, workflow_id=first_wf))["usage"]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-01-01"}, "from"),
        ({"from": "2026-01-01T00:00:00"}, "from"),
        ({"to": "1700000000"}, "to"),
        ({"from": "9999-12-31T23:59:59-23:59"}, "from"),
        ({"to": "0001-01-01T00:00:00+23:59"}, "to"),
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
        ({"workflow_id": "wf_x' OR 1=1 --"}, "workflow_id"),
        ({"workflow_id": "wf_\x00"}, "workflow_id"),
        ({"workflow_id": "w" * 5000}, "workflow_id"),
        ({"from": "\uff12\uff10\uff12\uff16-01-01T00:00:00Z"}, "from"),
    ],
)
async def test_hostile_usage_queries_are_refused_naming_the_parameter(
    api: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    answer = await api.get("/v1/usage", params=params)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request"
    assert {"type", "code", "message", "details"} <= set(error)
    assert any(problem["loc"][-1] == field for problem in error["details"]["errors"]), error


@pytest.mark.parametrize(
    "query", ["from=%FF%FE", "to=2026-01-01T00:00:00%00Z", "workflow_id=%FF", "from=&to="]
)
async def test_undecodable_usage_queries_are_refused(api: httpx.AsyncClient, query: str) -> None:
    answer = await api.get(f"/v1/usage?{query}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["type"] == "invalid_request"


async def test_usage_needs_an_api_key(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runlane.test") as anon:
        answer = await anon.get("/v1/usage")
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication"


async def test_a_maps_items_requests_are_the_map_steps_effects(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    definition = {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {
                "id": "each",
                "type": "map",
                "config": {
                    "items": "{{meta.ids}}",
                    "node": {
                        "type": "http_request",
                        "config": {"method": "PUT", "url": f"{peer.url}/items/{{{{$item}}}}"},
                    },
                },
            },
            {"id": "out", "type": "end", "config": {"outputs": "{{each.items}}"}},
        ],
        "edges": [{"source": "meta", "target": "each"}, {"source": "each", "target": "out"}],
    }
    workflow_id = await create_published(api, definition)
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"ids": [7, 8, 9]}}}
    )
    run = await wait_for_run(api, started.json()["id"])
    assert run["status"] == "completed", run
    steps = await steps_of(api, run["id"])
    effects = steps["each"]["effects"]
    assert sorted(e["url"] for e in effects) == [f"{peer.url}/items/{i}" for i in (7, 8, 9)]
    assert {(e["attempt"], e["activity_attempt"], e["status_code"]) for e in effects} == {
        (1, 1, 200)
    }
    assert sorted(e["idempotency_key"] for e in effects) == [
        f"{run['id']}:each[{i}]" for i in range(3)
    ]
    assert counts(steps["each"]["usage"]) == (3, 3, 3)
    assert counts(run["usage"]) == (5, 3, 3)


async def test_a_run_retried_from_the_start_keeps_its_first_attempts_requests(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    peer.fail("/again", 1, status=500)
    definition = call_definition(f"{peer.url}/again", {"max_attempts": 1})
    workflow_id = await create_published(api, definition)
    failed = await run_to_end(api, workflow_id)
    assert failed["status"] == "error", failed
    retried = await api.post(
        f"/v1/workflows/runs/{failed['id']}/retry",
        json={"from": "start", "json_inputs": {"meta": {"customer_id": "c2"}}},
    )
    assert retried.status_code == 202, retried.text
    done = await wait_for_run(api, failed["id"], {"completed"})
    steps = await steps_of(api, done["id"])
    assert [(e["attempt"], e["status_code"]) for e in steps["call"]["effects"]] == [
        (1, 500),
        (2, 200),
    ]
    # Everything ran twice: the start node too.
    assert counts(steps["meta"]["usage"]) == (2, 0, 0)
    assert counts(done["usage"]) == (5, 2, 2)


async def test_a_child_run_has_usage_of_its_own(api: httpx.AsyncClient, peer: Peer) -> None:
    child_id = await create_published(api, call_definition(f"{peer.url}/child"), name="child")
    parent = {
        "nodes": [
            {"id": "order", "type": "start_json"},
            {
                "id": "sub",
                "type": "subworkflow",
                "config": {
                    "workflow_id": child_id,
                    "json_inputs": {"meta": {"customer_id": "{{order.customer_id}}"}},
                },
            },
            {"id": "out", "type": "end", "config": {"outputs": {"child": "{{sub}}"}}},
        ],
        "edges": [{"source": "order", "target": "sub"}, {"source": "sub", "target": "out"}],
    }
    parent_id = await create_published(api, parent, name="parent")
    started = await api.post(
        f"/v1/workflows/{parent_id}/run", json={"json_inputs": {"order": {"customer_id": "c"}}}
    )
    run = await wait_for_run(api, started.json()["id"])
    assert run["status"] == "completed", run
    steps = await steps_of(api, run["id"])
    # The subworkflow node prepared its child in one local activity; the child's request is
    # the child's.
    assert counts(steps["sub"]["usage"]) == (1, 1, 0)
    assert counts(run["usage"]) == (3, 1, 0)
    child = await wait_for_run(api, steps["sub"]["child_run_id"])
    assert counts(child["usage"]) == (3, 1, 1)
    assert len((await steps_of(api, child["id"]))["call"]["effects"]) == 1
