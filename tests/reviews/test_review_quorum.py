"""Review forms and quorum: data_schema, assignees, approvals_required, escalation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client

from activities.registry import ActivityDeps, default_registry
from runlane.settings import Settings
from tests.api.helpers import assert_replays, create_published, wait_for_run, wait_until
from tests.conftest import ORG_A_KEY
from workflows.models import ReviewDecision
from workflows.run_workflow import RunWorkflow
from workflows.worker import create_worker

AMOUNT_SCHEMA = {
    "type": "object",
    "properties": {"amount": {"type": "number", "maximum": 5000}, "note": {"type": "string"}},
    "required": ["amount"],
}


def reviewed(**config: Any) -> dict[str, Any]:
    """start -> review (with `config`) -> end; the end outputs what the review output."""
    return {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {
                "id": "review",
                "type": "human_review",
                "label": "Approve payout",
                "config": {"instructions": "Check", "payload": {"amount": "{{meta.amount}}"}}
                | config,
            },
            {"id": "out", "type": "end", "config": {"outputs": "{{review}}"}},
        ],
        "edges": [{"source": "meta", "target": "review"}, {"source": "review", "target": "out"}],
    }


async def start(api: httpx.AsyncClient, definition: dict[str, Any]) -> str:
    workflow_id = await create_published(api, definition)
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 1200}}}
    )
    assert started.status_code == 202, started.text
    run_id: str = started.json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    return run_id


async def decide(api: httpx.AsyncClient, run_id: str, **body: Any) -> httpx.Response:
    return await api.post(f"/v1/workflows/runs/{run_id}/reviews/review", json=body)


async def inbox(api: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await api.get("/v1/reviews", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def inbox_item(api: httpx.AsyncClient, run_id: str, node_id: str = "review") -> dict:
    async def item() -> dict | None:
        return next(
            (i for i in await inbox(api) if i["run_id"] == run_id and i["node_id"] == node_id),
            None,
        )

    found: dict = await wait_until(item)
    return found


async def step(api: httpx.AsyncClient, run_id: str, node_id: str = "review") -> dict:
    steps = (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    return next(s for s in steps if s["node_id"] == node_id)


# ------------------------------------------------------------------ data_schema


async def test_data_failing_the_schema_is_422_naming_the_problem(
    api: httpx.AsyncClient,
) -> None:
    run_id = await start(api, reviewed(data_schema=AMOUNT_SCHEMA))
    item = await inbox_item(api, run_id)
    assert item["data_schema"] == AMOUNT_SCHEMA

    refused = await decide(api, run_id, decision="approve", data={"amount": 99000})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_review_data"
    assert "amount" in error["message"] and "5000" in error["message"]
    assert error["details"]["errors"][0]["loc"] == ["body", "data"]
    missing = await decide(api, run_id, decision="approve", data={"note": "no amount"})
    assert missing.status_code == 422
    assert "'amount' is a required property" in missing.json()["error"]["message"]

    assert (await step(api, run_id))["status"] == "waiting_for_human"

    accepted = await decide(api, run_id, decision="approve", data={"amount": 1000}, reviewer="ann")
    assert accepted.status_code == 202, accepted.text
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed"
    assert done["final_outputs"] == {"amount": 1000}


async def test_an_invalid_signal_leaves_the_node_waiting(
    api: httpx.AsyncClient, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = await start(api, reviewed(data_schema=AMOUNT_SCHEMA))
    handle = client.get_workflow_handle(run_id)
    await handle.signal(
        RunWorkflow.review,
        ReviewDecision(node_id="review", decision="approve", data={"amount": 99000}),
    )
    # Signals apply in order: had the first been applied, the run would output 99000.
    await handle.signal(
        RunWorkflow.review,
        ReviewDecision(node_id="review", decision="approve", data={"amount": 10}, reviewer="op"),
    )
    done = await wait_for_run(api, run_id)
    assert done["final_outputs"] == {"amount": 10}
    assert (await step(api, run_id))["review"]["reviewer"] == "op"
    # The worker logged why (the workflow's logger, in this process).
    logged = [r.getMessage() for r in caplog.records if "review signal ignored" in r.getMessage()]
    assert any("data fails data_schema" in m and "5000" in m for m in logged), logged


# ------------------------------------------------------------------ quorum


async def test_two_approvals_from_distinct_reviewers_complete_the_node(
    api: httpx.AsyncClient, client: Client
) -> None:
    run_id = await start(api, reviewed(approvals_required=2, assignees=["ann", "bob", "cy"]))

    first = await decide(api, run_id, decision="approve", reviewer="ann", comment="fine")
    assert first.status_code == 202, first.text

    async def approvals() -> list[dict] | None:
        item = await inbox_item(api, run_id)
        return item["approvals"] or None

    so_far = await wait_until(approvals)
    assert [(a["reviewer"], a["comment"]) for a in so_far] == [("ann", "fine")]
    item = await inbox_item(api, run_id)
    assert item["approvals_required"] == 2 and item["assignees"] == ["ann", "bob", "cy"]
    assert (await api.get(f"/v1/workflows/runs/{run_id}")).json()["status"] == "waiting_for_human"

    again = await decide(api, run_id, decision="approve", reviewer="ann")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "review_already_approved"
    anonymous = await decide(api, run_id, decision="approve")
    assert anonymous.status_code == 422
    assert anonymous.json()["error"]["code"] == "reviewer_required"

    second = await decide(api, run_id, decision="approve", reviewer="bob", data={"amount": 900})
    assert second.status_code == 202, second.text
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed"
    assert done["final_outputs"] == {"amount": 900}
    review_step = await step(api, run_id)
    assert [a["reviewer"] for a in review_step["approvals"]] == ["ann", "bob"]
    assert review_step["review"]["decision"] == "approve"
    late = await decide(api, run_id, decision="reject", reviewer="cy")
    assert late.status_code == 409
    await assert_replays(client, run_id)


async def test_a_reject_after_one_approval_rejects(api: httpx.AsyncClient) -> None:
    run_id = await start(api, reviewed(approvals_required=2))
    assert (await decide(api, run_id, decision="approve", reviewer="ann")).status_code == 202
    await wait_until(lambda: _has_approvals(api, run_id))
    rejected = await decide(api, run_id, decision="reject", reviewer="bob", comment="no")
    assert rejected.status_code == 202, rejected.text
    done = await wait_for_run(api, run_id)
    assert done["status"] == "error" and done["error"]["node_id"] == "review"
    assert "rejected by bob: no" in done["error"]["message"]
    review_step = await step(api, run_id)
    assert [a["reviewer"] for a in review_step["approvals"]] == ["ann"]


async def _has_approvals(api: httpx.AsyncClient, run_id: str) -> bool:
    return bool((await step(api, run_id))["approvals"])


async def test_concurrent_approvals_count_exactly_the_accepted_ones(
    api: httpx.AsyncClient,
) -> None:
    """Four reviewers at once on a node that needs two: two are accepted (202), the others
    find it decided (409), and the step lists exactly the accepted ones."""
    run_id = await start(api, reviewed(approvals_required=2))
    reviewers = ["r1", "r2", "r3", "r4"]
    answers = await asyncio.gather(
        *(decide(api, run_id, decision="approve", reviewer=r) for r in reviewers)
    )
    codes = [a.status_code for a in answers]
    assert sorted(codes) == [202, 202, 409, 409], [a.text for a in answers]
    accepted = sorted(r for r, code in zip(reviewers, codes, strict=True) if code == 202)
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed"
    assert sorted(a["reviewer"] for a in (await step(api, run_id))["approvals"]) == accepted


# ------------------------------------------------------------------ assignees


async def test_the_inbox_filters_by_assignee(api: httpx.AsyncClient) -> None:
    definition = {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {"id": "legal", "type": "human_review", "config": {"assignees": ["ann"]}},
            {"id": "finance", "type": "human_review", "config": {"assignees": ["bob", "ann"]}},
            {"id": "ops", "type": "human_review"},
            {"id": "out", "type": "end"},
        ],
        "edges": [
            {"source": "meta", "target": "legal"},
            {"source": "meta", "target": "finance"},
            {"source": "meta", "target": "ops"},
            *({"source": n, "target": "out"} for n in ("legal", "finance", "ops")),
        ],
    }
    run_id = await start(api, definition)

    async def nodes_for(**params: str) -> list[str] | None:
        items = [i for i in await inbox(api, **params) if i["run_id"] == run_id]
        return sorted(i["node_id"] for i in items) or None

    assert await wait_until(lambda: nodes_for()) == ["finance", "legal", "ops"]
    assert await nodes_for(assignee="ann") == ["finance", "legal"]
    assert await nodes_for(assignee="bob") == ["finance"]
    assert await nodes_for(assignee="nobody") is None


# ------------------------------------------------------------------ escalation


async def test_escalation_is_a_durable_timer_that_survives_a_worker_restart(
    app: FastAPI, client: Client, settings: Settings, http_client: httpx.AsyncClient
) -> None:
    deps = ActivityDeps(settings=settings, http_client=http_client)

    def worker():  # type: ignore[no-untyped-def]
        return create_worker(
            client,
            task_queue=settings.task_queue,
            activities=default_registry().activities(deps),
        )

    definition = reviewed(assignees=["ann"], escalate_after_s=2, escalate_to=["boss"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runlane.test",
        headers={"Api-Key": ORG_A_KEY},
    ) as api:
        async with worker():
            run_id = await start(api, definition)
            item = await inbox_item(api, run_id)
            assert item["escalated_at"] is None and item["assignees"] == ["ann"]
            assert await inbox(api, assignee="boss") == []
        # No worker while the timer fires: the server keeps it, a new worker acts on it.
        history = client.get_workflow_handle(run_id).fetch_history_events()
        timers = [e async for e in history if e.HasField("timer_started_event_attributes")]
        assert len(timers) == 1
        await asyncio.sleep(2.5)  # past escalate_after_s, with no worker running
        async with worker():

            async def escalated() -> dict | None:
                found = await inbox(api, assignee="boss")
                return next((i for i in found if i["run_id"] == run_id), None)

            item = await wait_until(escalated)
            assert item["escalated_at"] is not None
            assert item["assignees"] == ["ann", "boss"]
            review_step = await step(api, run_id)
            assert review_step["escalated_at"] == item["escalated_at"]
            assert review_step["status"] == "waiting_for_human"
            decided = await decide(api, run_id, decision="approve", reviewer="boss")
            assert decided.status_code == 202
            done = await wait_for_run(api, run_id)
            assert done["status"] == "completed"
            assert (await step(api, run_id))["escalated_at"] == item["escalated_at"]
        await assert_replays(client, run_id)


async def test_a_decision_before_escalation_cancels_it(api: httpx.AsyncClient) -> None:
    run_id = await start(api, reviewed(escalate_after_s=600, timeout_s=3600))
    assert (await decide(api, run_id, decision="approve")).status_code == 202
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed"
    assert (await step(api, run_id))["escalated_at"] is None


# ------------------------------------------------------------------ validation


async def test_review_config_problems_are_reported_at_validation(api: httpx.AsyncClient) -> None:
    cases = {
        "escalate_to needs escalate_after_s": {"escalate_to": ["boss"]},
        "approvals_required (3) is more than the 2 distinct": {
            "assignees": ["ann", "bob"],
            "approvals_required": 3,
        },
        "not a valid JSON Schema": {"data_schema": {"type": 12}},
        "shorter than timeout_s": {"escalate_after_s": 60, "timeout_s": 30},
        "greater than or equal to 1": {"approvals_required": 0},
    }
    for expected, config in cases.items():
        created = await api.post(
            "/v1/workflows", json={"name": "bad", "definition": reviewed(**config)}
        )
        if created.status_code == 201:
            workflow_id = created.json()["id"]
            created = await api.post(f"/v1/workflows/{workflow_id}/publish")
        assert created.status_code == 422, (expected, created.text)
        assert expected in created.text, (expected, created.text)
