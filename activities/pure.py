"""Pure nodes: no I/O, so they run as local activities (one history marker each)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.models import NodeTaskInput, NodeTaskOutput
from activities.registry import NodeType
from runlane import expressions
from runlane.templating import render


class TransformConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output: Any = Field(description="A template: any JSON value with {{references}}")


class ConditionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        min_length=1, description="JMESPath over an object keyed by ancestor node ids"
    )

    @field_validator("expression")
    @classmethod
    def _compiles(cls, value: str) -> str:
        expressions.compile_expression(value)
        return value


class EndConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outputs: Any = Field(default_factory=dict, description="A template for the run's outputs")


@activity.defn(name="transform")
async def transform_node(task: NodeTaskInput) -> NodeTaskOutput:
    config = TransformConfig.model_validate(task.node.config)
    return NodeTaskOutput.done(render(config.output, task.template_context()))


@activity.defn(name="condition")
async def condition_node(task: NodeTaskInput) -> NodeTaskOutput:
    config = ConditionConfig.model_validate(task.node.config)
    try:
        value = expressions.evaluate(config.expression, task.outputs)
    except expressions.ExpressionError as exc:
        raise ApplicationError(str(exc), type="ExpressionError", non_retryable=True) from exc
    return NodeTaskOutput.done({"result": expressions.truthy(value)})


@activity.defn(name="end")
async def end_node(task: NodeTaskInput) -> NodeTaskOutput:
    config = EndConfig.model_validate(task.node.config)
    return NodeTaskOutput.done(render(config.outputs, task.template_context()))


NODE_TYPES = (
    NodeType(
        name="transform",
        role="task",
        config_model=TransformConfig,
        execution="local",
        description="Renders `output` (a template); pure",
        make_activity=lambda deps: transform_node,
    ),
    NodeType(
        name="condition",
        role="condition",
        config_model=ConditionConfig,
        execution="local",
        description="Evaluates `expression` (JMESPath); routes by edge branch true/false",
        allowed_branches=frozenset({"true", "false"}),
        make_activity=lambda deps: condition_node,
    ),
    NodeType(
        name="end",
        role="end",
        config_model=EndConfig,
        execution="local",
        description="Renders `outputs` into the run's final_outputs",
        make_activity=lambda deps: end_node,
    ),
)
