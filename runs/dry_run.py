"""Dry run (API.md "Recovery: more"): a recorded run's inputs evaluated against the workflow's
draft (or published) definition without side effects. Nothing is called and nothing is
started: the run is read, the definition is read, and the rest is computation.

The definition is walked in topological order with the join rule of runlane/frontier.py: a
node runs when one of its incoming edges was taken, is skipped when none was. Each node that
runs is decided by its node type:

* **pure nodes** (a node type with `evaluate` and not `side_effecting`: start nodes,
  transform, condition, end, pure plugins) are evaluated with the worker's own evaluator, as
  a batch evaluates them (activities/evaluation.py), on the recorded run's inputs, run id and
  the definition's vars.
  A failure (a bad template, an expression error, an output over the limits) is that node's
  `error`, never the request's. Start nodes take the run's recorded input for their id; a
  start node the run had no input for, or whose input fails its schema or `accept`, is an
  error.
* **delay** completes with `{}`: its only effect is time.
* **nodes with effects** (http_request, subworkflow, map, plugins without `evaluate`) reuse the
  recorded outcome when the node's type and config are the ones the run executed, the recorded
  step completed, and every output it reads (and every `{{$vars.name}}` it references) equals
  what the run had: `reused: true`. Otherwise they are `would_call` (the real run would call,
  start a child or run the items): no output. A map counts as one such node even when its
  items are pure: a dry run does not run them.
* **human_review** reuses its recorded decision under the same conditions (and routes by it:
  approve takes the edges without a branch, reject the `rejected` edges, or fails the node
  where the definition has none, as the run would); otherwise it is `would_call`: a reviewer
  would be asked.

A `would_call` node is assumed to succeed: its edges without a branch are taken, so what
follows it still runs. What cannot be decided is `blocked`, with `blocked_by` naming the
`would_call` or failed nodes it waits on: a node that reads the output of a `would_call`,
`blocked` or failed node, and a node whose only incoming edges come from a node whose routing
is unknown (a `would_call` review, a `blocked` condition, a failed node). A failed node does
not stop the dry run: what depends on it is blocked, the rest is still evaluated. Untaken sides
of a condition are `skipped`, as in a run.

`differs_from_recorded`: the status differs from the recorded step's, or both completed with
different outputs, or both failed with different errors. A node the recorded run did not have
differs, and so does every `would_call` or `blocked` node (not known to be the same).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from activities.evaluation import evaluate_node
from activities.inputs import StartConfig, StartJsonConfig, mime_accepted, schema_problems
from activities.models import BatchNode, PureBatchInput
from activities.node_type import NodeType
from activities.registry import NodeRegistry
from runlane import expressions, templating
from runlane.definition import Definition, Edge, Graph, Node
from runlane.errors import invalid, not_found
from runlane.frontier import taken_edges
from runs.reader import RunReader
from runs.starter import ConfigSource, PublishedDefinitions, checked_definition, definition_for
from store.workflows import WorkflowRepository
from workflows.models import RunInputs, StepState

DryRunStatus = Literal["completed", "skipped", "error", "would_call", "blocked"]


@dataclass(frozen=True)
class DryRunError:
    type: str
    message: str


@dataclass(frozen=True)
class DryRunNode:
    node_id: str
    node_type: str
    status: DryRunStatus
    differs_from_recorded: bool
    would_call: bool
    # The recorded outcome was taken as it is (a node with effects, or a review, unchanged).
    reused: bool = False
    output: Any = None
    error: DryRunError | None = None
    # blocked: the would_call or failed nodes it waits on.
    blocked_by: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedRun:
    """What a dry run reads of the recorded run."""

    run_id: str
    organization_id: str
    workflow_id: str
    # The definition the run executed (its snapshot, or the draft it ran).
    definition: Definition
    inputs: RunInputs
    steps: list[StepState]


_MISSING = object()


@dataclass(frozen=True)
class _Route:
    """How a decided node's outgoing edges resolved: the taken ones, or, when its routing is
    unknown, every one of them unknown because of `unknown`."""

    taken: frozenset[int] = frozenset()
    unknown: frozenset[str] = frozenset()


_NOT_TAKEN = _Route()


class _DryRun:
    def __init__(self, definition: Definition, registry: NodeRegistry, run: RecordedRun) -> None:
        self._definition = definition
        self._graph = Graph(definition)
        self._registry = registry
        self._run = run
        self._old_nodes = {node.id: node for node in run.definition.nodes}
        self._steps = {step.node_id: step for step in run.steps}
        self._evaluators = {name: t.evaluate for name, t in registry.items() if t.evaluate}
        self._batch = PureBatchInput(
            run_id=run.run_id,
            workflow_id=run.workflow_id,
            vars=definition.vars,
            attempt=1,
            ready=[],
            nodes=[],
        )
        # Outputs known now (completed nodes); nodes whose output is unknown, with why.
        self._outputs: dict[str, Any] = {}
        self._unknown: dict[str, frozenset[str]] = {}
        self._routes: dict[str, _Route] = {}

    def nodes(self) -> list[DryRunNode]:
        return [self._decide(node_id) for node_id in self._graph.topological_order]

    # ------------------------------------------------------------------ deciding one node

    def _decide(self, node_id: str) -> DryRunNode:
        node = self._graph.nodes[node_id]
        incoming = self._graph.incoming[node_id]
        if incoming:
            taken = any(id(edge) in self._routes[edge.source].taken for edge in incoming)
            if not taken:
                causes = frozenset().union(*(self._routes[e.source].unknown for e in incoming))
                if causes:
                    return self._blocked(node, causes, route_known=False)
                self._routes[node_id] = _NOT_TAKEN
                return self._result(node, "skipped")
        spec = self._registry.get(node.type)
        if spec is None:  # (a definition is checked against the registry: never)
            return self._failed(node, DryRunError("UnknownNodeType", f"no node type {node.type}"))
        reads = self._reads(node, spec)
        causes = frozenset().union(
            *(self._unknown[name] for name in reads if name in self._unknown)
        )
        if spec.role == "review":
            return self._review(node, reads, causes)
        if spec.evaluate is not None and not spec.side_effecting:
            if causes:
                return self._blocked(node, causes, route_known=spec.role != "condition")
            return self._evaluate(node, spec, reads)
        if spec.behaviour.timer:
            return self._completed(node, {}, spec)
        return self._with_effects(node, spec, reads, causes)

    def _evaluate(self, node: Node, spec: NodeType, reads: list[str]) -> DryRunNode:
        start_input: Any = None
        if spec.role == "start":
            start_input, problem = self._start_input(node, spec)
            if problem is not None:
                return self._failed(node, problem)
        outcome = evaluate_node(
            self._batch,
            BatchNode(
                node=node,
                role=spec.role,
                kind="pure",
                unresolved=0,
                taken=0,
                has_incoming=bool(self._graph.incoming[node.id]),
                reads=reads,
                input=start_input,
            ),
            self._outputs,
            self._evaluators,
        )
        if outcome.error is not None:
            return self._failed(node, DryRunError(outcome.error.type, outcome.error.message))
        return self._completed(node, outcome.output, spec)

    def _with_effects(
        self, node: Node, spec: NodeType, reads: list[str], causes: frozenset[str]
    ) -> DryRunNode:
        if not self._same_config(node):
            return self._would_call(node, route_known=True)
        if causes:
            return self._blocked(node, causes, route_known=True)
        step = self._steps.get(node.id)
        if step is not None and step.status == "completed" and self._same_inputs(node, reads):
            return self._completed(node, step.output, spec, reused=True)
        return self._would_call(node, route_known=True)

    def _review(self, node: Node, reads: list[str], causes: frozenset[str]) -> DryRunNode:
        """A recorded decision is reused when the review would show the same thing; the
        routing follows it as the run workflow's (workflows/reviews.py)."""
        if not self._same_config(node):
            return self._would_call(node, route_known=False)
        if causes:
            return self._blocked(node, causes, route_known=False)
        step = self._steps.get(node.id)
        if step is None or step.review is None or not self._same_inputs(node, reads):
            return self._would_call(node, route_known=False)
        outgoing = self._graph.outgoing[node.id]
        if step.review.decision == "approve":
            edges = [edge for edge in outgoing if edge.branch is None]
            return self._completed(node, step.output, None, reused=True, edges=edges)
        rejected = [edge for edge in outgoing if edge.branch == "rejected"]
        if not rejected:
            who = f" by {step.review.reviewer}" if step.review.reviewer else ""
            why = f": {step.review.comment}" if step.review.comment else ""
            return self._failed(
                node, DryRunError("ReviewRejected", f"rejected{who}{why}"), reused=True
            )
        output = {"decision": "reject", "comment": step.review.comment}
        return self._completed(node, output, None, reused=True, edges=rejected)

    # ------------------------------------------------------------------ inputs

    def _reads(self, node: Node, spec: NodeType) -> list[str]:
        """The ancestors whose outputs the node reads, as workflows/node_inputs.py
        `NodeInputs.reads` finds them for the worker."""
        names = {ref.node_id for ref in templating.references(node.config) if ref.node_id}
        field_name = spec.behaviour.expression_field
        expression = node.config.get(field_name) if field_name else None
        if isinstance(expression, str):
            names |= expressions.field_names(expression)
        return [name for name in sorted(names) if self._graph.is_ancestor(name, node.id)]

    def _start_input(self, node: Node, spec: NodeType) -> tuple[Any, DryRunError | None]:
        """The recorded input for a start node, checked as a start checks it (runs/inputs.py)."""
        inputs = self._run.inputs
        kind = spec.behaviour.run_input
        if kind == "document":
            document = inputs.documents.get(node.id)
            if document is None:
                return None, _missing_input(node, "document")
            accept = StartConfig.model_validate(node.config).accept
            if not mime_accepted(document.mime_type, accept):
                message = f"{document.mime_type} is not accepted (accept: {accept})"
                return None, DryRunError("InvalidInput", message)
            return document.model_dump(), None
        if kind == "json":
            if node.id not in inputs.json_data:
                return None, _missing_input(node, "JSON")
            value = inputs.json_data[node.id]
            schema = StartJsonConfig.model_validate(node.config).json_schema
            problems = schema_problems(schema, value)
            if problems:
                return None, DryRunError("InvalidInput", "; ".join(problems))
            return value, None
        if kind == "text":
            if node.id not in inputs.text_data:
                return None, _missing_input(node, "text")
            return inputs.text_data[node.id], None
        return None, None

    def _same_config(self, node: Node) -> bool:
        old = self._old_nodes.get(node.id)
        return old is not None and old.type == node.type and old.config == node.config

    def _same_inputs(self, node: Node, reads: list[str]) -> bool:
        """Every output the node reads, and every var it references, is what the run had."""
        for name in reads:
            step = self._steps.get(name)
            recorded = step.output if step is not None and step.status == "completed" else _MISSING
            if self._outputs.get(name, _MISSING) != recorded:
                return False
        old_vars, new_vars = self._run.definition.vars, self._definition.vars
        for ref in templating.references(node.config):
            if ref.root == "$vars" and ref.path:
                name = ref.path[0]
                if old_vars.get(name, _MISSING) != new_vars.get(name, _MISSING):
                    return False
        return True

    # ------------------------------------------------------------------ outcomes

    def _completed(
        self,
        node: Node,
        output: Any,
        spec: NodeType | None,
        *,
        reused: bool = False,
        edges: list[Edge] | None = None,
    ) -> DryRunNode:
        self._outputs[node.id] = output
        if edges is None:
            role = spec.role if spec is not None else "task"
            edges = taken_edges(role, self._graph.outgoing[node.id], output)
        self._routes[node.id] = _Route(taken=frozenset(id(edge) for edge in edges))
        return self._result(node, "completed", output=output, reused=reused)

    def _failed(self, node: Node, error: DryRunError, *, reused: bool = False) -> DryRunNode:
        # The run would fail here: what follows waits on it.
        self._unknown[node.id] = frozenset({node.id})
        self._routes[node.id] = _Route(unknown=frozenset({node.id}))
        return self._result(node, "error", error=error, reused=reused)

    def _would_call(self, node: Node, *, route_known: bool) -> DryRunNode:
        """`route_known`: the node takes its edges without a branch when it succeeds (a
        review's routing is its reviewer's decision: unknown)."""
        self._unknown[node.id] = frozenset({node.id})
        self._routes[node.id] = self._assumed_route(node, frozenset({node.id}), route_known)
        return self._result(node, "would_call", would_call=True)

    def _blocked(self, node: Node, causes: frozenset[str], *, route_known: bool) -> DryRunNode:
        """`route_known`: the node runs and takes its edges without a branch; its output is
        what is unknown. Otherwise whether it runs, or which way it routes, is unknown too."""
        self._unknown[node.id] = causes
        self._routes[node.id] = self._assumed_route(node, causes, route_known)
        return self._result(node, "blocked", blocked_by=sorted(causes))

    def _assumed_route(self, node: Node, causes: frozenset[str], route_known: bool) -> _Route:
        if not route_known:
            return _Route(unknown=causes)
        edges = self._graph.outgoing[node.id]
        return _Route(taken=frozenset(id(edge) for edge in edges if edge.branch is None))

    def _result(
        self,
        node: Node,
        status: DryRunStatus,
        *,
        output: Any = None,
        error: DryRunError | None = None,
        reused: bool = False,
        would_call: bool = False,
        blocked_by: list[str] | None = None,
    ) -> DryRunNode:
        return DryRunNode(
            node_id=node.id,
            node_type=node.type,
            status=status,
            differs_from_recorded=self._differs(node.id, status, output, error),
            would_call=would_call,
            reused=reused,
            output=output,
            error=error,
            blocked_by=blocked_by or [],
        )

    def _differs(
        self, node_id: str, status: DryRunStatus, output: Any, error: DryRunError | None
    ) -> bool:
        step = self._steps.get(node_id)
        if step is None or step.status != status:
            return True
        if status == "completed":
            return bool(step.output != output)
        if status == "error":
            recorded = (step.error.type, step.error.message) if step.error else None
            return recorded != ((error.type, error.message) if error else None)
        return False


def _missing_input(node: Node, kind: str) -> DryRunError:
    return DryRunError(
        "MissingInput", f"the recorded run has no {kind} input for start node '{node.id}'"
    )


def dry_run(definition: Definition, registry: NodeRegistry, run: RecordedRun) -> list[DryRunNode]:
    """Each node of `definition` in topological order, decided as the module docstring says.
    Pure and CPU-bound: callers on an event loop run it in a thread."""
    return _DryRun(definition, registry, run).nodes()


class DryRuns:
    """Reads the definition and the recorded run, and dry-runs one against the other."""

    def __init__(
        self,
        reader: RunReader,
        workflows: WorkflowRepository,
        registry: NodeRegistry,
        published: PublishedDefinitions,
    ) -> None:
        self._reader = reader
        self._workflows = workflows
        self._registry = registry
        self._published = published

    async def dry_run(
        self, org: str, workflow_id: str, run_id: str, config_source: ConfigSource
    ) -> list[DryRunNode]:
        """NotFound for a workflow or run missing or of another organization (the workflow
        first), InvalidInput for a run of another workflow, Conflict for `published` when
        nothing is published."""
        draft: dict[str, Any] | None = None
        definition: Definition | None = None
        if config_source == "draft":
            # Read here, checked below in the thread: checking a 1,000-node draft takes a
            # while too (runs/starter.py `definition_for` checks it on the event loop).
            workflow = await self._workflows.get(org, workflow_id)
            if workflow is None:
                raise not_found("workflow", workflow_id)
            draft, own_workflow_id = workflow.draft_definition, workflow.id
        else:
            definition, ref = await definition_for(
                org, workflow_id, config_source, self._workflows, self._registry, self._published
            )
            own_workflow_id = ref.workflow_id
        view = await self._reader.get(org, run_id)
        if view.state.workflow.workflow_id != own_workflow_id:
            message = (
                f"Run {run_id} is a run of workflow {view.state.workflow.workflow_id}, not of "
                f"{own_workflow_id}: dry-run it against its own workflow."
            )
            raise invalid(
                "run_of_another_workflow",
                message,
                [{"loc": ["body", "run_id"], "message": message}],
            )
        run_input = await self._reader.run_input(run_id)
        recorded = RecordedRun(
            run_id=run_id,
            organization_id=org,
            workflow_id=own_workflow_id,
            definition=run_input.definition,
            inputs=view.state.inputs,
            steps=view.state.steps,
        )

        def evaluate() -> list[DryRunNode]:
            checked = definition
            if checked is None:
                assert draft is not None
                checked = checked_definition(draft, self._registry)
            return dry_run(checked, self._registry, recorded)

        # Checking and evaluating a thousand nodes takes a while: not on the API's event loop.
        return await asyncio.to_thread(evaluate)
