"""Retry from the failure point: the same run id continues, completed work is not redone."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.registry import ActivityDeps, default_registry
from runlane import expressions, templating
from runlane.settings import Settings
from tests.api.helpers import create_published, hold, wait_for_run, wait_until
from tests.conftest import ORG_A_KEY
from tests.peer import Peer
from tests.recovery.support import (
    RUNS,
    chain,
    failed_run,
    get_run,
    http_node,
    retry_plan,
    start_run,
    steps_of,
    wait_for_attempt,
    wait_for_step,
)
from workflows.worker import create_worker


def failing_chain(peer: Peer) -> dict[str, Any]:
    """note -> a -> shape -> b -> c -> out; `b` fails at the first scripted failure."""
    return {
        "nodes": [
            {"id": "note", "type": "start_text"},
            http_node(peer.url, "a", body={"note": "{{note.text}}"}),
            {"id": "shape", "type": "transform", "config": {"output": {"from_a": "{{a.body}}"}}},
            http_node(peer.url, "b", body={"shape": "{{shape}}"}, once=True),
            http_node(peer.url, "c", body={"b": "{{b.status}}"}),
            {"id": "out", "type": "end", "config": {"outputs": {"c": "{{c.status}}"}}},
        ],
        "edges": chain("note", "a", "shape", "b", "c", "out"),
    }


def delay_definition(seconds: float) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "note", "type": "start_text"},
            {"id": "wait", "type": "delay", "config": {"seconds": seconds}},
            {"id": "out", "type": "end", "config": {"outputs": {"note": "{{note.text}}"}}},
        ],
        "edges": chain("note", "wait", "out"),
    }


def counts(peer: Peer, *node_ids: str) -> dict[str, int]:
    return {node_id: peer.count(f"/{node_id}") for node_id in node_ids}


async def test_retry_resumes_at_the_failed_node_and_keeps_completed_steps(
    api: httpx.AsyncClient, peer: Peer, settings: Settings
) -> None:
    workflow_id = await create_published(api, failing_chain(peer))
    peer.fail("/b", 1, 503)
    failed = await failed_run(api, workflow_id, text_inputs={"note": "x"})
    run_id = failed["id"]
    assert failed["error"]["node_id"] == "b" and failed["attempt"] == 1
    assert counts(peer, "a", "b", "c") == {"a": 1, "b": 1, "c": 0}
    before = await steps_of(api, run_id)
    plan = await retry_plan(api, run_id)
    assert plan["allowed"] is True
    assert {"note", "a"} <= set(plan["reuse"])
    assert {"b", "c", "out"} <= set(plan["rerun"])
    assert plan["repeated_side_effects"] == ["b"]

    retried = await api.post(f"{RUNS}/{run_id}/retry", json={})
    assert retried.status_code == 202, retried.text
    assert retried.json()["id"] == run_id

    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed", done
    assert done["final_outputs"] == {"c": 200}
    assert done["error"] is None
    # Completed steps were not executed again; the failed node and the later ones were.
    assert counts(peer, "a", "b", "c") == {"a": 1, "b": 2, "c": 1}

    first, second = done["attempts"]
    assert first["attempt"] == 1 and second["attempt"] == 2
    assert first["temporal_run_id"] == failed["temporal"]["run_id"]
    assert first["status"] == "error" and first["ended_at"] is not None
    assert first["resumed_from_node_id"] is None
    assert second["status"] == "completed"
    assert second["resumed_from_node_id"] == "b"
    assert second["started_at"] >= first["ended_at"]
    assert second["ended_at"] is not None and second["ended_at"] >= second["started_at"]
    # The record points at the new Temporal execution.
    new_execution = done["temporal"]["run_id"]
    assert new_execution == second["temporal_run_id"] != failed["temporal"]["run_id"]
    assert done["temporal"]["ui_url"] == (
        f"{settings.temporal_ui_url}/namespaces/default/workflows/{run_id}/{new_execution}/history"
    )

    after = await steps_of(api, run_id)
    assert all(step["status"] == "completed" for step in after.values()), after
    for node_id in plan["reuse"]:
        # completed_at: see test_step_timestamps.py (a known bug, reported separately).
        for key in ("started_at", "output", "attempt", "status"):
            assert after[node_id][key] == before[node_id][key], (node_id, key)
    for node_id in plan["rerun"]:
        assert after[node_id]["attempt"] == 2, node_id
    assert after["b"]["started_at"] > before["b"]["started_at"]
    assert after["b"]["error"] is None and after["b"]["output"]["status"] == 200


async def test_retry_twice_in_a_row(api: httpx.AsyncClient, peer: Peer) -> None:
    workflow_id = await create_published(api, failing_chain(peer))
    peer.fail("/b", 2, 500)
    failed = await failed_run(api, workflow_id, text_inputs={"note": "x"})
    run_id = failed["id"]

    first_retry = await api.post(f"{RUNS}/{run_id}/retry", json={})
    assert first_retry.status_code == 202, first_retry.text
    again = await wait_for_attempt(api, run_id, 2)
    assert again["status"] == "error" and again["error"]["node_id"] == "b"
    assert counts(peer, "a", "b", "c") == {"a": 1, "b": 2, "c": 0}

    second_retry = await api.post(f"{RUNS}/{run_id}/retry", json={})
    assert second_retry.status_code == 202, second_retry.text
    done = await wait_for_attempt(api, run_id, 3)
    assert done["status"] == "completed", done
    assert counts(peer, "a", "b", "c") == {"a": 1, "b": 3, "c": 1}
    assert [(a["attempt"], a["status"], a["resumed_from_node_id"]) for a in done["attempts"]] == [
        (1, "error", None),
        (2, "error", "b"),
        (3, "completed", "b"),
    ]
    executions = [a["temporal_run_id"] for a in done["attempts"]]
    assert len(set(executions)) == 3 and done["temporal"]["run_id"] == executions[-1]
    steps = await steps_of(api, run_id)
    assert steps["a"]["attempt"] == 1 and steps["b"]["attempt"] == 3

    # Three Temporal executions, one run: listed once, as it is now (the failed executions
    # of attempts 1 and 2 are not runs of their own).
    async def listed(**params: str) -> list[tuple[str, str]]:
        page = (await api.get(RUNS, params={"workflow_id": workflow_id, **params})).json()
        return [(run["id"], run["status"]) for run in page["data"]]

    assert await wait_until(lambda: listed(status="completed")) == [(run_id, "completed")]
    assert await listed() == [(run_id, "completed")]
    assert await listed(status="error") == []


async def test_retry_of_a_run_cancelled_during_a_delay_runs_the_delay_again(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    definition = {
        "nodes": [
            {"id": "note", "type": "start_text"},
            http_node(peer.url, "a"),
            {"id": "wait", "type": "delay", "config": {"seconds": 2}},
            http_node(peer.url, "b"),
            {"id": "out", "type": "end", "config": {"outputs": {"b": "{{b.status}}"}}},
        ],
        "edges": chain("note", "a", "wait", "b", "out"),
    }
    workflow_id = await create_published(api, definition)
    run = await start_run(api, workflow_id, text_inputs={"note": "x"})
    run_id = run["id"]
    await wait_for_step(api, run_id, "wait", "running")
    assert (await api.post(f"{RUNS}/{run_id}/cancel")).status_code == 202
    cancelled = await wait_for_run(api, run_id)
    assert cancelled["status"] == "cancelled", cancelled
    steps = await steps_of(api, run_id)
    assert steps["wait"]["status"] == "cancelled" and steps["b"]["status"] == "pending"
    assert counts(peer, "a", "b") == {"a": 1, "b": 0}

    plan = await retry_plan(api, run_id)
    assert plan["allowed"] is True
    assert {"note", "a"} <= set(plan["reuse"])
    assert {"wait", "b", "out"} <= set(plan["rerun"])
    assert plan["repeated_side_effects"] == []

    assert (await api.post(f"{RUNS}/{run_id}/retry", json={})).status_code == 202
    done = await wait_for_attempt(api, run_id, 2)
    # The cancel request is not re-applied: the delay runs again and the run completes.
    assert done["status"] == "completed", done
    assert done["final_outputs"] == {"b": 200}
    assert counts(peer, "a", "b") == {"a": 1, "b": 1}
    assert [(a["status"], a["resumed_from_node_id"]) for a in done["attempts"]] == [
        ("cancelled", None),
        ("completed", "wait"),
    ]
    after = await steps_of(api, run_id)
    assert after["wait"]["status"] == "completed" and after["wait"]["attempt"] == 2
    assert after["wait"]["duration_ms"] >= 2000
    assert after["a"]["started_at"] == steps["a"]["started_at"] and after["a"]["attempt"] == 1


async def test_retry_with_parallel_branches(api: httpx.AsyncClient, peer: Peer) -> None:
    """Which completed branch runs again.

    `early` starts with the delay `gate` and completes long before the gate opens; `p` and the
    failing `q` are both scheduled when the gate opens, in one workflow task. The retry resets
    to the task that scheduled the failed node, so:

    * `early`, completed before that task, is reused: the peer sees no new call;
    * `p`, a sibling scheduled in that same task, runs again even though it completed
      (or was cancelled when `q` failed): the peer sees exactly one more call.
    """
    definition = {
        "nodes": [
            {"id": "note", "type": "start_text"},
            http_node(peer.url, "early"),
            {"id": "gate", "type": "delay", "config": {"seconds": 1}},
            http_node(peer.url, "p"),
            http_node(peer.url, "q", once=True),
            {
                "id": "out",
                "type": "end",
                "config": {"outputs": {"early": "{{early.status}}", "q": "{{q.status}}"}},
            },
        ],
        "edges": [
            {"source": "note", "target": "early"},
            {"source": "note", "target": "gate"},
            {"source": "gate", "target": "p"},
            {"source": "gate", "target": "q"},
            {"source": "early", "target": "out"},
            {"source": "p", "target": "out"},
            {"source": "q", "target": "out"},
        ],
    }
    workflow_id = await create_published(api, definition)
    peer.fail("/q", 1, 500)
    failed = await failed_run(api, workflow_id, text_inputs={"note": "x"})
    run_id = failed["id"]
    assert failed["error"]["node_id"] == "q"
    before_steps = await steps_of(api, run_id)
    assert before_steps["early"]["status"] == "completed"
    before = counts(peer, "early", "p", "q")
    assert before["early"] == 1 and before["q"] == 1

    plan = await retry_plan(api, run_id)
    assert plan["allowed"] is True
    assert set(plan["reuse"]) == {"note", "early", "gate"}
    assert set(plan["rerun"]) == {"p", "q", "out"}
    assert {"q"} <= set(plan["repeated_side_effects"]) <= {"p", "q"}

    assert (await api.post(f"{RUNS}/{run_id}/retry", json={})).status_code == 202
    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed", done
    after = counts(peer, "early", "p", "q")
    # What the plan said is what the peer saw.
    for node_id in ("early", "p", "q"):
        expected = before[node_id] + (1 if node_id in plan["rerun"] else 0)
        assert after[node_id] == expected, (node_id, before, after, plan)
    steps = await steps_of(api, run_id)
    assert steps["early"]["started_at"] == before_steps["early"]["started_at"]
    assert steps["early"]["attempt"] == 1 and steps["p"]["attempt"] == 2


async def test_retry_refuses_completed_and_running_runs(api: httpx.AsyncClient, peer: Peer) -> None:
    workflow_id = await create_published(api, delay_definition(0))
    completed = await start_run(api, workflow_id, text_inputs={"note": "x"})
    assert (await wait_for_run(api, completed["id"]))["status"] == "completed"

    refused = await api.post(f"{RUNS}/{completed['id']}/retry", json={})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["type"] == "conflict"
    assert "completed" in error["message"]
    assert "restart" in error["message"] and "rerun" in error["message"]
    plan = await retry_plan(api, completed["id"])
    assert plan["allowed"] is False and plan["reason"] == error["message"]
    assert plan["reuse"] == plan["rerun"] == plan["repeated_side_effects"] == []
    assert (
        await api.post(f"{RUNS}/{completed['id']}/retry", json={"from": "start"})
    ).status_code == 409

    long_workflow = await create_published(api, delay_definition(600))
    running = await start_run(api, long_workflow, text_inputs={"note": "x"})
    await wait_for_step(api, running["id"], "wait", "running")
    refused = await api.post(f"{RUNS}/{running['id']}/retry", json={})
    assert refused.status_code == 409, refused.text
    message = refused.json()["error"]["message"]
    # What to do with a run that has not ended: wait for it, or cancel it first.
    assert "running" in message and "cancel it" in message, message
    assert "restart" not in message, message  # restart would be refused too while it runs
    still = await get_run(api, running["id"])
    assert still["status"] == "running" and still["attempt"] == 1
    assert (await api.post(f"{RUNS}/{running['id']}/cancel")).status_code == 202
    await wait_for_run(api, running["id"])


async def test_retry_after_the_worker_restarted(
    app: FastAPI,
    client: Client,
    settings: Settings,
    peer: Peer,
    http_client: httpx.AsyncClient,
) -> None:
    """The run fails under one worker, which then stops; a new worker process (here: a new
    Worker) picks the retried run up from Temporal's history."""
    deps = ActivityDeps(settings=settings, http_client=http_client)

    def new_worker() -> Any:
        return create_worker(
            client,
            task_queue=settings.task_queue,
            activities=default_registry().activities(deps),
            identity=f"worker-{uuid.uuid4().hex[:8]}",
        )

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runlane.test", headers={"Api-Key": ORG_A_KEY}
    ) as api:
        async with new_worker():
            workflow_id = await create_published(api, failing_chain(peer))
            peer.fail("/b", 1, 502)
            failed = await failed_run(api, workflow_id, text_inputs={"note": "x"})
        run_id = failed["id"]
        # No worker now: an ended run is still readable, and so is its plan.
        assert (await get_run(api, run_id))["status"] == "error"
        plan = await retry_plan(api, run_id)
        assert plan["allowed"] is True and "a" in plan["reuse"] and "b" in plan["rerun"]

        async with new_worker():
            retried = await api.post(f"{RUNS}/{run_id}/retry", json={})
            assert retried.status_code == 202, retried.text
            done = await wait_for_attempt(api, run_id, 2)
            assert done["status"] == "completed", done
            assert counts(peer, "a", "b", "c") == {"a": 1, "b": 2, "c": 1}
            assert done["attempts"][1]["resumed_from_node_id"] == "b"


async def test_retry_takes_reused_outcomes_from_history_not_from_new_code(
    api: httpx.AsyncClient, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`shape` is evaluated in the very workflow task that scheduled the failing `b`, the task
    the retry resets to and executes again. A deploy between the failure and the retry changes
    how `shape` renders; the retried run keeps the output history recorded, while the nodes
    that run again (`c`, `out`) use the code installed now."""
    workflow_id = await create_published(api, failing_chain(peer))
    peer.fail("/b", 1, 503)
    failed = await failed_run(api, workflow_id, text_inputs={"note": "x"})
    run_id = failed["id"]
    before = await steps_of(api, run_id)
    assert "shape" in (await retry_plan(api, run_id))["reuse"]

    original = templating.render
    shape_template = failing_chain(peer)["nodes"][2]["config"]["output"]

    def deployed(template: Any, context: templating.TemplateContext) -> Any:
        if template == shape_template or template == {"c": "{{c.status}}"}:
            return {"rendered_by": "new code"}
        return original(template, context)

    monkeypatch.setattr(templating, "render", deployed)
    assert (await api.post(f"{RUNS}/{run_id}/retry", json={})).status_code == 202
    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed", done
    after = await steps_of(api, run_id)
    assert after["shape"] == before["shape"]  # output, times and attempt as recorded
    assert after["out"]["output"] == {"rendered_by": "new code"}  # ran again, now
    assert counts(peer, "a", "b", "c") == {"a": 1, "b": 2, "c": 1}


@pytest.mark.parametrize("held_past_task_timeout", [False, True])
async def test_a_run_cancelled_while_a_batch_evaluates_can_be_retried(
    api: httpx.AsyncClient,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    held_past_task_timeout: bool,
) -> None:
    """The cancel lands while a batch of pure work is evaluating (its evaluator held on
    purpose): the batch's nodes read as cancelled, and the retry evaluates them again. Held
    past the workflow task's timeout, the SDK heartbeats the task into continuations, to
    which Temporal cannot reset: the retry resets to the task they continue."""
    entered, release = hold(monkeypatch, expressions, "evaluate")
    definition = {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {"id": "big", "type": "condition", "config": {"expression": "meta.n > `1`"}},
            {"id": "out", "type": "end", "config": {"outputs": {"big": "{{big.result}}"}}},
        ],
        "edges": [
            {"source": "meta", "target": "big"},
            {"source": "big", "target": "out", "branch": "true"},
        ],
    }
    workflow_id = await create_published(api, definition)
    run = await start_run(api, workflow_id, json_inputs={"meta": {"n": 5}})
    run_id = run["id"]
    assert await asyncio.to_thread(entered.wait, 15)
    if held_past_task_timeout:

        async def heartbeated() -> bool:
            history = await client.get_workflow_handle(run_id).fetch_history()
            completed = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            return sum(e.event_type == completed for e in history.events) >= 2

        await wait_until(heartbeated, timeout=30, interval=0.5)
    assert (await api.post(f"{RUNS}/{run_id}/cancel")).status_code == 202
    cancelled = await wait_for_run(api, run_id)
    release.set()
    assert cancelled["status"] == "cancelled", cancelled
    steps = await steps_of(api, run_id)
    assert steps["meta"]["status"] == "cancelled"
    plan = await retry_plan(api, run_id)
    assert plan["allowed"] is True and plan["rerun"] == ["meta", "big", "out"], plan

    retried = await api.post(f"{RUNS}/{run_id}/retry", json={})
    assert retried.status_code == 202, retried.text
    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed" and done["final_outputs"] == {"big": True}, done
    assert {s["attempt"] for s in (await steps_of(api, run_id)).values()} == {2}


async def test_a_review_that_waits_again_after_a_retry_belongs_to_the_new_attempt(
    api: httpx.AsyncClient,
) -> None:
    definition = {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {"id": "shape", "type": "transform", "config": {"output": "{{meta.amount}}"}},
            {"id": "review", "type": "human_review", "config": {"payload": "{{shape}}"}},
            {"id": "out", "type": "end", "config": {"outputs": "{{review}}"}},
        ],
        "edges": chain("meta", "shape", "review", "out"),
    }
    workflow_id = await create_published(api, definition)
    run_id = (await start_run(api, workflow_id, json_inputs={"meta": {"amount": 3}}))["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    rejected = await api.post(f"{RUNS}/{run_id}/reviews/review", json={"decision": "reject"})
    assert rejected.status_code == 202, rejected.text
    assert (await wait_for_run(api, run_id))["status"] == "error"
    before = await steps_of(api, run_id)

    assert (await api.post(f"{RUNS}/{run_id}/retry", json={})).status_code == 202
    await wait_for_step(api, run_id, "review", "waiting_for_human")
    waiting = await steps_of(api, run_id)
    assert waiting["shape"] == before["shape"]  # decided before the review: reused
    assert waiting["review"]["output"] == 3  # the payload as recorded
    approved = await api.post(f"{RUNS}/{run_id}/reviews/review", json={"decision": "approve"})
    assert approved.status_code == 202, approved.text
    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed" and done["final_outputs"] == 3, done
    after = await steps_of(api, run_id)
    assert after["review"]["attempt"] == 2 and after["review"]["review"]["decision"] == "approve"
    assert after["shape"]["attempt"] == 1
