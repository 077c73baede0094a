"""Input, state and message models of the run workflow.

These are the workflow's wire format (recorded in history): add fields with defaults only,
so histories of runs in flight keep decoding. The REST schemas in `api/schemas.py` are
separate; the API translates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from activities.maps import MapProgress

# Defined beside the node types that plan it (below this package); part of RunInput, so
# re-exported here with the rest of the wire format.
from activities.node_type import NodeBehaviour
from activities.node_type import NodePlan as NodePlan
from runlane.definition import Definition

RunStatus = Literal["pending", "running", "waiting_for_human", "completed", "error", "cancelled"]
StepStatus = Literal[
    "pending", "running", "completed", "error", "skipped", "waiting_for_human", "cancelled"
]
TriggerType = Literal["api", "restart", "rerun", "schedule", "webhook", "parent"]
ErrorStage = Literal["input_collection", "execution", "routing", "output_storage"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "error", "cancelled"})


class FileRef(BaseModel):
    """A claim check: the document's bytes stay in the blob store."""

    file_id: str
    filename: str
    mime_type: str
    size_bytes: int
    sha256: str


class RunInputs(BaseModel):
    documents: dict[str, FileRef] = Field(default_factory=dict)
    json_data: dict[str, Any] = Field(default_factory=dict)
    text_data: dict[str, str] = Field(default_factory=dict)


class WorkflowRef(BaseModel):
    workflow_id: str
    snapshot_id: str | None  # None when the run used the draft
    version: int | None
    name_at_run_time: str


class Trigger(BaseModel):
    type: TriggerType = "api"
    source_run_id: str | None = None
    # A child run (a parent's subworkflow node): the run that started it.
    parent_run_id: str | None = None
    # A run a schedule fired: the schedule, and the time it was due (not the time it started).
    schedule_id: str | None = None
    scheduled_at: datetime | None = None
    # A run an inbound webhook started: the webhook, and the call's `webhook-id` header.
    webhook_id: str | None = None
    delivery_id: str | None = None


# What the workflow did, by node type name, before plans carried each node type's behaviour.
_BEHAVIOUR_BEFORE_PLANS = {
    "delay": NodeBehaviour(timer=True),
    "start": NodeBehaviour(run_input="document"),
    "start_json": NodeBehaviour(run_input="json"),
    "start_text": NodeBehaviour(run_input="text"),
    "condition": NodeBehaviour(expression_field="expression"),
}


def node_behaviour(plan: NodePlan, node_type: str) -> NodeBehaviour:
    """The behaviour frozen into the plan; for a plan frozen before behaviours were (runs in
    flight), the one the workflow then gave the node's type by its name."""
    if plan.behaviour is not None:
        return plan.behaviour
    return _BEHAVIOUR_BEFORE_PLANS.get(node_type, NodeBehaviour())


class FrozenWorkflow(BaseModel):
    """A subworkflow node's target, resolved when the run (or its top parent) started: the
    child runs it exactly, as the parent runs its own frozen definition and plans."""

    workflow: WorkflowRef
    definition: Definition
    plans: dict[str, NodePlan]


class RunInput(BaseModel):
    run_id: str
    organization_id: str
    workflow: WorkflowRef
    definition: Definition
    plans: dict[str, NodePlan]
    inputs: RunInputs
    trigger: Trigger = Field(default_factory=Trigger)
    created_at: datetime
    # Set when this execution retries the run from the start (same run id, new execution).
    retry: RetryRequest | None = None
    # Targets of the subworkflow nodes of this run and of its children, recursively, by
    # `activities.subworkflow.target_key`.
    subworkflows: dict[str, FrozenWorkflow] = Field(default_factory=dict)
    # The event types (workflows/events.py) that an enabled endpoint of the organization was
    # subscribed to when the run started: the run emits those, and no others. Empty for runs
    # started before events existed, which replay as they ran.
    events: list[str] = Field(default_factory=list)
    # The subject of the API key that started the run (RUNLANE_API_KEYS `key:org:role:subject`);
    # None for runs a schedule, a webhook or a parent started, and keys without a subject. Read
    # by the API only (a review node's `self_approval: false`); the workflow never looks at it.
    started_by: str | None = None


class StepError(BaseModel):
    type: str
    message: str


class ReviewRecord(BaseModel):
    decision: Literal["approve", "reject"]
    reviewer: str | None = None
    comment: str | None = None
    decided_at: datetime


class Approval(BaseModel):
    """One reviewer's approval of a review that needs several (`approvals_required`)."""

    reviewer: str | None = None
    comment: str | None = None
    data: Any = None
    approved_at: datetime


class StepState(BaseModel):
    node_id: str
    node_type: str
    label: str = ""
    status: StepStatus = "pending"
    attempt: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    output: Any = None
    error: StepError | None = None
    review: ReviewRecord | None = None
    # A subworkflow node: the child run it started.
    child_run_id: str | None = None
    # human_review nodes: approvals so far (nodes that need several) and when it escalated.
    approvals: list[Approval] = Field(default_factory=list)
    escalated_at: datetime | None = None
    # History length (= id of the WorkflowTaskStarted event) of the workflow task in which
    # the step started and reached its final status: the reset points of "retry" and what it
    # reuses follow from them. Not part of the public step.
    started_event_id: int | None = None
    finished_event_id: int | None = None
    # Map nodes: items settled so far (public), and the child workflow running the items.
    progress: MapProgress | None = None
    map_workflow_id: str | None = None

    @model_serializer(mode="wrap")
    def _without_unset_map(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Only map steps carry these: every other step serializes as it did before them.
        data: dict[str, Any] = handler(self)
        for key in ("progress", "map_workflow_id"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class PendingReview(BaseModel):
    node_id: str
    label: str = ""
    instructions: str = ""
    payload: Any = None
    waiting_since: datetime
    data_schema: dict[str, Any] | None = None
    assignees: list[str] = Field(default_factory=list)
    approvals_required: int = 1
    approvals: list[Approval] = Field(default_factory=list)
    escalate_to: list[str] = Field(default_factory=list)
    escalated_at: datetime | None = None


class RunError(BaseModel):
    stage: ErrorStage
    node_id: str | None = None
    type: str
    message: str


class Timing(BaseModel):
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    human_waiting_started_at: datetime | None = None
    accumulated_human_waiting_ms: int = 0
    duration_ms: int | None = None
    active_duration_ms: int | None = None


class AttemptRecord(BaseModel):
    attempt: int
    temporal_run_id: str
    started_at: datetime
    ended_at: datetime | None = None
    status: RunStatus = "running"
    resumed_from_node_id: str | None = None
    # The retry request that created this attempt (reconciles lost responses).
    request_id: str | None = None


class RunState(BaseModel):
    """What the `state` query answers: everything the run record and steps are built from."""

    run_id: str
    organization_id: str
    workflow: WorkflowRef
    trigger: Trigger
    inputs: RunInputs
    status: RunStatus = "pending"
    timing: Timing
    steps: list[StepState] = Field(default_factory=list)
    final_outputs: Any = None
    error: RunError | None = None
    waiting_for_node_ids: list[str] = Field(default_factory=list)
    pending_reviews: list[PendingReview] = Field(default_factory=list)
    attempt: int = 1
    attempts: list[AttemptRecord] = Field(default_factory=list)
    # WorkflowTaskStarted event id of the first workflow task: "retry from start" resets there.
    first_task_event_id: int | None = None


class ReviewDecision(BaseModel):
    """Body of the `review` signal (API.md "Human review")."""

    node_id: str
    decision: Literal["approve", "reject"]
    data: Any = None
    comment: str | None = None
    reviewer: str | None = None


class KeptStep(BaseModel):
    """Retries of runs started before outcomes were recorded sent these records of the pure
    steps their reset task computed again; replays of those runs keep applying them."""

    node_id: str
    status: StepStatus
    attempt: int
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    started_event_id: int | None = None
    finished_event_id: int | None = None


# Ends the error message of a run whose final state was recorded without its outputs.
OUTPUTS_NOT_RECORDED = "(outputs not recorded: the run's state is too large)"


class RetryRequest(BaseModel):
    """A retry's bookkeeping: signal `retry` to the execution a reset created, or part of the
    input of the fresh execution that retries a run from the start."""

    request_id: str
    attempt: int
    previous_attempts: list[AttemptRecord]
    resumed_from_node_id: str | None = None
    # The reset point: steps started at or after it belong to the new attempt.
    reset_event_id: int | None = None
    # Only in signals recorded before outcomes were recorded (see KeptStep); the API sends none.
    kept_steps: list[KeptStep] = Field(default_factory=list)
    # A retry from a node (a reset to the run's first task): the steps not downstream of it
    # whose recorded outcomes the new attempt keeps, as the run recorded them (they are not
    # executed again), and the run's inputs with the retry's overrides applied.
    kept_outcomes: list[StepState] = Field(default_factory=list)
    inputs: RunInputs | None = None
    # Where the retry resumes (None in requests sent before retries from a node existed).
    from_: Literal["failure_point", "start", "node"] | None = None


def final_state_payloads(close_event: HistoryEvent) -> list[Payload]:
    """Where an ended run's close event carries its final RunState: a completed run's result,
    a failed run's failure details (RunWorkflow raises them so). Empty for other endings."""
    if close_event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        return list(close_event.workflow_execution_completed_event_attributes.result.payloads)
    if close_event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        failure = close_event.workflow_execution_failed_event_attributes.failure
        return list(failure.application_failure_info.details.payloads)
    return []


def initial_state(run_input: RunInput, status: RunStatus = "pending") -> RunState:
    """A run before anything executed: every step pending, in topological order."""
    from runlane.definition import Graph

    graph = Graph(run_input.definition)
    return RunState(
        run_id=run_input.run_id,
        organization_id=run_input.organization_id,
        workflow=run_input.workflow,
        trigger=run_input.trigger,
        inputs=run_input.inputs,
        status=status,
        timing=Timing(created_at=run_input.created_at),
        steps=[
            StepState(
                node_id=node_id,
                node_type=graph.nodes[node_id].type,
                label=graph.nodes[node_id].label,
            )
            for node_id in graph.topological_order
        ],
    )
