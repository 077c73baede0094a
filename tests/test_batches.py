"""The batch of pure work (activities/evaluation.py) on its own: what it decides, in what order,
and where it stops. The end-to-end behaviour is covered by the run and recovery tests."""

from __future__ import annotations

import random
import string
from typing import Any

from activities import evaluation
from activities.evaluation import evaluate_batch
from activities.models import BatchNode, NodeOutcome, PureBatchInput
from activities.registry import default_registry
from runlane.definition import Edge, Node

EVALUATORS = {name: t.evaluate for name, t in default_registry().items() if t.evaluate}
KINDS = {
    "start_json": "pure",
    "transform": "pure",
    "condition": "pure",
    "end": "pure",
    "human_review": "review",
    "http_request": "other",
}
ROLES = {"start_json": "start", "condition": "condition", "end": "end", "human_review": "review"}


def batch(
    nodes: list[tuple[str, str, dict[str, Any]]],
    edges: list[tuple[str, str] | tuple[str, str, str]],
    inputs: dict[str, Any] | None = None,
) -> PureBatchInput:
    """A whole small graph handed to one batch, as the workflow would at the run's start."""
    edge_models = [
        Edge(source=e[0], target=e[1], branch=e[2] if len(e) == 3 else None)  # type: ignore[misc]
        for e in edges
    ]
    incoming = {node_id: 0 for node_id, _, _ in nodes}
    for edge in edge_models:
        incoming[edge.target] += 1
    specs = [
        BatchNode(
            node=Node(id=node_id, type=node_type, label=node_id.upper(), config=config),
            role=ROLES.get(node_type, "task"),  # type: ignore[arg-type]
            kind=KINDS[node_type],  # type: ignore[arg-type]
            unresolved=incoming[node_id],
            taken=0,
            has_incoming=incoming[node_id] > 0,
            reads=[other for other, _, _ in nodes if other != node_id],
            input=(inputs or {}).get(node_id),
        )
        for node_id, node_type, config in nodes
    ]
    return PureBatchInput(
        run_id="run_1",
        workflow_id="wf_1",
        attempt=1,
        ready=[node_id for node_id, count in incoming.items() if count == 0],
        nodes=specs,
        edges=edge_models,
    )


def decided(outcomes: list[NodeOutcome]) -> list[tuple[str, str]]:
    return [(o.node_id, o.status) for o in outcomes]


def test_evaluates_pure_nodes_in_order_and_skips_the_untaken_branch_through_io() -> None:
    run = batch(
        [
            ("meta", "start_json", {}),
            ("big", "condition", {"expression": "meta.amount > `10`"}),
            ("call", "http_request", {"url": "http://127.0.0.1:1/x"}),
            ("after", "transform", {"output": "{{call.status}}"}),
            ("small", "transform", {"output": {"amount": "{{meta.amount}}"}}),
            ("out", "end", {"outputs": {"small": "{{small}}", "after": "{{after}}"}}),
        ],
        [
            ("meta", "big"),
            ("big", "call", "true"),
            ("big", "small", "false"),
            ("call", "after"),
            ("after", "out"),
            ("small", "out"),
        ],
        inputs={"meta": {"amount": 3}},
    )
    outcomes = evaluate_batch(run, EVALUATORS)
    assert decided(outcomes) == [
        ("meta", "completed"),
        ("big", "completed"),
        ("call", "skipped"),
        ("small", "completed"),
        ("after", "skipped"),
        ("out", "completed"),
    ]
    assert outcomes[-1].output == {"small": {"amount": 3}, "after": None}
    assert all(o.label == o.node_id.upper() for o in outcomes)
    completed = [o for o in outcomes if o.status == "completed"]
    assert all(o.started_at and o.completed_at for o in completed)


def test_stops_at_io_that_runs_and_prepares_reviews() -> None:
    run = batch(
        [
            ("meta", "start_json", {}),
            ("call", "http_request", {"url": "http://127.0.0.1:1/x"}),
            ("review", "human_review", {"payload": {"amount": "{{meta.amount}}"}}),
            ("out", "end", {"outputs": "{{review}}"}),
        ],
        [("meta", "call"), ("meta", "review"), ("review", "out"), ("call", "out")],
        inputs={"meta": {"amount": 5}},
    )
    outcomes = evaluate_batch(run, EVALUATORS)
    # `call` runs as an activity of its own; `review` waits; `out` is not ready.
    assert decided(outcomes) == [("meta", "completed"), ("review", "waiting_for_human")]
    assert outcomes[1].output == {"amount": 5}


def test_stops_at_the_first_error() -> None:
    run = batch(
        [
            ("meta", "start_json", {}),
            ("check", "condition", {"expression": "length(meta.amount) > `1`"}),
            ("out", "end", {"outputs": {}}),
        ],
        [("meta", "check"), ("check", "out", "true")],
        inputs={"meta": {"amount": 5}},
    )
    outcomes = evaluate_batch(run, EVALUATORS)
    assert decided(outcomes) == [("meta", "completed"), ("check", "error")]
    assert outcomes[1].error is not None and outcomes[1].error.type == "ExpressionError"
    assert "length" in outcomes[1].error.message


def test_an_output_over_the_limit_even_compressed_is_the_nodes_error(monkeypatch: Any) -> None:
    monkeypatch.setattr(evaluation, "MAX_OUTPUT_BYTES", 1000)
    noise = random.Random(7)
    run = batch(
        [
            ("a", "start_json", {}),
            ("b", "start_json", {}),
            ("both", "transform", {"output": ["{{a}}", "{{b}}"]}),
            ("many", "transform", {"output": ["{{a}}", "文" * 5000]}),
        ],
        [("a", "both"), ("b", "both"), ("a", "many")],
        inputs={key: "".join(noise.choices(string.ascii_letters, k=700)) for key in "ab"},
    )
    outcomes = {o.node_id: o for o in evaluate_batch(run, EVALUATORS)}
    # 15,700 bytes of JSON that compress well: within the limit.
    assert outcomes["many"].status == "completed"
    assert outcomes["both"].status == "error" and outcomes["both"].output is None
    assert outcomes["both"].error is not None and outcomes["both"].error.type == "OutputTooLarge"
    assert "even compressed" in outcomes["both"].error.message


def test_a_full_batch_leaves_the_rest_for_the_next_one(monkeypatch: Any) -> None:
    monkeypatch.setattr(evaluation, "BATCH_BUDGET_BYTES", 250)
    nodes = [(f"s{i}", "start_json", {}) for i in range(4)]
    run = batch(
        [*nodes, ("out", "end", {"outputs": {}})],
        [(f"s{i}", "out") for i in range(4)],
        inputs={f"s{i}": "y" * 100 for i in range(4)},
    )
    outcomes = evaluate_batch(run, EVALUATORS)
    assert decided(outcomes) == [("s0", "completed"), ("s1", "completed")]


def test_outcomes_recorded_before_a_reset_are_taken_as_they_are() -> None:
    run = batch(
        [
            ("meta", "start_json", {}),
            ("shape", "transform", {"output": "{{meta}}"}),
            ("out", "end", {"outputs": "{{shape}}"}),
        ],
        [("meta", "shape"), ("shape", "out")],
        inputs={"meta": 1},
    )
    kept = NodeOutcome(
        node_id="shape", label="SHAPE", status="completed", output="as recorded", attempt=1
    )
    outcomes = evaluate_batch(run, EVALUATORS, {"shape": kept.model_copy(update={"reused": True})})
    assert decided(outcomes) == [
        ("meta", "completed"),
        ("shape", "completed"),
        ("out", "completed"),
    ]
    assert outcomes[1].reused and outcomes[1].output == "as recorded"
    assert outcomes[2].output == "as recorded" and not outcomes[2].reused


def test_a_batch_past_its_time_budget_leaves_the_rest(monkeypatch: Any) -> None:
    monkeypatch.setattr(evaluation, "BATCH_BUDGET_SECONDS", 0.0)
    run = batch(
        [("meta", "start_json", {}), ("out", "end", {"outputs": "{{meta}}"})],
        [("meta", "out")],
        inputs={"meta": 1},
    )
    # Always at least one node, so every batch makes progress.
    assert decided(evaluate_batch(run, EVALUATORS)) == [("meta", "completed")]
