"""Comparing two runs (API.md "Recovery: more", Compare runs): how the definitions they ran
differ, and how each node fared in each.

The comparison itself (`compare`) is pure: it takes what the run service read of both runs
(their frozen definition and plans, their recorded state) and is tested without Temporal.
`Comparisons` does the reading.

Order. `a` is the run named in the path, `b` the other one (`with`; by default the run `a` was
restarted or rerun from): every pair in the answer is `[a, b]`. `snapshot_changes` reads b as
the baseline: `added` are nodes a's definition has and b's has not, `removed` the reverse,
`changed` the nodes both have whose execution differs:

* its type, config, `retry` or `timeout_s` (not its label: a label does not change what runs);
* its incoming or outgoing edges (by the node at the other end and the edge's branch): a node
  is changed when it is wired differently, so the neighbours of an added node are changed too;
* the value of a `{{$vars.name}}` its config references (the definition's `vars`).

`nodes` lists every node of either run once: a's in a's topological order, then b's others in
b's. `status` is null for the run that has no such node. `output_changed` compares the outputs
the runs recorded as JSON values (null for a run without the node or a step without output), so
outputs that carry a run's own id or a response's `Date` header do differ. `branch` says which
way a node that routes went: a condition's `"true"`/`"false"` (the branch of the edges it
took, as runlane/frontier.py `taken_edges` chooses them), a human review's
`"approved"`/`"rejected"` (its decision); null for nodes that do not route, and for a routing
node that has not decided (skipped, failed, pending).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runlane import templating
from runlane.definition import Definition, Edge, Graph, Node, NodeRole
from runlane.errors import invalid
from runs.reader import RunReader
from workflows.models import NodePlan, RunState, StepState


@dataclass(frozen=True)
class RecordedRun:
    """What a comparison reads of one run: the definition and plans it froze at start, and the
    state it recorded."""

    definition: Definition
    plans: Mapping[str, NodePlan]
    state: RunState


@dataclass(frozen=True)
class SnapshotChanges:
    added: list[str]
    removed: list[str]
    changed: list[str]


@dataclass(frozen=True)
class NodeComparison:
    node_id: str
    status: tuple[str | None, str | None]
    output_changed: bool
    branch: tuple[str | None, str | None]


@dataclass(frozen=True)
class Comparison:
    run_ids: tuple[str, str]
    snapshot_changes: SnapshotChanges
    nodes: list[NodeComparison]


def _var_names(node: Node) -> list[str]:
    names = {
        ref.path[0]
        for ref in templating.references(node.config)
        if ref.root == "$vars" and ref.path
    }
    return sorted(names)


def _wiring(graph: Graph, node_id: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The node's incoming and outgoing edges by the other end and branch, order-free."""

    def ends(edges: Iterable[Edge], end: str) -> list[tuple[str, str]]:
        return sorted((getattr(edge, end), edge.branch or "") for edge in edges)

    return ends(graph.incoming[node_id], "source"), ends(graph.outgoing[node_id], "target")


_ABSENT = object()


def _execution_of(definition: Definition, graph: Graph, node: Node) -> tuple[Any, ...]:
    """What makes the node execute as it does (see the module docstring)."""
    variables = tuple((name, definition.vars.get(name, _ABSENT)) for name in _var_names(node))
    return (
        node.type,
        node.config,
        node.retry,
        node.timeout_s,
        _wiring(graph, node.id),
        variables,
    )


def snapshot_changes(a: Definition, b: Definition) -> SnapshotChanges:
    """How `a` differs from the baseline `b`, node ids in their definition's order."""
    graph_a, graph_b = Graph(a), Graph(b)
    in_a, in_b = graph_a.nodes, graph_b.nodes
    return SnapshotChanges(
        added=[node_id for node_id in in_a if node_id not in in_b],
        removed=[node_id for node_id in in_b if node_id not in in_a],
        changed=[
            node_id
            for node_id, node in in_a.items()
            if node_id in in_b
            and _execution_of(a, graph_a, node) != _execution_of(b, graph_b, in_b[node_id])
        ],
    )


def condition_branch(output: Any) -> str:
    """The branch a completed condition took: its edges of this branch are the ones taken
    (runlane/frontier.py `taken_edges`; a unit test holds the two together)."""
    return "true" if isinstance(output, dict) and output.get("result") else "false"


def branch_of(role: NodeRole | None, step: StepState) -> str | None:
    """Which way the node routed, or None when it does not route or has not decided."""
    if role == "condition":
        return condition_branch(step.output) if step.status == "completed" else None
    if role == "review" and step.review is not None:
        return "approved" if step.review.decision == "approve" else "rejected"
    return None


def _role(run: RecordedRun, node_id: str) -> NodeRole | None:
    plan = run.plans.get(node_id)
    return plan.role if plan is not None else None


def compare(a: RecordedRun, b: RecordedRun) -> Comparison:
    """Run `a` against run `b` (the baseline): see the module docstring."""
    steps_a = {step.node_id: step for step in a.state.steps}
    steps_b = {step.node_id: step for step in b.state.steps}
    order = list(steps_a) + [node_id for node_id in steps_b if node_id not in steps_a]
    nodes: list[NodeComparison] = []
    for node_id in order:
        step_a, step_b = steps_a.get(node_id), steps_b.get(node_id)
        output_a = step_a.output if step_a is not None else None
        output_b = step_b.output if step_b is not None else None
        nodes.append(
            NodeComparison(
                node_id=node_id,
                status=(
                    step_a.status if step_a is not None else None,
                    step_b.status if step_b is not None else None,
                ),
                output_changed=output_a != output_b,
                branch=(
                    branch_of(_role(a, node_id), step_a) if step_a is not None else None,
                    branch_of(_role(b, node_id), step_b) if step_b is not None else None,
                ),
            )
        )
    return Comparison(
        run_ids=(a.state.run_id, b.state.run_id),
        snapshot_changes=snapshot_changes(a.definition, b.definition),
        nodes=nodes,
    )


class Comparisons:
    """Reads the two runs (each like any run read: NotFound when missing or of another
    organization) and compares them."""

    def __init__(self, reader: RunReader) -> None:
        self._reader = reader

    async def compare(self, org: str, run_id: str, other_run_id: str | None) -> Comparison:
        view_a = await self._reader.get(org, run_id)
        other = other_run_id or view_a.state.trigger.source_run_id
        if other is None:
            message = (
                f"Run {run_id} was not restarted or rerun from another run: name the run to "
                "compare it with in `with`."
            )
            raise invalid(
                "compare_needs_other_run", message, [{"loc": ["query", "with"], "message": message}]
            )
        view_b = await self._reader.get(org, other)
        input_a, input_b = await asyncio.gather(
            self._reader.run_input(run_id), self._reader.run_input(other)
        )
        return compare(
            RecordedRun(input_a.definition, input_a.plans, view_a.state),
            RecordedRun(input_b.definition, input_b.plans, view_b.state),
        )
