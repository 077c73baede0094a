"""Nodes the workflow itself executes: a durable timer and a human decision (a signal)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from activities.models import NodeTaskInput
from activities.node_type import NodeBehaviour, NodeType
from runlane import templating


class DelayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=30 * 86_400, description="How long the durable timer waits")


class HumanReviewConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instructions: str = Field(default="", description="What the reviewer should check")
    payload: Any = Field(default=None, description="A template: what the reviewer sees")
    timeout_s: float | None = Field(default=None, gt=0, le=365 * 86_400)
    on_timeout: Literal["reject", "approve"] | None = Field(
        default=None, description="Decision taken when timeout_s passes (default: reject)"
    )


NODE_TYPES = (
    NodeType(
        name="delay",
        role="task",
        config_model=DelayConfig,
        execution="workflow",
        description="Waits `seconds` on a durable timer",
        behaviour=NodeBehaviour(timer=True),
    ),
    NodeType(
        name="human_review",
        role="review",
        config_model=HumanReviewConfig,
        execution="workflow",
        description="Waits for a reviewer's decision (the `review` signal)",
        allowed_branches=frozenset({"rejected"}),
    ),
)


def review_payload(task: NodeTaskInput) -> Any:
    """What the reviewer sees: `payload` rendered when the review starts waiting (recorded by
    the batch that prepares the review, so a replay shows the same payload)."""
    config = HumanReviewConfig.model_validate(task.node.config)
    return templating.render(config.payload, task.template_context())
