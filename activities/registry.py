"""The node-type registry, read by the API (validation, OpenAPI) and the worker (activities):
it assembles the node types each family module defines (activities/node_type.py says what one
is) and plans how a definition's nodes execute.

Custom node types are ordinary Python packages exposing a `NodeType` through the entry point
group `runlane.node_types`; they are loaded here, so nobody forks Runlane to add one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from activities import control, http, inputs, maps, pure, subworkflow

# `activities.registry.NodeType` is the name plugins are documented to use (README).
from activities.node_type import ActivityDeps, NodePlan, NodeType
from activities.usage import metered
from runlane.definition import Definition, Node

__all__ = ["ActivityDeps", "NodeRegistry", "NodeType", "build_registry", "default_registry"]

ENTRY_POINT_GROUP = "runlane.node_types"
_REMOTE_TIMEOUT_MARGIN_S = 5.0


class NodeRegistry(Mapping[str, NodeType]):
    """Node types by name; a read-only mapping, so the validator can take it as is."""

    def __init__(self, types: Mapping[str, NodeType]) -> None:
        self._types = dict(types)

    def __getitem__(self, name: str) -> NodeType:
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def activities(self, deps: ActivityDeps) -> list[Callable[..., Any]]:
        """Each node type's activity, run under a usage meter (activities/usage.py) when
        `deps` has a ledger: its requests and reported costs are recorded per attempt."""
        return [
            metered(t.make_activity(deps), deps.ledger)
            for t in self._types.values()
            if t.make_activity
        ]

    def repeats_effects_per_item(self, node: Node) -> bool:
        """A node whose inline node (a map's) is of a side-effecting type: running it again
        calls that node again for the items that run again. A map with `workflow_id` too: its
        items that run again are new child runs (as a subworkflow node's retry is)."""
        spec = self._types.get(node.type)
        if spec is not None and spec.behaviour.map and node.config.get("workflow_id"):
            return True
        field = spec.inline_node_field if spec is not None else None
        inline = node.config.get(field) if field else None
        inner_type = inline.get("type") if isinstance(inline, dict) else None
        inner = self._types.get(inner_type) if isinstance(inner_type, str) else None
        return inner is not None and inner.side_effecting

    def plans(self, definition: Definition) -> dict[str, NodePlan]:
        """How each node of a valid definition executes, frozen into the run's input."""
        plans: dict[str, NodePlan] = {}
        for node in definition.nodes:
            spec = self._types[node.type]
            timeout = node.timeout_s or spec.default_timeout_s
            own_timeout = node.config.get("timeout_s")
            if node.timeout_s is None and spec.execution == "remote" and own_timeout:
                # The activity's timeout leaves room for the node's own request timeout.
                timeout = float(own_timeout) + _REMOTE_TIMEOUT_MARGIN_S
            plans[node.id] = NodePlan(
                role=spec.role,
                execution=spec.execution,
                timeout_s=timeout,
                behaviour=spec.behaviour,
            )
        return plans


def build_registry(extra: Iterable[NodeType] = ()) -> NodeRegistry:
    types: dict[str, NodeType] = {}
    core = (*inputs.NODE_TYPES, *pure.NODE_TYPES, *http.NODE_TYPES, *control.NODE_TYPES)
    for node_type in (*core, *subworkflow.NODE_TYPES, *maps.NODE_TYPES):
        types[node_type.name] = node_type
    for node_type in extra:
        if node_type.name in types:
            raise ValueError(f"node type '{node_type.name}' is registered twice")
        types[node_type.name] = node_type
    return NodeRegistry(types)


def _plugin_node_types() -> list[NodeType]:
    loaded: list[NodeType] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        value = point.load()
        loaded.extend(value if isinstance(value, list | tuple) else [value])
    return loaded


@lru_cache
def default_registry() -> NodeRegistry:
    """Core node types plus every installed plugin's."""
    return build_registry(_plugin_node_types())
