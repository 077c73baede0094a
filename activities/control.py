"""Nodes the workflow itself executes: a durable timer and a human decision (a signal)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)
from referencing import Registry
from referencing.exceptions import Unresolvable

from activities.models import NodeTaskInput
from activities.node_type import NodeBehaviour, NodeType
from runlane import templating


class DelayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=30 * 86_400, description="How long the durable timer waits")


Reviewer = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class HumanReviewConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instructions: str = Field(default="", description="What the reviewer should check")
    payload: Any = Field(default=None, description="A template: what the reviewer sees")
    timeout_s: float | None = Field(default=None, gt=0, le=365 * 86_400)
    on_timeout: Literal["reject", "approve"] | None = Field(
        default=None, description="Decision taken when timeout_s passes (default: reject)"
    )
    data_schema: dict[str, Any] | None = Field(
        default=None,
        description="JSON Schema an approval's `data` must match (the API answers 422 "
        "otherwise; a `review` signal whose data fails it is ignored and logged)",
    )
    assignees: list[Reviewer] | None = Field(
        default=None,
        max_length=100,
        description="Who is asked to review: the inbox filters with ?assignee=",
    )
    approvals_required: int = Field(
        default=1,
        ge=1,
        le=20,
        description="Approvals from distinct reviewers the node needs; one reject rejects",
    )
    self_approval: StrictBool = Field(
        default=True,
        description="false: the subject of the API key that started the run may not approve "
        "this node (the API answers 403; rejecting stays allowed)",
    )
    escalate_after_s: float | None = Field(
        default=None,
        gt=0,
        le=365 * 86_400,
        description="Escalate the review when no decision came within this many seconds "
        "(a durable timer)",
    )
    escalate_to: list[Reviewer] | None = Field(
        default=None,
        max_length=100,
        description="Who the review is escalated to (added to the inbox's assignees)",
    )

    @field_validator("data_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                validator_for(value, default=Draft202012Validator).check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HumanReviewConfig:
        if self.escalate_to is not None and self.escalate_after_s is None:
            raise ValueError("escalate_to needs escalate_after_s")
        if (
            self.escalate_after_s is not None
            and self.timeout_s is not None
            and self.escalate_after_s >= self.timeout_s
        ):
            raise ValueError("escalate_after_s must be shorter than timeout_s")
        if self.assignees:
            # Assignees route the inbox; a quorum they cannot reach is a mistake.
            reachable = len(set(self.assignees) | set(self.escalate_to or []))
            if self.approvals_required > reachable:
                raise ValueError(
                    f"approvals_required ({self.approvals_required}) is more than the "
                    f"{reachable} distinct assignees and escalate_to reviewers"
                )
        return self


def review_data_problems(schema: dict[str, Any] | None, data: Any) -> list[str]:
    """Why `data` fails the review's `data_schema` (empty when it passes, or no schema).
    An empty registry: a `$ref` outside the schema is never fetched."""
    if schema is None:
        return []
    validator = validator_for(schema, default=Draft202012Validator)(schema, registry=Registry())
    try:
        errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.path])
    except Unresolvable as err:
        return [
            f"data_schema refers to '{err}' which cannot be resolved: only references inside "
            "the schema are followed"
        ]
    return [
        f"{'/'.join(str(p) for p in error.path) or '(root)'}: {error.message}" for error in errors
    ]


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
