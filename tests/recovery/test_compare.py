"""Compare runs: `GET /v1/workflows/runs/{run_id}/compare?with=` (API.md "Recovery: more")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from runlane.definition import Definition, Edge
from runlane.frontier import taken_edges
from runs.compare import branch_of, condition_branch, snapshot_changes
from tests.api.helpers import create_published, wait_for_run
from tests.peer import Peer
from tests.recovery.compare_support import assert_error, completed_run, replace_draft, routed
from tests.recovery.support import RUNS, start_run
from workflows.models import ReviewRecord, StepState

# ------------------------------------------------------------------ the comparison itself


def test_condition_branch_is_the_branch_of_the_taken_edges() -> None:
    outgoing = [
        Edge(source="c", target="yes", branch="true"),
        Edge(source="c", target="no", branch="false"),
    ]
    for output in ({"result": True}, {"result": False}, {"result": 0}, {}, None, "x"):
        [edge] = taken_edges("condition", outgoing, output)
        assert condition_branch(output) == edge.branch


def _definition(**changes: Any) -> Definition:
    nodes: list[dict[str, Any]] = [
        {"id": "in", "type": "start_json", "label": "In"},
        {"id": "t", "type": "transform", "config": {"output": "{{$vars.greeting}}"}},
        {"id": "out", "type": "end"},
    ]
    for node in nodes:
        node.update(changes.get(node["id"], {}))
    edges = [{"source": "in", "target": "t"}, {"source": "t", "target": "out"}]
    return Definition.model_validate(
        {"nodes": nodes, "edges": edges, "vars": changes.get("vars", {"greeting": "hi"})}
    )


def test_labels_are_not_changes_but_referenced_vars_retry_and_timeout_are() -> None:
    base = _definition()
    assert snapshot_changes(_definition(**{"in": {"label": "Renamed"}}), base).changed == []
    assert snapshot_changes(_definition(vars={"greeting": "hello"}), base).changed == ["t"]
    assert snapshot_changes(_definition(vars={"greeting": "hi", "unused": 1}), base).changed == []
    retried = _definition(t={"retry": {"max_attempts": 5}})
    assert snapshot_changes(retried, base).changed == ["t"]
    assert snapshot_changes(_definition(out={"timeout_s": 9}), base).changed == ["out"]


# ------------------------------------------------------------------ through the API


async def restarted_from_draft(
    api: httpx.AsyncClient, peer: Peer
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A completed run of v1 (big: true) and its restart on a draft that changed `shape`,
    raised big's threshold over the amount (big: false) and added `extra`."""
    workflow_id, source = await completed_run(api, peer)
    await replace_draft(api, workflow_id, routed(peer, threshold=100, tag="v2", extra=True))
    restarted = await api.post(f"{RUNS}/{source['id']}/restart", json={"config_source": "draft"})
    assert restarted.status_code == 202, restarted.text
    restart = await wait_for_run(api, restarted.json()["id"])
    assert restart["status"] == "completed", restart
    assert restart["final_outputs"] == {"tag": "v2", "route": "low"}
    return source, restart


async def test_a_restart_against_its_source(api: httpx.AsyncClient, peer: Peer) -> None:
    source, restart = await restarted_from_draft(api, peer)

    response = await api.get(f"{RUNS}/{restart['id']}/compare")  # default: its source
    assert response.status_code == 200, response.text
    comparison = response.json()
    assert comparison["runs"] == [restart["id"], source["id"]]
    changes = comparison["snapshot_changes"]
    assert changes["added"] == ["extra"]
    assert changes["removed"] == []
    # shape and big by their config; in and out by their edges to the new node.
    assert changes["changed"] == ["in", "shape", "big", "out"]

    nodes = {node["node_id"]: node for node in comparison["nodes"]}
    order = [node["node_id"] for node in comparison["nodes"]]
    assert set(order) == {"in", "shape", "big", "hi", "lo", "call", "notify", "extra", "out"}
    assert len(order) == len(set(order))
    assert order.index("in") < order.index("shape") < order.index("big") < order.index("out")
    assert nodes["big"] == {
        "node_id": "big",
        "status": ["completed", "completed"],
        "output_changed": True,
        "branch": ["false", "true"],
    }
    assert nodes["hi"]["status"] == ["skipped", "completed"]
    assert nodes["lo"]["status"] == ["completed", "skipped"]
    assert nodes["hi"]["branch"] == [None, None]  # a transform does not route
    assert nodes["shape"]["output_changed"] is True
    assert nodes["in"]["output_changed"] is False
    assert nodes["in"]["status"] == ["completed", "completed"]
    assert nodes["extra"] == {
        "node_id": "extra",
        "status": ["completed", None],
        "output_changed": True,
        "branch": [None, None],
    }


async def test_with_names_the_other_run_and_the_order_follows(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    source, restart = await restarted_from_draft(api, peer)

    response = await api.get(f"{RUNS}/{source['id']}/compare", params={"with": restart["id"]})
    assert response.status_code == 200, response.text
    comparison = response.json()
    assert comparison["runs"] == [source["id"], restart["id"]]
    assert comparison["snapshot_changes"]["added"] == []
    assert comparison["snapshot_changes"]["removed"] == ["extra"]
    nodes = {node["node_id"]: node for node in comparison["nodes"]}
    assert nodes["big"]["branch"] == ["true", "false"]
    assert nodes["extra"]["status"] == [None, "completed"]
    assert comparison["nodes"][-1]["node_id"] == "extra"  # b's own nodes come last

    # A run compared with itself: nothing changed.
    itself = await api.get(f"{RUNS}/{source['id']}/compare", params={"with": source["id"]})
    assert itself.status_code == 200, itself.text
    same = itself.json()
    assert same["snapshot_changes"] == {"added": [], "removed": [], "changed": []}
    assert not any(node["output_changed"] for node in same["nodes"])


async def test_refusals(api: httpx.AsyncClient, org_b: httpx.AsyncClient, peer: Peer) -> None:
    workflow_id, source = await completed_run(api, peer)
    run_id = source["id"]

    # Started through the API: no source run, so `with` is needed.
    error = assert_error(await api.get(f"{RUNS}/{run_id}/compare"), 422, "compare_needs_other_run")
    assert error["type"] == "invalid_request"
    assert [problem["loc"] for problem in error["details"]["errors"]] == [["query", "with"]]
    assert_error(await api.get(f"{RUNS}/{run_id}/compare", params={"with": ""}), 422)

    missing = "run_" + "0" * 26
    assert_error(await api.get(f"{RUNS}/{missing}/compare"), 404, "run_not_found")
    assert_error(await api.get(f"{RUNS}/not-a-run/compare", params={"with": run_id}), 404)
    assert_error(
        await api.get(f"{RUNS}/{run_id}/compare", params={"with": missing}), 404, "run_not_found"
    )

    # Another organization's run is answered like a missing one, on either side.
    other_workflow = await create_published(org_b, routed(peer), name="Theirs")
    theirs = await start_run(org_b, other_workflow, json_inputs={"in": {"amount": 1}})
    await wait_for_run(org_b, theirs["id"])
    assert_error(
        await api.get(f"{RUNS}/{run_id}/compare", params={"with": theirs["id"]}),
        404,
        "run_not_found",
    )
    assert_error(await api.get(f"{RUNS}/{theirs['id']}/compare", params={"with": run_id}), 404)
    assert_error(await org_b.get(f"{RUNS}/{run_id}/compare", params={"with": theirs["id"]}), 404)
    assert workflow_id  # (the run's workflow exists in org a)


def test_a_review_routes_by_its_decision_and_undecided_nodes_have_no_branch() -> None:
    decided = datetime(2026, 1, 1, tzinfo=UTC)

    def step(status: str, decision: str | None = None, output: Any = None) -> StepState:
        review = ReviewRecord(decision=decision, decided_at=decided) if decision else None  # type: ignore[arg-type]
        return StepState(node_id="n", node_type="x", status=status, output=output, review=review)  # type: ignore[arg-type]

    assert branch_of("review", step("completed", "approve")) == "approved"
    assert branch_of("review", step("completed", "reject")) == "rejected"
    assert branch_of("review", step("error", "reject")) == "rejected"  # no rejected edge
    assert branch_of("review", step("waiting_for_human")) is None
    assert branch_of("condition", step("completed", output={"result": True})) == "true"
    assert branch_of("condition", step("skipped")) is None
    assert branch_of("task", step("completed", output={"result": True})) is None
