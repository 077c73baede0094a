"""Workflow definitions: the model, the graph and the validator (API.md "Definition").

The validator reports every problem it finds, each with its node id, rather than stopping at
the first: a caller fixing a definition wants the whole list. Node types are passed in (the
registry lives in `activities/`), so this module has no dependency on any node implementation
and the workflow sandbox can import it cheaply.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runlane import templating
from runlane.unicode import NOT_UNICODE, has_lone_surrogate, replaced, shown

NODE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# A node's config travels in the run's input and in every activity or batch input that runs
# the node, beside the outputs it reads, all within Temporal's 2 MB payloads; and a template
# is code, not data. 1 MiB is far beyond any real template (large constants belong in run
# inputs or documents). Expressions have limits of their own (runlane/expressions.py).
MAX_NODE_CONFIG_BYTES = 1024 * 1024
_NODE_ID_RE = re.compile(NODE_ID_PATTERN)

# What the interpreter needs to know about a node type, beyond its config schema.
NodeRole = Literal["start", "end", "condition", "review", "task"]


class NodeTypeSpec(Protocol):
    @property
    def role(self) -> NodeRole: ...
    @property
    def config_model(self) -> type[BaseModel]: ...
    @property
    def allowed_branches(self) -> frozenset[str]: ...
    @property
    def secret_fields(self) -> frozenset[str]: ...


class RetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=100)
    initial_interval_s: float = Field(default=1.0, gt=0, le=3600)
    backoff: float = Field(default=2.0, ge=1.0, le=10.0)


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    type: str
    label: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    retry: RetryConfig | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)


class Edge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    branch: str | None = None


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodes: list[Node]
    edges: list[Edge] = Field(default_factory=list)
    # Constants templates read as `{{$vars.name}}`.
    vars: dict[str, Any] = Field(default_factory=dict)


class Problem(BaseModel):
    node_id: str | None = None
    message: str


@dataclass(frozen=True)
class Graph:
    """Adjacency of a definition whose node ids and edge ends are known to be valid."""

    definition: Definition

    @cached_property
    def nodes(self) -> dict[str, Node]:
        return {node.id: node for node in self.definition.nodes}

    @cached_property
    def incoming(self) -> dict[str, list[Edge]]:
        result: dict[str, list[Edge]] = {node_id: [] for node_id in self.nodes}
        for edge in self.definition.edges:
            result[edge.target].append(edge)
        return result

    @cached_property
    def outgoing(self) -> dict[str, list[Edge]]:
        result: dict[str, list[Edge]] = {node_id: [] for node_id in self.nodes}
        for edge in self.definition.edges:
            result[edge.source].append(edge)
        return result

    @cached_property
    def topological_order(self) -> list[str]:
        """Kahn's order, ties broken by position in the definition (stable, deterministic).
        Nodes on a cycle are left out; the validator reports them."""
        position = {node_id: index for index, node_id in enumerate(self.nodes)}
        indegree = {node_id: len(edges) for node_id, edges in self.incoming.items()}
        heap = [(position[n], n) for n, degree in indegree.items() if degree == 0]
        heapq.heapify(heap)
        order: list[str] = []
        while heap:
            _, node_id = heapq.heappop(heap)
            order.append(node_id)
            for edge in self.outgoing[node_id]:
                indegree[edge.target] -= 1
                if indegree[edge.target] == 0:
                    heapq.heappush(heap, (position[edge.target], edge.target))
        return order

    @cached_property
    def _position(self) -> dict[str, int]:
        return {node_id: index for index, node_id in enumerate(self.nodes)}

    @cached_property
    def _ancestor_masks(self) -> dict[str, int]:
        """Each node's ancestors as a bitmask over definition positions. Sets of ids would be
        quadratic (a 10,000-node chain: 50 million entries, seconds to build); the masks of
        that chain are 12 MB and build in milliseconds."""
        position = self._position
        masks: dict[str, int] = {}
        for node_id in self.topological_order:
            mask = 0
            for edge in self.incoming[node_id]:
                mask |= masks.get(edge.source, 0) | (1 << position[edge.source])
            masks[node_id] = mask
        return masks

    def is_ancestor(self, candidate: str, node_id: str) -> bool:
        """Whether `candidate` has a path to `node_id` (never true of the node itself)."""
        index = self._position.get(candidate)
        return index is not None and bool(self._ancestor_masks.get(node_id, 0) >> index & 1)

    def reachable_from(self, roots: Iterable[str]) -> set[str]:
        seen = set(roots)
        stack = list(seen)
        while stack:
            for edge in self.outgoing[stack.pop()]:
                if edge.target not in seen:
                    seen.add(edge.target)
                    stack.append(edge.target)
        return seen

    def descendants(self, node_id: str) -> set[str]:
        return self.reachable_from([node_id]) - {node_id}

    def cycles(self) -> list[list[str]]:
        """The cycles, as strongly connected components with more than one node or a self-loop,
        each in definition order. Nodes merely downstream of a cycle are not on one."""
        # Kosaraju over the nodes Kahn's order could not place (every cycle lies among them).
        ordered = set(self.topological_order)
        left = [node_id for node_id in self.nodes if node_id not in ordered]
        pending = set(left)
        finished: list[str] = []
        for root in left:
            if root not in pending:
                continue
            pending.discard(root)
            stack = [(root, iter(self.outgoing[root]))]
            while stack:
                node_id, edges = stack[-1]
                edge = next((e for e in edges if e.target in pending), None)
                if edge is None:
                    finished.append(node_id)
                    stack.pop()
                else:
                    pending.discard(edge.target)
                    stack.append((edge.target, iter(self.outgoing[edge.target])))
        position = {node_id: index for index, node_id in enumerate(self.nodes)}
        unassigned = set(left)
        cycles: list[list[str]] = []
        for root in reversed(finished):
            if root not in unassigned:
                continue
            unassigned.discard(root)
            component, frontier = [root], [root]
            while frontier:
                for edge in self.incoming[frontier.pop()]:
                    if edge.source in unassigned:
                        unassigned.discard(edge.source)
                        component.append(edge.source)
                        frontier.append(edge.source)
            self_loop = any(edge.target == root for edge in self.outgoing[root])
            if len(component) > 1 or self_loop:
                cycles.append(sorted(component, key=position.__getitem__))
        return sorted(cycles, key=lambda cycle: position[cycle[0]])


def _json_size(value: Any) -> int:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode("utf-8", "surrogatepass"))


def _loc_node_id(raw: Any, loc: tuple[Any, ...]) -> str | None:
    """Name the node a pydantic error location points into: the node itself, or the source of
    an edge."""
    if len(loc) >= 2 and loc[0] in ("nodes", "edges") and isinstance(loc[1], int):
        key = "id" if loc[0] == "nodes" else "source"
        try:
            node_id = raw[loc[0]][loc[1]][key]
        except (KeyError, IndexError, TypeError):
            return None
        return node_id if isinstance(node_id, str) else None
    return None


def _format_loc(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _error_message(error: Any) -> str:
    """A pydantic error's message without the "Value error, " its custom validators get."""
    context = error.get("ctx") or {}
    if error["type"] == "value_error" and "error" in context:
        return str(context["error"])
    return str(error["msg"])


def parse_definition(raw: Any) -> tuple[Definition | None, list[Problem]]:
    try:
        return Definition.model_validate(raw), []
    except ValidationError as exc:
        problems = [
            Problem(
                node_id=_loc_node_id(raw, tuple(error["loc"])),
                message=f"{_format_loc(error['loc'])}: {_error_message(error)}",
            )
            for error in exc.errors()
        ]
        return None, problems


@dataclass(frozen=True)
class _Readable:
    """What the graph checks can use of a definition that did not parse: every node with a
    string id, every edge with string ends, built without validation. The parts that could not
    be read are remembered, so that no check guesses about them (their problems are already
    reported by the parser)."""

    definition: Definition
    # Positions in definition.nodes whose type or config could not be read.
    unread_types: frozenset[int] = frozenset()
    unread_configs: frozenset[int] = frozenset()
    # Positions in definition.edges whose branch could not be read.
    unread_branches: frozenset[int] = frozenset()
    # Targets of edges whose source could not be read: what reaches them is unknown.
    unread_sources_of: frozenset[str] = frozenset()


def _readable_part(raw: Any) -> _Readable | None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("nodes"), list):
        return None  # nothing to check beyond what the parser said
    nodes: list[Node] = []
    unread_types: set[int] = set()
    unread_configs: set[int] = set()
    for item in raw["nodes"]:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue  # no id to name it by: edges and templates cannot name it either
        node_type, config = item.get("type"), item.get("config", {})
        if not isinstance(node_type, str):
            unread_types.add(len(nodes))
            node_type = ""
        if not isinstance(config, dict):
            unread_configs.add(len(nodes))
            config = {}
        nodes.append(Node.model_construct(id=item["id"], type=node_type, config=config))
    edges: list[Edge] = []
    unread_branches: set[int] = set()
    unread_sources_of: set[str] = set()
    raw_edges = raw.get("edges", [])
    for item in raw_edges if isinstance(raw_edges, list) else []:
        if not isinstance(item, Mapping):
            continue
        source, target, branch = item.get("source"), item.get("target"), item.get("branch")
        if not isinstance(target, str):
            continue
        if not isinstance(source, str):
            unread_sources_of.add(target)
            continue
        if branch is not None and not isinstance(branch, str):
            unread_branches.add(len(edges))
            branch = None
        edges.append(Edge.model_construct(source=source, target=target, branch=branch))
    variables = raw.get("vars")
    definition = Definition.model_construct(
        nodes=nodes, edges=edges, vars=variables if isinstance(variables, dict) else {}
    )
    return _Readable(
        definition,
        frozenset(unread_types),
        frozenset(unread_configs),
        frozenset(unread_branches),
        frozenset(unread_sources_of),
    )


def validate_definition(
    raw: Any, node_types: Mapping[str, NodeTypeSpec]
) -> tuple[Definition | None, list[Problem]]:
    """Parse and check a definition; the definition is returned only when it is valid.

    Every problem is reported in one answer: a node or edge the parser refuses does not stop
    the checks of the others, an unknown edge end or a duplicate id does not stop the graph
    checks, and a cycle stops only the checks that need an order (ancestry, on and after it)."""
    raw, unicode_problems = _without_lone_surrogates(raw)
    definition, problems = parse_definition(raw)
    problems = unicode_problems + problems
    readable = _Readable(definition) if definition is not None else _readable_part(raw)
    if readable is not None:
        problems += _problems(readable, node_types)
    # One reference repeated a thousand times is one problem.
    problems = list({(p.node_id, p.message): p for p in problems}.values())
    return (definition if not problems else None), problems


def _without_lone_surrogates(raw: Any) -> tuple[Any, list[Problem]]:
    """JSON can escape a lone surrogate ("\\ud800") that UTF-8 cannot encode, so neither a
    store nor an answer could hold it: each node, edge or other part that has one is a problem,
    and the rest is checked with U+FFFD in its place (so no problem echoes one back)."""
    if not isinstance(raw, Mapping):
        return raw, []
    problems: list[Problem] = []
    for key, value in raw.items():
        parts = enumerate(value) if key in ("nodes", "edges") and isinstance(value, list) else None
        for index, item in parts if parts is not None else [(None, value)]:
            if not (has_lone_surrogate(item) or has_lone_surrogate(key)):
                continue
            named = None
            if index is not None and isinstance(item, Mapping):
                named = item.get("id" if key == "nodes" else "source")
            where = shown(str(key)) + ("" if index is None else f".{index}")
            problems.append(
                Problem(
                    node_id=shown(named) if isinstance(named, str) else None,
                    message=f"{where}: {NOT_UNICODE}",
                )
            )
    return (replaced(raw) if problems else raw), problems


def _problems(readable: _Readable, node_types: Mapping[str, NodeTypeSpec]) -> Iterable[Problem]:
    definition = readable.definition
    known_types = ", ".join(sorted(node_types))
    # Per id, the node type it names; None when the id is duplicated with different types or
    # a type could not be read: checks that depend on the type do not guess.
    type_of: dict[str, str | None] = {}
    duplicated: set[str] = set()
    for index, node in enumerate(definition.nodes):
        node_type = None if index in readable.unread_types else node.type
        if not _NODE_ID_RE.fullmatch(node.id):
            yield Problem(node_id=node.id, message="node id must match [A-Za-z0-9_-]{1,64}")
        if node.id in type_of:
            duplicated.add(node.id)
            yield Problem(node_id=node.id, message=f"duplicate node id '{node.id}'")
            if type_of[node.id] != node_type:
                type_of[node.id] = None
        else:
            type_of[node.id] = node_type
        if node_type is None or index in readable.unread_configs:
            continue  # the parser reported it
        spec = node_types.get(node_type)
        if spec is None:
            yield Problem(
                node_id=node.id, message=f"unknown node type '{node_type}' ({known_types})"
            )
            continue
        size = _json_size(node.config)
        if size > MAX_NODE_CONFIG_BYTES:
            yield Problem(
                node_id=node.id,
                message=f"config is {size:,} bytes of JSON; a node's config may be at most "
                f"{MAX_NODE_CONFIG_BYTES:,} (pass large data as run inputs or documents)",
            )
        try:
            spec.config_model.model_validate(node.config)
        except ValidationError as exc:
            for error in exc.errors():
                where = _format_loc(("config", *error["loc"]))
                yield Problem(node_id=node.id, message=f"{where}: {_error_message(error)}")
        inline_field = getattr(spec, "inline_node_field", None)
        outer = node.config
        if inline_field is not None:
            outer = {k: v for k, v in node.config.items() if k != inline_field}
            yield from _inline_node_problems(node.id, node.config.get(inline_field), node_types)
        for ref in templating.references(outer):
            problem = templating.reference_problem(ref)
            if problem:
                yield Problem(node_id=node.id, message=problem)
        yield from _misplaced_secrets(node, spec)

    def role(node_id: str) -> NodeRole | None:
        node_type = type_of.get(node_id)
        spec = node_types.get(node_type) if node_type is not None else None
        return spec.role if spec is not None else None

    # Edges: the ones naming known nodes make the graph every later check walks.
    known_edges: list[Edge] = []
    uncertain_roots = set(readable.unread_sources_of)
    edge_keys: set[tuple[str, str, str | None]] = set()
    for edge in definition.edges:
        ends_known = True
        for end in (edge.source, edge.target):
            if end not in type_of:
                ends_known = False
                yield Problem(
                    node_id=end,
                    message=f"edge {edge.source} -> {edge.target} names unknown node '{end}'",
                )
        key = (edge.source, edge.target, edge.branch)
        if key in edge_keys:
            yield Problem(node_id=edge.source, message=f"duplicate edge to '{edge.target}'")
        edge_keys.add(key)
        if ends_known:
            known_edges.append(edge)
        elif edge.target in type_of:
            uncertain_roots.add(edge.target)  # reached from a node that does not exist

    if not readable.unread_types:
        roles = {role(node_id) for node_id in type_of}
        if "start" not in roles:
            yield Problem(message="a definition needs at least one start-type node")
        if "end" not in roles:
            yield Problem(message="a definition needs at least one 'end' node")

    for index, edge in enumerate(definition.edges):
        if edge.source not in type_of or edge.target not in type_of:
            continue
        if role(edge.target) == "start":
            yield Problem(node_id=edge.target, message="a start node cannot have incoming edges")
        source_type = type_of[edge.source]
        spec = node_types.get(source_type) if source_type is not None else None
        if spec is None or index in readable.unread_branches:
            continue
        allowed = spec.allowed_branches
        if spec.role == "condition" and edge.branch not in allowed:
            yield Problem(
                node_id=edge.source,
                message=f'edge to \'{edge.target}\' must carry branch "true" or "false"',
            )
        elif spec.role != "condition" and edge.branch is not None and edge.branch not in allowed:
            hint = f" (allowed: {', '.join(sorted(allowed))})" if allowed else ""
            yield Problem(
                node_id=edge.source,
                message=f"edge to '{edge.target}' has branch '{edge.branch}'"
                f" that a {source_type} node does not take{hint}",
            )

    # The graph over ids: a duplicated id is one vertex with the edges that name it.
    first = {node.id: node for node in reversed(definition.nodes)}
    graph = Graph(
        Definition.model_construct(
            nodes=[first[node_id] for node_id in type_of], edges=known_edges, vars={}
        )
    )
    for cycle in graph.cycles():
        members = ", ".join(cycle)
        for node_id in cycle:
            yield Problem(node_id=node_id, message=f"node is part of a cycle with {members}")

    # What reaches a node that an unknown edge end or an unread type leads into is unknown.
    uncertain_roots |= {node_id for node_id, node_type in type_of.items() if node_type is None}
    uncertain = graph.reachable_from(uncertain_roots & type_of.keys())
    reachable = graph.reachable_from(node_id for node_id in type_of if role(node_id) == "start")
    for node_id in graph.nodes:
        if node_id not in reachable and node_id not in uncertain:
            yield Problem(node_id=node_id, message="node is not reachable from any start node")

    # Ancestry needs an order: known for the nodes Kahn's order places (all before any cycle),
    # unless what leads into them is uncertain or their id is ambiguous.
    ordered = set(graph.topological_order) - uncertain - duplicated
    unread = readable.unread_types | readable.unread_configs
    for index, node in enumerate(definition.nodes):
        if index in unread:
            continue
        if node.type not in node_types:
            continue  # which of its fields are templates is unknown
        ancestry_known = node.id in ordered
        for ref in templating.references(node.config):
            if ref.node_id is None:
                continue
            if ref.node_id not in type_of:
                message = f"template '{{{{{ref.raw}}}}}' names unknown node '{ref.node_id}'"
            elif (
                ancestry_known
                and ref.node_id not in duplicated
                and not graph.is_ancestor(ref.node_id, node.id)
            ):
                message = (
                    f"template '{{{{{ref.raw}}}}}' names '{ref.node_id}', "
                    "which is not an ancestor of this node"
                )
            else:
                continue
            yield Problem(node_id=node.id, message=message)


def _inline_node_problems(
    node_id: str, inline: Any, node_types: Mapping[str, NodeTypeSpec]
) -> Iterable[Problem]:
    """A node inside another's config (a map's `node`): a known node type that runs as an
    activity, with a config valid for that type; its templates may use $item and $index. Its
    shape ({type, config, retry?, timeout_s?}) is the outer config model's business."""
    if not isinstance(inline, Mapping) or not isinstance(inline.get("type"), str):
        return
    node_type, config = inline["type"], inline.get("config", {})
    spec = node_types.get(node_type)
    if spec is None:
        known = ", ".join(sorted(node_types))
        yield Problem(
            node_id=node_id, message=f"node.type: unknown node type '{node_type}' ({known})"
        )
        return
    if (
        spec.role != "task"
        or getattr(spec, "execution", None) == "workflow"
        or getattr(spec, "inline_node_field", None) is not None
    ):
        yield Problem(
            node_id=node_id,
            message=f"node.type: a '{node_type}' node cannot run per item (use a node type "
            "that runs as an activity, such as http_request or transform)",
        )
        return
    if not isinstance(config, dict):
        return
    try:
        spec.config_model.model_validate(config)
    except ValidationError as exc:
        for error in exc.errors():
            where = _format_loc(("config", "node", "config", *error["loc"]))
            yield Problem(node_id=node_id, message=f"{where}: {_error_message(error)}")
    for ref in templating.references(config):
        problem = templating.reference_problem(ref, item_scope=True)
        if problem:
            yield Problem(node_id=node_id, message=problem)


def _misplaced_secrets(node: Node, spec: NodeTypeSpec) -> Iterable[Problem]:
    """`{{$secrets.name}}` only where the node type's activity resolves it (its secret-capable
    fields): anywhere else it would be rendered outside an activity, where it reads `***`."""
    for field, value in node.config.items():
        if field in spec.secret_fields:
            continue
        for name in templating.secret_names(value):
            allowed = ", ".join(sorted(spec.secret_fields))
            where = (
                f"a {node.type} node takes secrets only in {allowed}"
                if allowed
                else f"a {node.type} node takes no secrets"
            )
            yield Problem(
                node_id=node.id,
                message=f"config.{field}: '{{{{$secrets.{name}}}}}' is not allowed here: {where} "
                "(secrets are resolved only inside the activity that sends them)",
            )
