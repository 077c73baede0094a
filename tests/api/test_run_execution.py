"""How runs execute: branches, joins, parallelism, retries, errors, HTTP calls, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client

from activities.registry import ActivityDeps, default_registry
from runlane.settings import Settings
from tests.api.helpers import create_published, wait_for_run
from tests.peer import Peer
from workflows.worker import create_worker


def http(node_id: str, url: str, **extra: object) -> dict:
    return {
        "id": node_id,
        "type": "http_request",
        "config": {"method": "POST", "url": url},
        **extra,
    }


async def run_to_end(api: httpx.AsyncClient, definition: dict, **body: object) -> dict:
    workflow_id = await create_published(api, definition)
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json=body)
    assert started.status_code == 202, started.text
    return await wait_for_run(api, started.json()["id"])


async def steps(api: httpx.AsyncClient, run_id: str) -> dict[str, dict]:
    data = (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    return {step["node_id"]: step for step in data}


@pytest.mark.parametrize(
    ("amount", "taken", "skipped"), [(5000, "big", "small"), (5, "small", "big")]
)
async def test_condition_routes_skips_and_joins_once(
    api: httpx.AsyncClient, amount: int, taken: str, skipped: str
) -> None:
    definition = {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {"id": "check", "type": "condition", "config": {"expression": "meta.amount > `1000`"}},
            {"id": "big", "type": "transform", "config": {"output": "manual"}},
            {"id": "small", "type": "transform", "config": {"output": "auto"}},
            {"id": "after-skip", "type": "transform", "config": {"output": "x"}},
            {"id": "join", "type": "transform", "config": {"output": "{{big}}{{small}}"}},
            {"id": "out", "type": "end", "config": {"outputs": "{{join}}"}},
        ],
        "edges": [
            {"source": "meta", "target": "check"},
            {"source": "check", "target": "big", "branch": "true"},
            {"source": "check", "target": "small", "branch": "false"},
            {"source": skipped, "target": "after-skip"},
            {"source": "big", "target": "join"},
            {"source": "small", "target": "join"},
            {"source": "join", "target": "out"},
        ],
    }
    run = await run_to_end(api, definition, json_inputs={"meta": {"amount": amount}})
    assert run["status"] == "completed"
    by_node = await steps(api, run["id"])
    assert by_node[taken]["status"] == "completed"
    assert by_node[skipped]["status"] == "skipped"
    assert by_node["after-skip"]["status"] == "skipped"  # skips propagate
    assert by_node["join"]["status"] == "completed"
    assert by_node["check"]["output"] == {"result": amount > 1000}
    assert run["final_outputs"] == ("manual" if taken == "big" else "auto")


async def test_parallel_branches_run_at_the_same_time(api: httpx.AsyncClient) -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "left", "type": "delay", "config": {"seconds": 1}},
            {"id": "right", "type": "delay", "config": {"seconds": 1}},
            {"id": "out", "type": "end"},
        ],
        "edges": [
            {"source": "in", "target": "left"},
            {"source": "in", "target": "right"},
            {"source": "left", "target": "out"},
            {"source": "right", "target": "out"},
        ],
    }
    run = await run_to_end(api, definition, text_inputs={"in": "x"})
    by_node = await steps(api, run["id"])
    left, right = by_node["left"], by_node["right"]
    started = [datetime.fromisoformat(s["started_at"]) for s in (left, right)]
    ended = [datetime.fromisoformat(s["completed_at"]) for s in (left, right)]
    # Each waited a second; together they overlapped (sequentially they would span 2 s).
    assert left["duration_ms"] >= 1000 and right["duration_ms"] >= 1000
    assert (max(ended) - min(started)).total_seconds() < 1.8


async def test_http_node_sends_idempotency_key_and_parses_json(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_json"},
            http(
                "notify",
                f"{peer.url}/hook",
                config={
                    "method": "PUT",
                    "url": f"{peer.url}/hook",
                    "headers": {"X-Customer": "{{in.customer}}"},
                    "body": {"run": "{{$run.id}}", "n": "{{in.n}}"},
                },
            ),
            {"id": "out", "type": "end", "config": {"outputs": "{{notify.body.received}}"}},
        ],
        "edges": [{"source": "in", "target": "notify"}, {"source": "notify", "target": "out"}],
    }
    run = await run_to_end(api, definition, json_inputs={"in": {"customer": "c9", "n": 3}})
    assert run["status"] == "completed"
    [call] = peer.calls_to("/hook")
    assert call.method == "PUT"
    assert call.headers["Idempotency-Key"] == f"{run['id']}:notify"
    assert call.headers["X-Customer"] == "c9"
    assert call.body == {"run": run["id"], "n": 3}
    assert run["final_outputs"] == {"run": run["id"], "n": 3}
    output = (await steps(api, run["id"]))["notify"]["output"]
    assert output["status"] == 200 and output["body"]["path"] == "/hook"


async def test_node_retries_then_succeeds(api: httpx.AsyncClient, peer: Peer) -> None:
    peer.fail("/flaky", 2, 503)
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            http(
                "flaky", f"{peer.url}/flaky", retry={"max_attempts": 3, "initial_interval_s": 0.1}
            ),
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "in", "target": "flaky"}, {"source": "flaky", "target": "out"}],
    }
    run = await run_to_end(api, definition, text_inputs={"in": "x"})
    assert run["status"] == "completed"
    assert peer.count("/flaky") == 3


async def test_exhausted_retries_fail_the_run_naming_the_node(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    peer.fail("/down", 5, 500)
    peer.fail("/bad", 5, 400)
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            http("down", f"{peer.url}/down", retry={"max_attempts": 2, "initial_interval_s": 0.1}),
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "in", "target": "down"}, {"source": "down", "target": "out"}],
    }
    run = await run_to_end(api, definition, text_inputs={"in": "x"})
    assert run["status"] == "error" == run["lifecycle"]["kind"]
    error = run["error"]
    assert error["stage"] == "execution" and error["node_id"] == "down"
    assert error["type"] == "HttpStatusError" and "500" in error["message"]
    assert run["lifecycle"]["error"] == error
    assert peer.count("/down") == 2
    by_node = await steps(api, run["id"])
    assert (
        by_node["down"]["status"] == "error"
        and by_node["down"]["error"]["type"] == "HttpStatusError"
    )
    assert by_node["out"]["status"] == "pending"

    # A 4xx is the caller's mistake: not retried.
    definition["nodes"][1] = http("down", f"{peer.url}/bad", retry={"max_attempts": 3})
    run = await run_to_end(api, definition, text_inputs={"in": "x"})
    assert run["status"] == "error" and peer.count("/bad") == 1


@pytest.fixture
async def strict_api(
    app: FastAPI, client: Client, settings: Settings, http_client: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """The API and a worker with RUNLANE_HTTP_ALLOW_PRIVATE=false (the production default)."""
    strict = settings.model_copy(update={"http_allow_private": False})
    deps = ActivityDeps(settings=strict, http_client=http_client)
    async with create_worker(
        client, task_queue=settings.task_queue, activities=default_registry().activities(deps)
    ):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://t",
            headers={"Api-Key": "key_org_a"},
        ) as api:
            yield api


async def test_private_targets_are_refused_by_default(
    strict_api: httpx.AsyncClient, peer: Peer
) -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            http("ssrf", f"{peer.url}/internal"),
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "in", "target": "ssrf"}, {"source": "ssrf", "target": "out"}],
    }
    run = await run_to_end(strict_api, definition, text_inputs={"in": "x"})
    assert run["status"] == "error"
    assert run["error"]["type"] == "HttpTargetNotAllowed"
    assert "RUNLANE_HTTP_ALLOW_PRIVATE" in run["error"]["message"]
    assert peer.count("/internal") == 0


async def test_cancel_during_a_delay(api: httpx.AsyncClient) -> None:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "wait", "type": "delay", "label": "Cooling off", "config": {"seconds": 3600}},
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "in", "target": "wait"}, {"source": "wait", "target": "out"}],
    }
    workflow_id = await create_published(api, definition)
    run_id = (
        await api.post(f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"in": "x"}})
    ).json()["id"]
    await wait_for_run(api, run_id, until={"running"})
    cancelled = await api.post(f"/v1/workflows/runs/{run_id}/cancel")
    assert cancelled.status_code == 202
    done = await wait_for_run(api, run_id)
    assert done["status"] == "cancelled" and done["timing"]["completed_at"] is not None
    by_node = await steps(api, run_id)
    assert by_node["wait"]["status"] == "cancelled"
    again = await api.post(f"/v1/workflows/runs/{run_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_ended"


async def test_vars_and_run_references(api: httpx.AsyncClient) -> None:
    definition = {
        "vars": {"region": "eu"},
        "nodes": [
            {"id": "in", "type": "start_text"},
            {
                "id": "out",
                "type": "end",
                "config": {"outputs": {"r": "{{$vars.region}}", "wf": "{{$run.workflow_id}}"}},
            },
        ],
        "edges": [{"source": "in", "target": "out"}],
    }
    run = await run_to_end(api, definition, text_inputs={"in": "x"})
    assert run["final_outputs"] == {"r": "eu", "wf": run["workflow"]["workflow_id"]}


async def test_steps_in_topological_order_and_a_completed_run_cannot_be_cancelled(
    api: httpx.AsyncClient,
) -> None:
    # Declared out of order: steps still come back in topological order, one per node.
    definition = {
        "nodes": [
            {"id": "out", "type": "end", "config": {"outputs": "{{shape}}"}},
            {"id": "shape", "type": "transform", "label": "Shape", "config": {"output": "{{in}}"}},
            {"id": "pause", "type": "delay", "label": "Breathe", "config": {"seconds": 0.2}},
            {"id": "in", "type": "start_text", "label": "Note"},
        ],
        "edges": [
            {"source": "in", "target": "pause"},
            {"source": "pause", "target": "shape"},
            {"source": "shape", "target": "out"},
        ],
    }
    run = await run_to_end(api, definition, text_inputs={"in": "hello"})
    assert run["status"] == "completed" and run["final_outputs"] == {"text": "hello"}
    data = (await api.get(f"/v1/workflows/runs/{run['id']}/steps")).json()["data"]
    assert [s["node_id"] for s in data] == ["in", "pause", "shape", "out"]
    assert [s["node_type"] for s in data] == ["start_text", "delay", "transform", "end"]
    assert [s["label"] for s in data] == ["Note", "Breathe", "Shape", ""]
    for step in data:
        assert step["status"] == "completed" and step["attempt"] == 1
        assert step["error"] is None and step["review"] is None
        started = datetime.fromisoformat(step["started_at"])
        completed = datetime.fromisoformat(step["completed_at"])
        assert completed >= started and step["duration_ms"] >= 0
    pause = data[1]
    assert pause["output"] == {} and pause["duration_ms"] >= 200  # the durable timer waited
    assert data[2]["output"] == {"text": "hello"}
    assert datetime.fromisoformat(data[2]["started_at"]) >= datetime.fromisoformat(
        pause["completed_at"]
    )

    refused = await api.post(f"/v1/workflows/runs/{run['id']}/cancel")
    assert refused.status_code == 409
    assert refused.json()["error"]["type"] == "conflict"
    assert refused.json()["error"]["code"] == "run_ended"
    assert (await api.get(f"/v1/workflows/runs/{run['id']}")).json()["status"] == "completed"
