"""Which nodes are ready: the join rule of API.md, shared by the run workflow (the whole graph)
and the pure-node batch activity (the part of it one batch may reach).

A node is ready when all its incoming edges are resolved; it runs if at least one of them was
taken and is skipped if none was. A node's outgoing edges are resolved when it finishes: a
condition takes the edges of its branch, a skipped node takes none, any other node takes its
edges without a branch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runlane.definition import Edge, NodeRole


class Frontier:
    def __init__(
        self,
        outgoing: Mapping[str, Sequence[Edge]],
        unresolved: Mapping[str, int],
        taken: Mapping[str, int],
        has_incoming: Iterable[str],
    ) -> None:
        self._outgoing = outgoing
        self.unresolved = dict(unresolved)
        self.taken = dict(taken)
        self._has_incoming = frozenset(has_incoming)

    @classmethod
    def start(
        cls, outgoing: Mapping[str, Sequence[Edge]], incoming: Mapping[str, Sequence[Edge]]
    ) -> Frontier:
        """A graph before anything ran."""
        return cls(
            outgoing,
            unresolved={node_id: len(edges) for node_id, edges in incoming.items()},
            taken=dict.fromkeys(incoming, 0),
            has_incoming=[node_id for node_id, edges in incoming.items() if edges],
        )

    def skips(self, node_id: str) -> bool:
        """A ready node none of whose incoming edges was taken (never a start node)."""
        return node_id in self._has_incoming and self.taken[node_id] == 0

    def resolve(self, node_id: str, taken_edges: Sequence[Edge]) -> list[str]:
        """Resolve the node's outgoing edges; returns the nodes that became ready, in edge order.
        Edges to nodes this frontier does not track (outside a batch's reach) are ignored."""
        ready: list[str] = []
        # By identity (edges are the definition's own objects); a set, since a node may fan
        # out to thousands of edges. Only membership is asked: no iteration order involved.
        chosen = {id(edge) for edge in taken_edges}
        for edge in self._outgoing.get(node_id, ()):
            if edge.target not in self.unresolved:
                continue
            self.unresolved[edge.target] -= 1
            if id(edge) in chosen:
                self.taken[edge.target] += 1
            if self.unresolved[edge.target] == 0:
                ready.append(edge.target)
        return ready


def taken_edges(role: NodeRole, outgoing: Sequence[Edge], output: Any) -> list[Edge]:
    """The edges a node that completed with `output` takes (review decisions route themselves)."""
    if role == "condition":
        branch = "true" if isinstance(output, dict) and output.get("result") else "false"
        return [edge for edge in outgoing if edge.branch == branch]
    return [edge for edge in outgoing if edge.branch is None]
