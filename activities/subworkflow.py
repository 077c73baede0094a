"""The `subworkflow` node: a child run of another workflow of the same organization.

The run workflow starts the child as a Temporal child workflow (workflows/children.py); what
this module does is the part that needs no workflow: the node's config, and the local
activity that prepares the child run before it starts. That activity renders `json_inputs` and
`text_inputs`, checks them against the child's start nodes, and picks the child's run id and
creation time; its result is recorded in the parent's history (a marker), so a replay starts
the very same child, and a retry of the parent (which runs the node again) prepares a new one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.inputs import schema_problems
from activities.models import NodeTaskInput
from activities.node_type import NodeBehaviour, NodeType, RunInputKind
from runlane import ids, templating

NODE_TYPE = "subworkflow"
# How deep child runs may nest (a parent's child's child ... counts each level).
MAX_DEPTH = 5


class SubworkflowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow_id: str = Field(description="The workflow (`wf_...`) the child run executes")
    config_source: Literal["published", "draft"] = Field(
        default="published",
        description="Run the target's published snapshot (default) or its draft, as they are "
        "when the parent run starts",
    )
    json_inputs: Any = Field(
        default=None,
        description="A template rendering to the child's `json_inputs` ({start_json node: value})",
    )
    text_inputs: Any = Field(
        default=None,
        description="A template rendering to the child's `text_inputs` ({start_text node: text})",
    )

    @field_validator("workflow_id")
    @classmethod
    def _workflow_id(cls, value: str) -> str:
        if not ids.is_valid(ids.WORKFLOW, value):
            raise ValueError("must be a workflow id (wf_...)")
        return value


def target_key(config: SubworkflowConfig) -> str:
    """How a run's input names a resolved target (RunInput.subworkflows)."""
    return f"{config.config_source}:{config.workflow_id}"


class ChildStart(BaseModel):
    """A start node of the child's definition: what input it needs."""

    node_id: str
    kind: RunInputKind
    json_schema: dict[str, Any] | None = None


class SubworkflowTask(BaseModel):
    task: NodeTaskInput
    starts: list[ChildStart] = Field(default_factory=list)


class PreparedChild(BaseModel):
    run_id: str
    created_at: datetime
    json_data: dict[str, Any] = Field(default_factory=dict)
    text_data: dict[str, str] = Field(default_factory=dict)


def _fail(message: str) -> ApplicationError:
    return ApplicationError(message, type="SubworkflowInputError", non_retryable=True)


def prepare(input: SubworkflowTask) -> PreparedChild:
    """The child's inputs, rendered and checked like a start request's; its run id."""
    config = SubworkflowConfig.model_validate(input.task.node.config)
    context = input.task.template_context()
    rendered: dict[str, Any] = {}
    for field in ("json_inputs", "text_inputs"):
        try:
            value = templating.render(getattr(config, field), context)
        except templating.RenderedTooLarge as err:
            raise _fail(f"{field}: {err}") from err
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise _fail(f"{field} must render to an object keyed by start node id")
        rendered[field] = value
    json_data, text_data = rendered["json_inputs"], rendered["text_inputs"]
    problems: list[str] = []
    starts = {start.node_id: start for start in input.starts}
    for node_id in json_data:
        if starts.get(node_id) is None or starts[node_id].kind != "json":
            problems.append(f"json_inputs.{node_id}: not a start_json node of the child")
    for node_id, text in text_data.items():
        if starts.get(node_id) is None or starts[node_id].kind != "text":
            problems.append(f"text_inputs.{node_id}: not a start_text node of the child")
        elif not isinstance(text, str):
            problems.append(f"text_inputs.{node_id}: must be a string")
    for start in input.starts:
        if start.kind == "document":
            problems.append(f"{start.node_id}: a subworkflow cannot pass a document input")
        elif start.kind == "json" and start.node_id not in json_data:
            problems.append(f"json_inputs.{start.node_id}: missing (a start_json node)")
        elif start.kind == "text" and start.node_id not in text_data:
            problems.append(f"text_inputs.{start.node_id}: missing (a start_text node)")
        elif start.kind == "json":
            for problem in schema_problems(start.json_schema, json_data[start.node_id]):
                problems.append(f"json_inputs.{start.node_id}: {problem}")
    if problems:
        raise _fail("the child run's inputs are invalid: " + "; ".join(problems))
    # The child's inputs travel in its start event: plain JSON only.
    json_data = json.loads(json.dumps(json_data, default=str))
    return PreparedChild(
        run_id=ids.new_id(ids.RUN),
        created_at=datetime.now(UTC),
        json_data=json_data,
        text_data=text_data,
    )


@activity.defn(name=NODE_TYPE)
async def prepare_subworkflow(input: SubworkflowTask) -> PreparedChild:
    return prepare(input)


NODE_TYPES = (
    NodeType(
        name=NODE_TYPE,
        role="task",
        config_model=SubworkflowConfig,
        execution="workflow",
        description="Runs another workflow of the organization as a child run; output: the "
        "child's final_outputs",
        make_activity=lambda deps: prepare_subworkflow,
        # A retry runs the node again as a new child run, which repeats the child's effects.
        side_effecting=True,
        behaviour=NodeBehaviour(child_run=True),
    ),
)
