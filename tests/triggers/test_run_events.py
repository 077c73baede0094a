"""End to end: an organization subscribes, starts runs over REST, and its receiver gets the
runs' events, signed, with the run record as the API shows it."""

from __future__ import annotations

from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.api.helpers import (
    create_published,
    linear_definition,
    review_definition,
    wait_for_run,
    wait_until,
)
from tests.peer import Peer
from tests.triggers.events import deliveries, lower_headers, subscribe


def received(peer: Peer, path: str, secret: str) -> list[dict[str, Any]]:
    """The events the receiver got at `path`, each verified as a receiver verifies it."""
    return [
        Webhook(secret).verify(raw, lower_headers(call.headers))
        for call, raw in peer.raw_calls_to(path)
    ]


async def test_a_run_delivers_started_and_completed_with_its_record(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    endpoint = await subscribe(api, f"{peer.url}/runs", ["run.started", "run.completed"])
    workflow_id = await create_published(api, linear_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"json_inputs": {"meta": {"customer_id": "cust_1"}}, "text_inputs": {"note": "hi"}},
    )
    run_id = started.json()["id"]
    await wait_for_run(api, run_id)

    await wait_until(lambda: _count(peer, "/runs", 2))
    events = {event["type"]: event for event in received(peer, "/runs", endpoint["secret"])}

    assert set(events) == {"run.started", "run.completed"}
    record = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
    completed = events["run.completed"]["data"]["run"]
    # The record as the API answers it, but for usage, which comes from the ledger.
    assert "usage" not in completed
    record.pop("usage")
    assert completed == record
    assert completed["final_outputs"] == {"customer": "cust_1"}
    assert events["run.started"]["data"]["run"]["id"] == run_id
    assert events["run.started"]["data"]["run"]["status"] == "running"
    log = await wait_until(lambda: _settled(api, endpoint["id"], 2))
    assert {(d["event_type"], d["status"], d["run_id"]) for d in log} == {
        ("run.started", "succeeded", run_id),
        ("run.completed", "succeeded", run_id),
    }


async def test_a_review_run_delivers_its_review_events(api: httpx.AsyncClient, peer: Peer) -> None:
    endpoint = await subscribe(
        api,
        f"{peer.url}/reviews",
        ["review.requested", "run.waiting_for_human", "review.decided"],
    )
    workflow_id = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 250}}}
    )
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    await wait_until(lambda: _count(peer, "/reviews", 2))
    decided = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review",
        json={"decision": "approve", "reviewer": "ann"},
    )
    assert decided.status_code == 202, decided.text
    await wait_for_run(api, run_id)

    await wait_until(lambda: _count(peer, "/reviews", 3))
    events = received(peer, "/reviews", endpoint["secret"])

    assert sorted(event["type"] for event in events) == [
        "review.decided",
        "review.requested",
        "run.waiting_for_human",
    ]
    assert all(event["data"]["node_id"] == "review" for event in events)
    waiting = next(e for e in events if e["type"] == "run.waiting_for_human")
    assert waiting["data"]["run"]["waiting_for_node_ids"] == ["review"]
    assert waiting["data"]["run"]["status"] == "waiting_for_human"


async def _count(peer: Peer, path: str, at_least: int) -> bool:
    return peer.count(path) >= at_least


async def _settled(api: httpx.AsyncClient, endpoint_id: str, count: int) -> list[dict] | None:
    log = await deliveries(api, endpoint_id)
    done = [entry for entry in log if entry["status"] == "succeeded"]
    return log if len(done) == count else None
