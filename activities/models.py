"""The input and result models of node activities: one pair shared by every node type with an
activity of its own, one pair for the batches of pure work."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from runlane.definition import Edge, Node, NodeRole
from runlane.templating import TemplateContext


class NodeTaskInput(BaseModel):
    run_id: str
    workflow_id: str
    # The run's organization: whose secrets the activity may resolve. Empty in tasks of runs
    # scheduled before secrets existed (none of which can reference one).
    organization_id: str = ""
    node: Node
    # Outputs of the ancestors this node references, and only those: history stays small.
    outputs: dict[str, Any] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    # For start nodes: the run input given for this node.
    input: Any = None
    # For one item of a map's inline node: the element and its position ($item, $index).
    item: Any = None
    index: int | None = None

    def template_context(self) -> TemplateContext:
        return TemplateContext(
            outputs=self.outputs,
            run={"id": self.run_id, "workflow_id": self.workflow_id},
            vars=self.vars,
            item={} if self.index is None else {"$item": self.item, "$index": self.index},
        )


class NodeTaskOutput(BaseModel):
    output: Any = None
    # When the activity finished, recorded in history with the result: a step reused by a
    # retry keeps this time even though the workflow task that saw it runs again.
    finished_at: datetime | None = None

    @classmethod
    def done(cls, output: Any) -> NodeTaskOutput:
        """The result of a node activity, stamped with its finishing time (activity code only:
        workflow code must not read the clock)."""
        return cls(output=output, finished_at=datetime.now(UTC))


class NodeError(Exception):
    """A node failing for good (bad expression, refused input): not worth retrying."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(message)
        self.type = type
        self.message = message


# ------------------------------------------------------------------ pure-node batches
#
# The run workflow hands every stretch of ready pure work to one local activity
# (activities/evaluation.py): pure nodes are evaluated, nodes none of whose incoming edges was
# taken are skipped, and reviews get their payload rendered. The activity's result is the
# recorded outcome of each of those nodes (a marker event in the run's history): a replay reads
# it back and never evaluates again.

BatchNodeKind = Literal["pure", "review", "other"]
OutcomeStatus = Literal["completed", "error", "skipped", "waiting_for_human"]


class BatchNode(BaseModel):
    node: Node
    role: NodeRole
    # pure: evaluated here; review: its payload is rendered here; other: an activity, timer...
    # of its own (a batch only decides whether to skip it).
    kind: BatchNodeKind
    # Incoming edges not resolved yet, and those taken, when the batch is scheduled.
    unresolved: int
    taken: int
    has_incoming: bool
    # Ancestors whose outputs this node reads (the workflow checked they are ancestors).
    reads: list[str] = Field(default_factory=list)
    # Start nodes: the run input given for this node.
    input: Any = None


class PureBatchInput(BaseModel):
    run_id: str
    workflow_id: str
    vars: dict[str, Any] = Field(default_factory=dict)
    attempt: int
    # The nodes ready now, in the workflow's order; then `nodes` holds them and the nodes
    # below them the batch may reach.
    ready: list[str]
    nodes: list[BatchNode]
    # The edges between those nodes.
    edges: list[Edge] = Field(default_factory=list)
    # Outputs of nodes outside the batch that its nodes read.
    outputs: dict[str, Any] = Field(default_factory=dict)
    # Where this execution stands, so that the first task after a reset reuses what the reset
    # execution recorded rather than evaluating again (activities/recorded.py).
    temporal_run_id: str = ""
    first_execution_run_id: str = ""
    task_event_id: int = 0
    # The run's organization, for the usage ledger ("": a batch of a run from before it).
    organization_id: str = ""
    # False in an execution a retry from a node made: what it keeps is in its retry request,
    # and everything else runs again, so nothing is taken back from the replaced execution.
    take_back: bool = True


class OutcomeError(BaseModel):
    type: str
    message: str


class NodeOutcome(BaseModel):
    node_id: str
    # The node's label, so operators read outcomes in the Temporal UI's event history.
    label: str = ""
    status: OutcomeStatus
    # completed: the node's output; waiting_for_human: the rendered review payload.
    output: Any = None
    error: OutcomeError | None = None
    attempt: int
    started_at: datetime | None = None
    completed_at: datetime | None = None
    # Taken from the history of the execution a reset replaced, not evaluated again.
    reused: bool = False


class PureBatchResult(BaseModel):
    """The outcomes in the order they were produced. Ready nodes without an outcome (the batch
    reached its size budget first) are left for the next batch."""

    outcomes: list[NodeOutcome] = Field(default_factory=list)
