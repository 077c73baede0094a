"""Human review: parallel waits, durable timeouts, and how reviews meet retries."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from temporalio.client import Client

from activities.registry import ActivityDeps, default_registry
from runlane.settings import Settings
from tests.api.helpers import create_published, wait_for_run, wait_until
from tests.conftest import ORG_A_KEY
from tests.peer import Peer
from workflows.worker import create_worker


def _review(node_id: str, **config: object) -> dict:
    return {
        "id": node_id,
        "type": "human_review",
        "label": node_id,
        "config": {"payload": "{{meta}}", **config},
    }


async def _start(api: httpx.AsyncClient, definition: dict) -> str:
    workflow_id = await create_published(api, definition)
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"n": 1}}}
    )
    assert started.status_code == 202, started.text
    return started.json()["id"]


async def _decide(
    api: httpx.AsyncClient, run_id: str, node_id: str, decision: str, **extra: object
) -> httpx.Response:
    return await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/{node_id}", json={"decision": decision, **extra}
    )


PARALLEL_REVIEWS = {
    "nodes": [
        {"id": "meta", "type": "start_json"},
        _review("legal"),
        _review("finance"),
        {"id": "out", "type": "end", "config": {"outputs": {"l": "{{legal}}", "f": "{{finance}}"}}},
    ],
    "edges": [
        {"source": "meta", "target": "legal"},
        {"source": "meta", "target": "finance"},
        {"source": "legal", "target": "out"},
        {"source": "finance", "target": "out"},
    ],
}


async def test_parallel_reviews_wait_together_and_are_answered_one_by_one(
    api: httpx.AsyncClient,
) -> None:
    run_id = await _start(api, PARALLEL_REVIEWS)

    async def both_waiting() -> dict:
        run = await wait_for_run(api, run_id, until={"waiting_for_human"})
        return run if len(run["waiting_for_node_ids"]) == 2 else {}

    run = await wait_until(both_waiting)
    assert sorted(run["waiting_for_node_ids"]) == ["finance", "legal"]
    assert (await _decide(api, run_id, "legal", "approve", data={"ok": "legal"})).status_code == 202

    async def only_finance() -> dict:
        current = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
        return current if current["waiting_for_node_ids"] == ["finance"] else {}

    still = await wait_until(only_finance)
    assert still["status"] == "waiting_for_human"
    assert (await _decide(api, run_id, "finance", "approve")).status_code == 202
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed"
    assert done["final_outputs"] == {"l": {"ok": "legal"}, "f": {"n": 1}}
    assert done["timing"]["human_waiting_started_at"] is None


async def test_timeout_applies_on_timeout_durably(api: httpx.AsyncClient) -> None:
    run_id = await _start(
        api,
        {
            "nodes": [
                {"id": "meta", "type": "start_json"},
                _review("review", timeout_s=1, on_timeout="approve"),
                {"id": "out", "type": "end", "config": {"outputs": "{{review}}"}},
            ],
            "edges": [
                {"source": "meta", "target": "review"},
                {"source": "review", "target": "out"},
            ],
        },
    )
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed"
    assert done["final_outputs"] == {"n": 1}
    steps = (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    review = next(s for s in steps if s["node_id"] == "review")["review"]
    assert review["decision"] == "approve" and review["reviewer"] == "timeout"
    assert done["timing"]["accumulated_human_waiting_ms"] >= 1000


async def test_timeout_without_on_timeout_rejects(api: httpx.AsyncClient) -> None:
    run_id = await _start(
        api,
        {
            "nodes": [
                {"id": "meta", "type": "start_json"},
                _review("review", timeout_s=1),
                {"id": "out", "type": "end"},
            ],
            "edges": [
                {"source": "meta", "target": "review"},
                {"source": "review", "target": "out"},
            ],
        },
    )
    done = await wait_for_run(api, run_id)
    assert done["status"] == "error"
    assert done["error"]["node_id"] == "review"


async def test_retry_after_review_keeps_the_decision(api: httpx.AsyncClient, peer: Peer) -> None:
    """The decision was made before the failure point: the review step is reused."""
    peer.fail("/notify", 1, 500)
    run_id = await _start(
        api,
        {
            "nodes": [
                {"id": "meta", "type": "start_json"},
                _review("review"),
                {
                    "id": "notify",
                    "type": "http_request",
                    "config": {"method": "POST", "url": f"{peer.url}/notify", "body": "{{review}}"},
                    "retry": {"max_attempts": 1},
                },
                {
                    "id": "out",
                    "type": "end",
                    "config": {"outputs": {"sent": "{{notify.body.received}}"}},
                },
            ],
            "edges": [
                {"source": "meta", "target": "review"},
                {"source": "review", "target": "notify"},
                {"source": "notify", "target": "out"},
            ],
        },
    )
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    assert (
        await _decide(api, run_id, "review", "approve", data={"edited": True})
    ).status_code == 202
    failed = await wait_for_run(api, run_id)
    assert failed["status"] == "error" and failed["error"]["node_id"] == "notify"
    plan = (await api.get(f"/v1/workflows/runs/{run_id}/retry-plan")).json()
    assert "review" in plan["reuse"]

    retried = await api.post(f"/v1/workflows/runs/{run_id}/retry")
    assert retried.status_code == 202, retried.text
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed", done
    assert done["final_outputs"] == {"sent": {"edited": True}}
    assert done["waiting_for_node_ids"] == []
    steps = {
        s["node_id"]: s
        for s in (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    }
    assert steps["review"]["review"]["decision"] == "approve"
    assert steps["review"]["attempt"] == 1


async def test_a_decision_before_the_reset_is_not_applied_again(api: httpx.AsyncClient) -> None:
    """A rejection ends the run; retrying resets to the review itself, which must wait for a
    new decision: the old one (an update after the reset point) is not re-applied."""
    run_id = await _start(
        api,
        {
            "nodes": [
                {"id": "meta", "type": "start_json"},
                _review("review"),
                {"id": "out", "type": "end", "config": {"outputs": "{{review}}"}},
            ],
            "edges": [
                {"source": "meta", "target": "review"},
                {"source": "review", "target": "out"},
            ],
        },
    )
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    assert (await _decide(api, run_id, "review", "reject", comment="no")).status_code == 202
    failed = await wait_for_run(api, run_id)
    assert failed["status"] == "error"

    assert (await api.post(f"/v1/workflows/runs/{run_id}/retry")).status_code == 202
    waiting = await wait_for_run(api, run_id, until={"waiting_for_human", "error", "completed"})
    assert waiting["status"] == "waiting_for_human", waiting
    assert waiting["attempt"] == 2
    assert (await _decide(api, run_id, "review", "approve")).status_code == 202
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed"
    assert done["final_outputs"] == {"n": 1}


async def test_runs_evicted_from_the_worker_cache_while_reviews_wait_still_complete(
    app: FastAPI, client: Client, settings: Settings, http_client: httpx.AsyncClient
) -> None:
    """Without a workflow cache every workflow task ends in an eviction, so the run's
    coroutine is closed while both reviews wait, and rebuilt by replay for the next task."""
    deps = ActivityDeps(settings=settings, http_client=http_client)
    async with (
        create_worker(
            client,
            task_queue=settings.task_queue,
            activities=default_registry().activities(deps),
            max_cached_workflows=0,
        ),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://runlane.test",
            headers={"Api-Key": ORG_A_KEY},
        ) as api,
    ):
        run_id = await _start(api, PARALLEL_REVIEWS)

        async def waiting_for(*node_ids: str) -> bool:
            run = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
            return sorted(run["waiting_for_node_ids"]) == sorted(node_ids)

        await wait_until(lambda: waiting_for("finance", "legal"))
        assert (await _decide(api, run_id, "legal", "approve")).status_code == 202
        await wait_until(lambda: waiting_for("finance"))
        assert (await _decide(api, run_id, "finance", "approve")).status_code == 202
        done = await wait_for_run(api, run_id)
        assert done["status"] == "completed"
        assert done["final_outputs"] == {"l": {"n": 1}, "f": {"n": 1}}
