"""`command_id` on start and cancel: a replay answers the first result, enqueues nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from runs.reader import RunReader
from tests.api.helpers import (
    create_published,
    linear_definition,
    read_stale_once,
    review_definition,
    wait_for_run,
    wait_until,
)


def key(name: str) -> str:
    """Unique per test: the Temporal dev server (and so derived run ids) outlives a test."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


INPUTS = {"json_inputs": {"meta": {"customer_id": "c1"}}, "text_inputs": {"note": "n"}}


def delay_definition() -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "wait", "type": "delay", "config": {"seconds": 3600}},
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "in", "target": "wait"}, {"source": "wait", "target": "out"}],
    }


async def listed_run_ids(api: httpx.AsyncClient, workflow_id: str) -> list[str]:
    page = await api.get("/v1/workflows/runs", params={"workflow_id": workflow_id, "limit": "200"})
    assert page.status_code == 200, page.text
    return [run["id"] for run in page.json()["data"]]


async def test_replayed_start_returns_the_first_run(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, linear_definition())
    body = {**INPUTS, "command_id": key("cmd-start-replay")}
    first = await api.post(f"/v1/workflows/{workflow_id}/run", json=body)
    assert first.status_code == 202, first.text
    run_id = first.json()["id"]
    again = await api.post(f"/v1/workflows/{workflow_id}/run", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == run_id
    await wait_for_run(api, run_id)
    # Replayed after the run ended: still the same run, now as it ended.
    late = await api.post(f"/v1/workflows/{workflow_id}/run", json=body)
    assert late.status_code == 200
    assert late.json()["id"] == run_id and late.json()["status"] == "completed"

    async def visible() -> list[str]:
        return await listed_run_ids(api, workflow_id)

    # Exactly one run of this workflow exists, and a single Temporal execution behind it.
    assert await wait_until(visible) == [run_id]
    run = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
    assert run["attempt"] == 1 and len(run["attempts"]) == 1


async def test_concurrent_replays_start_one_run(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, linear_definition())
    body = {**INPUTS, "command_id": key("cmd-start-concurrent")}
    answers = await asyncio.gather(
        *(api.post(f"/v1/workflows/{workflow_id}/run", json=body) for _ in range(20))
    )
    assert sorted(a.status_code for a in answers) == [200] * 19 + [202], [
        a.text for a in answers if a.status_code not in (200, 202)
    ]
    run_ids = {a.json()["id"] for a in answers}
    assert len(run_ids) == 1
    [run_id] = run_ids
    assert (await wait_for_run(api, run_id))["status"] == "completed"

    async def visible() -> list[str]:
        ids = await listed_run_ids(api, workflow_id)
        return ids if ids and all(i == run_id for i in ids) else []

    assert await wait_until(visible) == [run_id]


async def test_same_key_different_body_or_target(api: httpx.AsyncClient) -> None:
    workflow_a = await create_published(api, linear_definition(), name="A")
    workflow_b = await create_published(api, linear_definition(), name="B")
    body = {**INPUTS, "command_id": key("cmd-start-misuse")}
    first = await api.post(f"/v1/workflows/{workflow_a}/run", json=body)
    assert first.status_code == 202

    different = await api.post(
        f"/v1/workflows/{workflow_a}/run", json={**body, "text_inputs": {"note": "other"}}
    )
    assert different.status_code == 422, different.text
    error = different.json()["error"]
    assert error["type"] == "invalid_request" and error["code"] == "command_id_body_mismatch"

    elsewhere = await api.post(f"/v1/workflows/{workflow_b}/run", json=body)
    assert elsewhere.status_code == 409, elsewhere.text
    error = elsewhere.json()["error"]
    assert error["type"] == "conflict" and error["code"] == "command_id_reused"

    # The same key for another operation (cancel) on the run it started: also a conflict.
    as_cancel = await api.post(
        f"/v1/workflows/runs/{first.json()['id']}/cancel", json={"command_id": body["command_id"]}
    )
    assert as_cancel.status_code == 409 and as_cancel.json()["error"]["code"] == "command_id_reused"

    # A key the store cannot hold (PostgreSQL refuses NUL) is refused on every store.
    unstorable = await api.post(
        f"/v1/workflows/{workflow_a}/run", json={**INPUTS, "command_id": "cmd\x00start"}
    )
    assert unstorable.status_code == 422, unstorable.text
    assert unstorable.json()["error"]["details"]["errors"][0]["loc"] == ["body", "command_id"]

    # None of the refusals started anything.
    await wait_for_run(api, first.json()["id"])
    assert await wait_until(lambda: listed_run_ids(api, workflow_a)) == [first.json()["id"]]
    assert await listed_run_ids(api, workflow_b) == []

    # Keys are scoped to the organization: org_b may use the same command_id freely.
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Api-Key": "key_org_b"}
    ) as other:
        foreign_workflow = await create_published(other, linear_definition())
        foreign = await other.post(f"/v1/workflows/{foreign_workflow}/run", json=body)
        assert foreign.status_code == 202, foreign.text
        assert foreign.json()["id"] != first.json()["id"]
        assert (await wait_for_run(other, foreign.json()["id"]))["status"] == "completed"


async def test_replayed_cancel_answers_200(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, delay_definition())
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"in": "x"}})
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, until={"running"})
    cancel = {"command_id": key("cmd-cancel-replay")}
    first = await api.post(f"/v1/workflows/runs/{run_id}/cancel", json=cancel)
    assert first.status_code == 202, first.text
    assert first.json()["id"] == run_id
    assert (await wait_for_run(api, run_id))["status"] == "cancelled"

    # The run has ended, yet the replay of the accepted cancel is not a conflict.
    again = await api.post(f"/v1/workflows/runs/{run_id}/cancel", json=cancel)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == run_id and again.json()["status"] == "cancelled"
    # A new cancel (no key, or another key) of the ended run is.
    assert (await api.post(f"/v1/workflows/runs/{run_id}/cancel")).status_code == 409
    other_key = await api.post(
        f"/v1/workflows/runs/{run_id}/cancel", json={"command_id": key("cmd-cancel-other")}
    )
    assert other_key.status_code == 409 and other_key.json()["error"]["code"] == "run_ended"


async def test_concurrent_cancel_replays(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, delay_definition())
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"in": "x"}})
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, until={"running"})
    cancel = {"command_id": key("cmd-cancel-concurrent")}
    answers = await asyncio.gather(
        *(api.post(f"/v1/workflows/runs/{run_id}/cancel", json=cancel) for _ in range(10))
    )
    assert sorted(a.status_code for a in answers) == [200] * 9 + [202], [a.text for a in answers]
    done = await wait_for_run(api, run_id)
    assert done["status"] == "cancelled"
    steps = (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    assert {s["node_id"]: s["status"] for s in steps} == {
        "in": "completed",
        "wait": "cancelled",
        "out": "pending",
    }


async def test_a_cancel_meeting_a_run_that_just_ended(
    api: httpx.AsyncClient, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporal answers "already completed" for a run that ended since it was read: that is
    409 run_ended (it was 404 "No such run"), and for the replay of the cancel that ended it,
    200 with the run."""
    workflow_id = await create_published(api, delay_definition())
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"in": "x"}})
    run_id, org = started.json()["id"], started.json()["organization_id"]
    await wait_for_run(api, run_id, until={"running"})
    running = await RunReader(client).get(org, run_id)
    cancel = {"command_id": key("cmd-cancel-stale")}
    first = await api.post(f"/v1/workflows/runs/{run_id}/cancel", json=cancel)
    assert first.status_code == 202, first.text
    assert (await wait_for_run(api, run_id))["status"] == "cancelled"

    read_stale_once(monkeypatch, run_id, running)
    replay = await api.post(f"/v1/workflows/runs/{run_id}/cancel", json=cancel)
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == run_id

    # A run that completed otherwise since it was read: too late to cancel.
    reviewed = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{reviewed}/run", json={"json_inputs": {"meta": {"amount": 1}}}
    )
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    waiting = await RunReader(client).get(org, run_id)
    approved = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "approve"}
    )
    assert approved.status_code == 202, approved.text
    assert (await wait_for_run(api, run_id))["status"] == "completed"
    read_stale_once(monkeypatch, run_id, waiting)
    late = await api.post(f"/v1/workflows/runs/{run_id}/cancel")
    assert late.status_code == 409, late.text
    assert late.json()["error"]["code"] == "run_ended"
