"""Dry run: `POST /v1/workflows/{workflow_id}/dry-run` (API.md "Recovery: more")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from activities.registry import default_registry
from runlane.definition import Definition
from runs.dry_run import DryRunNode, RecordedRun, dry_run
from tests.api.helpers import create_published, linear_definition, wait_for_run
from tests.peer import Peer
from tests.recovery.compare_support import assert_error, completed_run, replace_draft, routed
from tests.recovery.support import RUNS, start_run, steps_of
from workflows.models import ReviewRecord, RunInputs, StepState

# ------------------------------------------------------------------ the evaluation itself

REVIEWED = {
    "nodes": [
        {"id": "in", "type": "start_json"},
        {"id": "review", "type": "human_review", "config": {"payload": "{{in}}"}},
        {"id": "wait", "type": "delay", "config": {"seconds": 60}},
        {"id": "ok", "type": "end", "config": {"outputs": "{{review}}"}},
    ],
    "edges": [
        {"source": "in", "target": "review"},
        {"source": "review", "target": "wait"},
        {"source": "wait", "target": "ok"},
    ],
}


def _recorded(decision: str, *, json_data: dict[str, Any] | None = None) -> RecordedRun:
    decided = datetime(2026, 1, 1, tzinfo=UTC)
    steps = [
        StepState(node_id="in", node_type="start_json", status="completed", output={"n": 1}),
        StepState(
            node_id="review",
            node_type="human_review",
            status="completed" if decision == "approve" else "error",
            output={"n": 1, "edited": True} if decision == "approve" else None,
            review=ReviewRecord(decision=decision, reviewer="ann", decided_at=decided),  # type: ignore[arg-type]
        ),
        StepState(node_id="wait", node_type="delay", status="completed", output={}),
        StepState(
            node_id="ok", node_type="end", status="completed", output={"n": 1, "edited": True}
        ),
    ]
    return RecordedRun(
        run_id="run_x",
        organization_id="org",
        workflow_id="wf_x",
        definition=Definition.model_validate(REVIEWED),
        inputs=RunInputs(json_data={"in": {"n": 1}} if json_data is None else json_data),
        steps=steps,
    )


def _by_id(nodes: list[DryRunNode]) -> dict[str, DryRunNode]:
    return {node.node_id: node for node in nodes}


def test_an_unchanged_review_reuses_its_decision_and_routes_by_it() -> None:
    nodes = _by_id(
        dry_run(Definition.model_validate(REVIEWED), default_registry(), _recorded("approve"))
    )
    assert nodes["review"].status == "completed" and nodes["review"].reused
    assert nodes["review"].output == {"n": 1, "edited": True}  # the approved (edited) data
    assert nodes["wait"].status == "completed" and nodes["wait"].output == {}
    assert nodes["ok"].output == {"n": 1, "edited": True}
    assert not any(node.differs_from_recorded or node.would_call for node in nodes.values())

    # Rejected, without a `rejected` edge: the node fails as it did; with one, it routes there.
    rejected = _by_id(
        dry_run(Definition.model_validate(REVIEWED), default_registry(), _recorded("reject"))
    )
    assert rejected["review"].status == "error" and rejected["review"].error is not None
    assert rejected["review"].error.type == "ReviewRejected"
    assert rejected["wait"].status == "blocked" and rejected["wait"].blocked_by == ["review"]
    bounce = {
        "nodes": [*REVIEWED["nodes"], {"id": "bounce", "type": "end"}],
        "edges": [
            *REVIEWED["edges"],
            {"source": "review", "target": "bounce", "branch": "rejected"},
        ],
    }
    routed_away = _by_id(
        dry_run(Definition.model_validate(bounce), default_registry(), _recorded("reject"))
    )
    assert routed_away["review"].status == "completed"
    assert routed_away["review"].output == {"decision": "reject", "comment": None}
    assert routed_away["bounce"].status == "completed"
    assert routed_away["wait"].status == "skipped" and routed_away["ok"].status == "skipped"


def test_a_review_shown_something_else_would_ask_again() -> None:
    recorded = _recorded("approve", json_data={"in": {"n": 2}})  # the payload it read changes
    nodes = _by_id(dry_run(Definition.model_validate(REVIEWED), default_registry(), recorded))
    assert nodes["in"].differs_from_recorded
    assert nodes["review"].status == "would_call" and nodes["review"].would_call
    # Its routing is the reviewer's: what follows cannot be decided.
    assert nodes["wait"].status == "blocked" and nodes["wait"].blocked_by == ["review"]
    assert nodes["ok"].status == "blocked" and nodes["ok"].blocked_by == ["review"]


def test_a_start_node_without_a_recorded_input_is_its_own_error() -> None:
    nodes = _by_id(
        dry_run(
            Definition.model_validate(REVIEWED),
            default_registry(),
            _recorded("approve", json_data={}),
        )
    )
    assert nodes["in"].status == "error" and nodes["in"].error is not None
    assert nodes["in"].error.type == "MissingInput"
    assert {nodes[n].status for n in ("review", "wait", "ok")} == {"blocked"}


# ------------------------------------------------------------------ through the API


async def run_ids_of(api: httpx.AsyncClient, workflow_id: str) -> set[str]:
    listed = await api.get(RUNS, params={"workflow_id": workflow_id, "limit": 200})
    assert listed.status_code == 200, listed.text
    return {run["id"] for run in listed.json()["data"]}


async def test_a_changed_draft_is_evaluated_and_nothing_is_called(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id, source = await completed_run(api, peer)
    recorded = await steps_of(api, source["id"])
    # shape changed (tag), big's threshold now over the amount, notify's body changed; extra
    # (pure), call2 (http) and after2 (reads call2) are new; call is as it was.
    draft = routed(peer, threshold=100, tag="v2", notify_tag="v2", extra=True, second_call=True)
    await replace_draft(api, workflow_id, draft)
    runs_before = await run_ids_of(api, workflow_id)
    assert runs_before == {source["id"]}
    calls_before = len(peer.calls)

    response = await api.post(f"/v1/workflows/{workflow_id}/dry-run", json={"run_id": source["id"]})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["config_source"] == "draft" and answer["run_id"] == source["id"]
    nodes = {node["node_id"]: node for node in answer["nodes"]}
    assert [node["node_id"] for node in answer["nodes"]][0] == "in"
    assert set(nodes) == {n["id"] for n in draft["nodes"]}

    assert nodes["in"]["status"] == "completed" and not nodes["in"]["differs_from_recorded"]
    assert nodes["shape"]["output"] == {"amount": 50, "tag": "v2"}
    assert nodes["shape"]["differs_from_recorded"] and not nodes["shape"]["would_call"]
    # The condition's branch flips: the other side runs, the recorded one is skipped.
    assert nodes["big"]["output"] == {"result": False} and nodes["big"]["differs_from_recorded"]
    assert nodes["lo"]["status"] == "completed" and nodes["lo"]["differs_from_recorded"]
    assert nodes["hi"]["status"] == "skipped" and nodes["hi"]["differs_from_recorded"]
    assert "output" not in nodes["hi"]
    # The unchanged request is reused as recorded.
    assert nodes["call"] == {
        "node_id": "call",
        "node_type": "http_request",
        "status": "completed",
        "output": recorded["call"]["output"],
        "differs_from_recorded": False,
        "would_call": False,
        "reused": True,
    }
    # A changed request and a new one would be called; nothing reads their output here.
    for node_id in ("notify", "call2"):
        assert nodes[node_id]["status"] == "would_call", nodes[node_id]
        assert nodes[node_id]["would_call"] and nodes[node_id]["differs_from_recorded"]
        assert "output" not in nodes[node_id]
    assert nodes["after2"]["status"] == "blocked"
    assert nodes["after2"]["blocked_by"] == ["call2"] and not nodes["after2"]["would_call"]
    # A new pure node is evaluated; the end node does not read the requests' outputs.
    assert nodes["extra"] == {
        "node_id": "extra",
        "node_type": "transform",
        "status": "completed",
        "output": 50,
        "differs_from_recorded": True,
        "would_call": False,
        "reused": False,
    }
    assert nodes["out"]["output"] == {"tag": "v2", "route": "low"}

    assert len(peer.calls) == calls_before  # nothing was called
    assert await run_ids_of(api, workflow_id) == runs_before  # nothing was started

    # Against what is published (what the run executed): the run, as recorded.
    published = await api.post(
        f"/v1/workflows/{workflow_id}/dry-run",
        json={"run_id": source["id"], "config_source": "published"},
    )
    assert published.status_code == 200, published.text
    same = published.json()["nodes"]
    assert [n["node_id"] for n in same] == [step["node_id"] for step in recorded.values()]
    for node in same:
        assert not node["differs_from_recorded"] and not node["would_call"], node
        assert node["status"] == recorded[node["node_id"]]["status"]
        assert node.get("output") == (
            recorded[node["node_id"]]["output"] if node["status"] == "completed" else None
        )
    assert {n["node_id"] for n in same if n["reused"]} == {"call", "notify"}
    assert len(peer.calls) == calls_before


async def test_a_pure_node_that_fails_is_reported_on_that_node(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id, source = await completed_run(api, peer)
    draft = routed(peer)
    [big] = [node for node in draft["nodes"] if node["id"] == "big"]
    big["config"]["expression"] = "abs(shape.tag) > `1`"  # abs of a string: fails when evaluated
    [shape] = [node for node in draft["nodes"] if node["id"] == "shape"]
    # Renders to megabytes from a small config: too large to record.
    shape["config"]["output"]["big"] = ["{{wide}}"] * 300
    draft["nodes"].append(
        {"id": "wide", "type": "transform", "config": {"output": ["{{in}}"] * 3000}}
    )
    draft["edges"] += [{"source": "in", "target": "wide"}, {"source": "wide", "target": "shape"}]
    draft["nodes"].append({"id": "side", "type": "transform", "config": {"output": "{{in}}"}})
    draft["edges"].append({"source": "in", "target": "side"})
    draft["edges"].append({"source": "side", "target": "out"})
    await replace_draft(api, workflow_id, draft)

    response = await api.post(f"/v1/workflows/{workflow_id}/dry-run", json={"run_id": source["id"]})
    assert response.status_code == 200, response.text
    nodes = {node["node_id"]: node for node in response.json()["nodes"]}
    assert nodes["shape"]["status"] == "error"
    assert nodes["shape"]["error"]["type"] == "OutputTooLarge", nodes["shape"]
    assert nodes["shape"]["differs_from_recorded"] and "output" not in nodes["shape"]
    # What depends on it cannot be decided; the rest still is.
    assert nodes["big"]["status"] == "blocked" and nodes["big"]["blocked_by"] == ["shape"]
    assert nodes["hi"]["status"] == nodes["lo"]["status"] == "blocked"
    assert nodes["side"]["status"] == "completed" and nodes["side"]["output"] == {"amount": 50}
    assert nodes["call"]["reused"] and nodes["notify"]["reused"]

    # The failing expression alone: the condition's own error.
    [shape] = [node for node in draft["nodes"] if node["id"] == "shape"]
    shape["config"]["output"].pop("big")
    await replace_draft(api, workflow_id, draft)
    response = await api.post(f"/v1/workflows/{workflow_id}/dry-run", json={"run_id": source["id"]})
    assert response.status_code == 200, response.text
    nodes = {node["node_id"]: node for node in response.json()["nodes"]}
    assert nodes["big"]["status"] == "error"
    assert nodes["big"]["error"]["type"] == "ExpressionError", nodes["big"]
    assert nodes["out"]["status"] == "blocked" and nodes["out"]["blocked_by"] == ["big"]


async def test_hostile_requests(
    api: httpx.AsyncClient, org_b: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id, source = await completed_run(api, peer)
    path = f"/v1/workflows/{workflow_id}/dry-run"
    other = await create_published(api, linear_definition(), name="Other")
    other_run = await start_run(
        api, other, json_inputs={"meta": {"customer_id": "c"}}, text_inputs={"note": "n"}
    )
    unpublished = (
        await api.post("/v1/workflows", json={"name": "draft only", "definition": routed(peer)})
    ).json()["id"]

    missing = "run_" + "0" * 26
    assert_error(await api.post(path, json={"run_id": missing}), 404, "run_not_found")
    assert_error(await api.post(path, json={"run_id": "../etc"}), 404, "run_not_found")
    error = assert_error(
        await api.post(path, json={"run_id": other_run["id"]}), 422, "run_of_another_workflow"
    )
    assert error["details"]["errors"][0]["loc"] == ["body", "run_id"]
    assert_error(
        await api.post(f"/v1/workflows/{unpublished}/dry-run", json={"run_id": source["id"]}),
        422,
        "run_of_another_workflow",
    )
    assert_error(
        await api.post(
            f"/v1/workflows/{unpublished}/dry-run",
            json={"run_id": source["id"], "config_source": "published"},
        ),
        409,
        "workflow_not_published",
    )
    for body in (
        {"run_id": source["id"], "config_source": "live"},
        {"run_id": source["id"], "extra": 1},
        {"run_id": 5},
        {},
        [source["id"]],
        "run",
        None,
    ):
        error = assert_error(await api.post(path, json=body), 422)
        assert error["type"] == "invalid_request"
    assert_error(
        await api.post(path, content=b"{not json", headers={"content-type": "application/json"}),
        422,
    )
    assert_error(
        await api.post(path, content=b"run_id=x", headers={"content-type": "text/plain"}), 415
    )
    assert_error(
        await api.post("/v1/workflows/wf_missing/dry-run", json={"run_id": source["id"]}),
        404,
        "workflow_not_found",
    )
    # Another organization sees neither the workflow nor the run.
    assert_error(await org_b.post(path, json={"run_id": source["id"]}), 404, "workflow_not_found")
    theirs = await create_published(org_b, routed(peer), name="Theirs")
    assert_error(
        await org_b.post(f"/v1/workflows/{theirs}/dry-run", json={"run_id": source["id"]}),
        404,
        "run_not_found",
    )
    await wait_for_run(api, other_run["id"])
