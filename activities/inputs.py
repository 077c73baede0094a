"""Start-type nodes: the run's inputs, one node per document, JSON value or text."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, field_validator
from referencing import Registry
from referencing.exceptions import Unresolvable
from temporalio import activity

from activities.models import NodeTaskInput, NodeTaskOutput
from activities.node_type import NodeBehaviour, NodeType


class StartConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accept: list[str] | None = Field(
        default=None, description="Accepted MIME types (e.g. application/pdf, image/*)"
    )


class StartJsonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    json_schema: dict[str, Any] | None = Field(
        default=None, alias="schema", description="JSON Schema the input must match"
    )

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                validator_for(value).check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
        return value


class StartTextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


def mime_accepted(mime_type: str, accept: list[str] | None) -> bool:
    if not accept:
        return True
    major = mime_type.split("/", 1)[0]
    return any(pattern in (mime_type, f"{major}/*", "*/*") for pattern in accept)


def schema_problems(schema: dict[str, Any] | None, value: Any) -> list[str]:
    """Where a start_json input fails its node's schema (none when it has no schema)."""
    if schema is None:
        return []
    # An empty registry: a `$ref` outside the schema is never fetched (the API would otherwise
    # make requests wherever a definition points), it is the definition's problem.
    validator = validator_for(schema, default=Draft202012Validator)(schema, registry=Registry())
    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    except Unresolvable as err:
        return [
            f"the node's schema refers to '{err}' which cannot be resolved: "
            "only references inside the schema are followed"
        ]
    return [
        f"{'/'.join(str(p) for p in error.path) or '(root)'}: {error.message}" for error in errors
    ]


def evaluate_start(task: NodeTaskInput) -> Any:
    # The input is the document's file reference (claim check): bytes never enter history.
    return task.input


def evaluate_start_json(task: NodeTaskInput) -> Any:
    return task.input


def evaluate_start_text(task: NodeTaskInput) -> Any:
    return {"text": task.input}


# Activities for runs whose frozen plan says "local" (how start nodes ran before).
@activity.defn(name="start")
async def start_node(task: NodeTaskInput) -> NodeTaskOutput:
    return NodeTaskOutput.done(evaluate_start(task))


@activity.defn(name="start_json")
async def start_json_node(task: NodeTaskInput) -> NodeTaskOutput:
    return NodeTaskOutput.done(evaluate_start_json(task))


@activity.defn(name="start_text")
async def start_text_node(task: NodeTaskInput) -> NodeTaskOutput:
    return NodeTaskOutput.done(evaluate_start_text(task))


NODE_TYPES = (
    NodeType(
        name="start",
        role="start",
        config_model=StartConfig,
        execution="batch",
        description="A document input; output: file_id, filename, mime_type, size_bytes, sha256",
        make_activity=lambda deps: start_node,
        evaluate=evaluate_start,
        behaviour=NodeBehaviour(run_input="document"),
    ),
    NodeType(
        name="start_json",
        role="start",
        config_model=StartJsonConfig,
        execution="batch",
        description="A JSON input, validated against `schema` when the run is created",
        make_activity=lambda deps: start_json_node,
        evaluate=evaluate_start_json,
        behaviour=NodeBehaviour(run_input="json"),
    ),
    NodeType(
        name="start_text",
        role="start",
        config_model=StartTextConfig,
        execution="batch",
        description="A text input; output: {text}",
        make_activity=lambda deps: start_text_node,
        evaluate=evaluate_start_text,
        behaviour=NodeBehaviour(run_input="text"),
    ),
)
