"""The one input and one result model shared by every node activity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from runlane.definition import Node
from runlane.templating import TemplateContext


class NodeTaskInput(BaseModel):
    run_id: str
    workflow_id: str
    node: Node
    # Outputs of the ancestors this node references, and only those: history stays small.
    outputs: dict[str, Any] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    # For start nodes: the run input given for this node.
    input: Any = None

    def template_context(self) -> TemplateContext:
        return TemplateContext(
            outputs=self.outputs,
            run={"id": self.run_id, "workflow_id": self.workflow_id},
            vars=self.vars,
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
