"""What a node is given when it runs: the outputs of the ancestors it reads (only those, so
history stays small), the run's vars, and for a start node the run input meant for it. Used
inside the run workflow, for activities, batches and nodes evaluated in the workflow alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import NodeTaskInput
    from activities.node_type import NodeBehaviour
    from runlane import expressions, templating
    from runlane.definition import Graph, Node
    from workflows.models import NodePlan, RunInput


class NodeInputs:
    def __init__(
        self,
        run_input: RunInput,
        graph: Graph,
        behaviour: Mapping[str, NodeBehaviour],
        outputs: Mapping[str, Any],
    ) -> None:
        self._input = run_input
        self._graph = graph
        self._behaviour = behaviour
        self._outputs = outputs

    def reads(self, node: Node) -> list[str]:
        """The ancestors whose outputs the node reads (only those travel to its activity)."""
        names = {ref.node_id for ref in templating.references(node.config) if ref.node_id}
        field = self._behaviour[node.id].expression_field
        expression = node.config.get(field) if field else None
        if isinstance(expression, str):
            names |= expressions.field_names(expression)
        return [name for name in sorted(names) if self._graph.is_ancestor(name, node.id)]

    def start_input(self, node: Node) -> Any:
        inputs = self._input.inputs
        kind = self._behaviour[node.id].run_input
        if kind == "document":
            document = inputs.documents.get(node.id)
            return document.model_dump() if document else None
        if kind == "json":
            return inputs.json_data.get(node.id)
        if kind == "text":
            return inputs.text_data.get(node.id)
        return None

    def task(self, node: Node, plan: NodePlan) -> NodeTaskInput:
        reads = self.reads(node)
        return NodeTaskInput(
            run_id=self._input.run_id,
            workflow_id=self._input.workflow.workflow_id,
            organization_id=self._input.organization_id,
            node=node,
            outputs={name: self._outputs[name] for name in reads if name in self._outputs},
            vars=self._input.definition.vars,
            input=self.start_input(node) if plan.role == "start" else None,
        )
