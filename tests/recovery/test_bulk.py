"""Bulk operations (API.md part 2 "Recovery: more"), end to end: a real dev server, a real
worker, a real peer; every assertion is on what the REST API answers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.worker import Replayer

from activities.registry import ActivityDeps, default_registry
from api.deps import get_api_settings
from bulk.wiring import bulk_work
from bulk.workflow import BulkOperationWorkflow
from runlane.converter import data_converter
from runlane.settings import Settings
from store.db import Database
from store.secrets import SecretRepository
from tests.api.helpers import (
    create_published,
    review_definition,
    wait_for_run,
    wait_until,
)
from tests.conftest import ORG_A_KEY
from tests.peer import Peer
from tests.recovery.support import (
    RUNS,
    chain,
    failing_chain,
    get_run,
    start_run,
    wait_for_step,
)
from workflows.worker import create_worker

BULK = f"{RUNS}/bulk"


def delay(seconds: float) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "note", "type": "start_text"},
            {"id": "wait", "type": "delay", "config": {"seconds": seconds}},
            {"id": "out", "type": "end", "config": {"outputs": {"note": "{{note.text}}"}}},
        ],
        "edges": chain("note", "wait", "out"),
    }


async def failed_runs(api: httpx.AsyncClient, peer: Peer, count: int) -> tuple[str, list[str]]:
    """A workflow and `count` of its runs in error, listed as such (visibility caught up)."""
    workflow_id = await create_published(api, failing_chain(peer))
    peer.fail("/b", count, 503)
    run_ids = [
        (await start_run(api, workflow_id, text_inputs={"note": str(i)}))["id"]
        for i in range(count)
    ]
    for run_id in run_ids:
        assert (await wait_for_run(api, run_id))["status"] == "error"
    await listed(api, count, workflow_id=workflow_id, status="error")
    return workflow_id, run_ids


async def listed(api: httpx.AsyncClient, count: int, **params: str) -> list[str]:
    async def enough() -> list[str] | None:
        page = (await api.get(RUNS, params={**params, "limit": "200"})).json()["data"]
        return [run["id"] for run in page] if len(page) == count else None

    result: list[str] = await wait_until(enough)
    return result


async def bulk(api: httpx.AsyncClient, body: dict[str, Any], expected: int = 202) -> dict:
    response = await api.post(BULK, json=body)
    assert response.status_code == expected, response.text
    return response.json()  # type: ignore[no-any-return]


async def finished(api: httpx.AsyncClient, bulk_id: str, timeout: float = 60.0) -> dict:
    async def done() -> dict[str, Any] | None:
        response = await api.get(f"{BULK}/{bulk_id}", params={"limit": "200"})
        assert response.status_code == 200, response.text
        operation = response.json()
        return operation if operation["status"] != "running" else None

    result: dict[str, Any] = await wait_until(done, timeout=timeout)
    return result


def outcomes_by_run(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {outcome["run_id"]: outcome for outcome in operation["outcomes"]["data"]}


def assert_error_body(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "code", "message", "details"}, error
    if code is not None:
        assert error["code"] == code, error
    return error  # type: ignore[no-any-return]


# ---------------------------------------------------------------- actions


async def test_bulk_retry_retries_every_failed_run_once_the_peer_recovers(
    api: httpx.AsyncClient, peer: Peer, client: Client
) -> None:
    workflow_id, run_ids = await failed_runs(api, peer, 3)

    started = await bulk(
        api, {"action": "retry", "filter": {"workflow_id": workflow_id, "status": "error"}}
    )
    assert started["id"].startswith("bulk_") and started["matched"] == 3
    assert started["status"] == "running" and started["action"] == "retry"
    assert set(started["progress"]) >= {"done", "succeeded", "failed"}

    operation = await finished(api, started["id"])
    assert operation["status"] == "completed"
    assert operation["progress"] == {"done": 3, "succeeded": 3, "failed": 0, "skipped": 0}
    assert set(outcomes_by_run(operation)) == set(run_ids)
    assert all(o["status"] == "succeeded" for o in operation["outcomes"]["data"])
    for run_id in run_ids:
        run = await wait_for_run(api, run_id, until={"completed"})
        assert run["attempt"] == 2, run
    # The operation's history replays with today's code, in the sandbox (a worker restart).
    history = await client.get_workflow_handle(started["id"]).fetch_history()
    replayer = Replayer(workflows=[BulkOperationWorkflow], data_converter=data_converter())
    await replayer.replay_workflow(history)


async def test_bulk_cancel_by_filter_cancels_the_waiting_runs(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, review_definition())
    run_ids = [
        (await start_run(api, workflow_id, json_inputs={"meta": {"amount": i}}))["id"]
        for i in range(2)
    ]
    for run_id in run_ids:
        await wait_for_run(api, run_id, until={"waiting_for_human"})
    await listed(api, 2, workflow_id=workflow_id, status="waiting_for_human")

    started = await bulk(
        api,
        {"action": "cancel", "filter": {"workflow_id": workflow_id, "status": "waiting_for_human"}},
    )
    assert started["matched"] == 2
    operation = await finished(api, started["id"])
    assert operation["progress"]["succeeded"] == 2, operation
    for run_id in run_ids:
        assert (await wait_for_run(api, run_id))["status"] == "cancelled"


async def test_bulk_restart_reports_each_new_run(api: httpx.AsyncClient, peer: Peer) -> None:
    workflow_id = await create_published(api, delay(0))
    sources = [(await start_run(api, workflow_id, text_inputs={"note": "x"}))["id"] for _ in "ab"]
    for run_id in sources:
        assert (await wait_for_run(api, run_id))["status"] == "completed"

    started = await bulk(api, {"action": "restart", "filter": {"run_ids": sources}})
    operation = await finished(api, started["id"])
    outcomes = outcomes_by_run(operation)
    assert set(outcomes) == set(sources)
    for source, outcome in outcomes.items():
        assert outcome["status"] == "succeeded" and outcome["result_run_id"], outcome
        new_run = await wait_for_run(api, outcome["result_run_id"])
        assert new_run["trigger"] == {**new_run["trigger"], "type": "restart"}
        assert new_run["trigger"]["source_run_id"] == source
        assert new_run["status"] == "completed"


async def test_runs_that_may_not_be_retried_are_reported_and_left_untouched(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    _, [failed] = await failed_runs(api, peer, 1)
    quick = await create_published(api, delay(0))
    completed = (await start_run(api, quick, text_inputs={"note": "x"}))["id"]
    assert (await wait_for_run(api, completed))["status"] == "completed"
    slow = await create_published(api, delay(600))
    running = (await start_run(api, slow, text_inputs={"note": "x"}))["id"]
    await wait_for_step(api, running, "wait", "running")

    started = await bulk(
        api, {"action": "retry", "filter": {"run_ids": [failed, completed, running]}}
    )
    operation = await finished(api, started["id"])
    assert operation["progress"] == {"done": 3, "succeeded": 1, "failed": 2, "skipped": 0}
    outcomes = outcomes_by_run(operation)
    assert outcomes[failed]["status"] == "succeeded"
    for refused in (completed, running):
        outcome = outcomes[refused]
        assert outcome["status"] == "failed", outcome
        assert outcome["error"]["type"] == "conflict", outcome
        assert outcome["error"]["code"] == "retry_not_allowed", outcome
        assert outcome["error"]["message"]
    assert (await get_run(api, completed))["attempt"] == 1
    still = await get_run(api, running)
    assert (still["status"], still["attempt"]) == ("running", 1)
    assert (await api.post(f"{RUNS}/{running}/cancel")).status_code == 202


async def test_dry_run_lists_the_runs_and_their_plans_and_changes_nothing(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id, run_ids = await failed_runs(api, peer, 2)
    calls_before = peer.count("/b")

    response = await api.post(
        BULK,
        json={
            "action": "retry",
            "filter": {"workflow_id": workflow_id, "status": "error"},
            "dry_run": True,
        },
    )
    assert response.status_code == 200, response.text
    dry = response.json()
    assert dry["dry_run"] is True and dry["matched"] == 2
    assert {entry["run_id"] for entry in dry["runs"]} == set(run_ids)
    for entry in dry["runs"]:
        assert entry["status"] == "error"
        plan = entry["plan"]
        assert plan["allowed"] is True and "a" in plan["reuse"] and "b" in plan["rerun"], plan

    cancel = await bulk(
        api,
        {"action": "cancel", "filter": {"workflow_id": workflow_id}, "dry_run": True},
        expected=200,
    )
    assert cancel["matched"] == 2 and all(entry["plan"] is None for entry in cancel["runs"])
    for run_id in run_ids:
        run = await get_run(api, run_id)
        assert (run["status"], run["attempt"]) == ("error", 1)
    assert peer.count("/b") == calls_before


async def test_a_command_id_replay_answers_the_same_operation(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id, run_ids = await failed_runs(api, peer, 2)
    body = {
        "action": "retry",
        "filter": {"workflow_id": workflow_id, "status": "error"},
        "command_id": f"bulk-{uuid.uuid4().hex}",
    }
    first = await bulk(api, body)
    operation = await finished(api, first["id"])
    assert operation["progress"]["succeeded"] == 2
    calls = peer.count("/b")

    again = await bulk(api, body, expected=200)
    assert again["id"] == first["id"] and again["status"] == "completed"
    assert again["progress"] == operation["progress"]
    for run_id in run_ids:
        assert (await get_run(api, run_id))["attempt"] == 2
    assert peer.count("/b") == calls

    other = await api.post(BULK, json={**body, "action": "cancel"})
    assert_error_body(other, 422, "command_id_body_mismatch")


# ---------------------------------------------------------------- durability and pace


@asynccontextmanager
async def bulk_worker(
    client: Client, settings: Settings, database: Database, http: httpx.AsyncClient
) -> AsyncIterator[None]:
    """A worker as worker.py wires it (node activities and bulk operations): a new one
    stands for a restarted worker process."""
    deps = ActivityDeps(
        settings=settings,
        http_client=http,
        secrets=SecretRepository(database, settings.secret_keys()),
    )
    work = bulk_work(client=client, database=database, settings=settings)
    async with create_worker(
        client,
        task_queue=settings.task_queue,
        activities=[*default_registry().activities(deps), *work.activities],
        workflows=work.workflows,
        identity=f"worker-{uuid.uuid4().hex[:8]}",
        # A restart as SIGTERM does it: what the worker is running ends first (a node killed
        # mid-request would fail its run, which is no bulk operation's business).
        graceful_shutdown_timeout=timedelta(seconds=10),
    ):
        yield


async def test_progress_shows_while_it_runs_and_a_worker_restart_loses_nothing(
    app: FastAPI,
    client: Client,
    settings: Settings,
    database: Database,
    http_client: httpx.AsyncClient,
    peer: Peer,
) -> None:
    # One action a second, one at a time: slow enough to watch, and to restart in between.
    paced = settings.model_copy(update={"bulk_rate_per_s": 1.0, "bulk_concurrency": 1})
    app.dependency_overrides[get_api_settings] = lambda: paced
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runlane.test", headers={"Api-Key": ORG_A_KEY}
    ) as api:
        async with bulk_worker(client, paced, database, http_client):
            workflow_id, run_ids = await failed_runs(api, peer, 4)
            started = await bulk(
                api, {"action": "retry", "filter": {"workflow_id": workflow_id, "status": "error"}}
            )
            bulk_id = started["id"]

            async def partly_done() -> dict[str, Any] | None:
                operation = (await api.get(f"{BULK}/{bulk_id}")).json()
                done = operation["progress"]["done"]
                return operation if 1 <= done < 4 else None

            midway = await wait_until(partly_done, timeout=30)
        assert midway["status"] == "running" and midway["matched"] == 4
        assert len(midway["outcomes"]["data"]) == midway["progress"]["done"]

        # No worker now: the operation is still readable, and still running.
        paused = (await api.get(f"{BULK}/{bulk_id}")).json()
        assert paused["status"] == "running" and paused["progress"]["done"] < 4

        async with bulk_worker(client, paced, database, http_client):
            operation = await finished(api, bulk_id)
            assert operation["status"] == "completed"
            assert operation["progress"] == {"done": 4, "succeeded": 4, "failed": 0, "skipped": 0}
            for run_id in run_ids:
                run = await wait_for_run(api, run_id, until={"completed"})
                assert run["attempt"] == 2, run
        # Each run retried exactly once: `b` called once more per run, never twice.
        assert peer.count("/b") == 8


# ---------------------------------------------------------------- hostile input


async def test_hostile_input_is_answered_with_4xx_and_the_error_body(
    api: httpx.AsyncClient, org_b: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id, [run_id] = await failed_runs(api, peer, 1)
    bad_bodies: list[Any] = [
        {"action": "explode", "filter": {"workflow_id": workflow_id}},
        {"action": "retry"},
        {"action": "retry", "filter": {}},
        {"action": "retry", "filter": {"status": 5}},
        {"action": "retry", "filter": {"status": "sleeping"}},
        {"action": "retry", "filter": {"trigger_type": ["api"]}},
        {"action": "retry", "filter": {"run_ids": "run_x"}},
        {"action": "retry", "filter": {"run_ids": []}},
        {"action": "retry", "filter": {"run_ids": ["not-a-run"]}},
        {"action": "retry", "filter": {"run_ids": [None]}},
        {"action": "retry", "filter": {"created_after": "yesterday"}},
        {"action": "retry", "filter": {"created_after": "2024-01-01T00:00:00"}},
        {"action": "retry", "filter": {"created_before": 1700000000}},
        {
            "action": "retry",
            "filter": {
                "created_after": "2024-02-01T00:00:00Z",
                "created_before": "2024-01-01T00:00:00Z",
            },
        },
        {"action": "retry", "filter": {"workflow_id": "wf' OR 1=1"}},
        {"action": "retry", "filter": {"workflow_id": workflow_id, "colour": "red"}},
        {"action": "retry", "filter": {"workflow_id": workflow_id}, "dry_run": "perhaps"},
        {"action": "retry", "filter": {"workflow_id": workflow_id}, "command_id": ""},
        {"action": "retry", "filter": {"run_ids": [f"run_{'0' * 32}"]}},
        [],
        "retry",
        None,
    ]
    for body in bad_bodies:
        response = await api.post(BULK, json=body)
        error = assert_error_body(response, 422)
        assert error["type"] == "invalid_request", (body, error)

    empty = assert_error_body(await api.post(BULK, json={"action": "retry", "filter": {}}), 422)
    assert empty["code"] == "filter_required"
    assert ["body", "filter"] in [problem["loc"] for problem in empty["details"]["errors"]]

    not_json = await api.post(BULK, content=b"{", headers={"content-type": "application/json"})
    assert 400 <= not_json.status_code < 500 and "error" in not_json.json()

    for unknown in ("bulk_nope", f"bulk_{'0' * 32}", "x" * 300, "bulk_%00"):
        assert_error_body(await api.get(f"{BULK}/{unknown}"), 404)

    started = await bulk(api, {"action": "cancel", "filter": {"run_ids": [run_id]}})
    operation = await finished(api, started["id"])
    assert operation["outcomes"]["data"][0]["error"]["code"] == "run_ended"
    assert_error_body(
        await api.get(f"{BULK}/{started['id']}", params={"cursor": "garbage"}),
        422,
        "invalid_cursor",
    )
    assert_error_body(await api.get(f"{BULK}/{started['id']}", params={"limit": "0"}), 422)

    # Another organization sees neither the operation nor its runs (named like missing ones).
    assert_error_body(await org_b.get(f"{BULK}/{started['id']}"), 404)
    # Another organization's run is named like a missing one.
    foreign = await org_b.post(BULK, json={"action": "retry", "filter": {"run_ids": [run_id]}})
    assert_error_body(foreign, 422, "invalid_filter")
    assert run_id in foreign.json()["error"]["message"]
    assert_error_body(await api.get(f"{BULK}/{started['id']}", headers={"Api-Key": "nope"}), 401)
