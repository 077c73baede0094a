"""The node-type registry, read by the API (validation, OpenAPI) and the worker (activities).

Custom node types are ordinary Python packages exposing a `NodeType` through the entry point
group `runlane.node_types`; they are loaded here, so nobody forks Runlane to add one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

import httpx
from pydantic import BaseModel

from runlane.definition import Definition, NodeRole
from runlane.settings import Settings
from workflows.models import NodePlan

if TYPE_CHECKING:
    from activities.models import NodeTaskInput

ENTRY_POINT_GROUP = "runlane.node_types"
_REMOTE_TIMEOUT_MARGIN_S = 5.0

# batch: a pure node (needs `evaluate`): evaluated with the other ready pure work in one local
#   activity whose result records its outcome in the run's history;
# remote: a regular activity (I/O, retried by the server);
# local: a local activity of its own (short work that needs no server round trip);
# workflow: a durable timer or a signal, handled by the workflow itself.
# Runs started earlier froze "workflow" (pure nodes evaluated in the workflow, unrecorded) or
# "local" for pure nodes; they finish that way.
Execution = Literal["batch", "local", "remote", "workflow"]


@dataclass(frozen=True)
class ActivityDeps:
    """What activity factories may need; built once in worker.py."""

    settings: Settings
    http_client: httpx.AsyncClient


@dataclass(frozen=True)
class NodeType:
    name: str
    role: NodeRole
    config_model: type[BaseModel]
    execution: Execution
    description: str
    default_timeout_s: float = 30.0
    allowed_branches: frozenset[str] = frozenset()
    # Returns the activity callable registered under `name`; None for workflow-handled types.
    make_activity: Callable[[ActivityDeps], Callable[..., Any]] | None = None
    # Pure evaluation (deterministic, no I/O, no clock) for execution "batch"; runs started
    # before outcomes were recorded call it inside the workflow.
    evaluate: Callable[[NodeTaskInput], Any] | None = None
    # Re-running it repeats an effect outside Runlane (shown by the retry plan).
    side_effecting: bool = False


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
        return [t.make_activity(deps) for t in self._types.values() if t.make_activity]

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
            plans[node.id] = NodePlan(role=spec.role, execution=spec.execution, timeout_s=timeout)
        return plans


def build_registry(extra: Iterable[NodeType] = ()) -> NodeRegistry:
    from activities import control, http, inputs, pure

    types: dict[str, NodeType] = {}
    for node_type in (*inputs.NODE_TYPES, *pure.NODE_TYPES, *http.NODE_TYPES, *control.NODE_TYPES):
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
