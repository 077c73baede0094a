"""Pure nodes: no I/O, so they are evaluated in batches (`evaluate=`, activities/evaluation.py).

The activities below run the same functions; they stay registered for runs whose frozen plan
says "local" (one local activity per pure node, how they ran first), so those finish unchanged."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.models import NodeError, NodeTaskInput, NodeTaskOutput
from activities.node_type import NodeBehaviour, NodeType
from runlane import expressions, templating


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


def evaluate_transform(task: NodeTaskInput) -> Any:
    config = TransformConfig.model_validate(task.node.config)
    return templating.render(config.output, task.template_context())


def evaluate_condition(task: NodeTaskInput) -> Any:
    config = ConditionConfig.model_validate(task.node.config)
    try:
        value = expressions.evaluate(config.expression, task.outputs)
    except expressions.ExpressionError as exc:
        raise NodeError("ExpressionError", str(exc)) from exc
    return {"result": expressions.truthy(value)}


def evaluate_end(task: NodeTaskInput) -> Any:
    config = EndConfig.model_validate(task.node.config)
    return templating.render(config.outputs, task.template_context())


def as_activity_result(evaluate: Any, task: NodeTaskInput) -> NodeTaskOutput:
    try:
        return NodeTaskOutput.done(evaluate(task))
    except NodeError as err:
        raise ApplicationError(err.message, type=err.type, non_retryable=True) from err


@activity.defn(name="transform")
async def transform_node(task: NodeTaskInput) -> NodeTaskOutput:
    return as_activity_result(evaluate_transform, task)


@activity.defn(name="condition")
async def condition_node(task: NodeTaskInput) -> NodeTaskOutput:
    return as_activity_result(evaluate_condition, task)


@activity.defn(name="end")
async def end_node(task: NodeTaskInput) -> NodeTaskOutput:
    return as_activity_result(evaluate_end, task)


NODE_TYPES = (
    NodeType(
        name="transform",
        role="task",
        config_model=TransformConfig,
        execution="batch",
        description="Renders `output` (a template); pure",
        make_activity=lambda deps: transform_node,
        evaluate=evaluate_transform,
    ),
    NodeType(
        name="condition",
        role="condition",
        config_model=ConditionConfig,
        execution="batch",
        description="Evaluates `expression` (JMESPath); routes by edge branch true/false",
        allowed_branches=frozenset({"true", "false"}),
        make_activity=lambda deps: condition_node,
        evaluate=evaluate_condition,
        behaviour=NodeBehaviour(expression_field="expression"),
    ),
    NodeType(
        name="end",
        role="end",
        config_model=EndConfig,
        execution="batch",
        description="Renders `outputs` into the run's final_outputs",
        make_activity=lambda deps: end_node,
        evaluate=evaluate_end,
    ),
)
