"""The retry planner (runs/retry_plan.py) on recorded histories, with no Temporal server.

Each test reads a history from tests/histories/ (scripts/record_histories.py says what each
scenario ran), takes the run's input from its first event and its state as the API would read
it, and checks the plan `GET /v1/runs/{id}/retry-plan` would show. Where a plan names a reset
point, the test finds the right workflow task from the history's events by itself (the task
whose completion scheduled the failed activity, started the cancelled timer, or recorded the
failed batch outcome), so a planner that picked another task fails it.

The API reads a completed or failed run's state from its close event; a cancelled run's close
event carries none, so the API asks the `state` query, which a worker answers by replaying the
history: here, the Replayer does the same in-process.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from activities.models import PureBatchResult
from activities.registry import default_registry
from runlane.converter import data_converter
from runs.retry_plan import RetryFrom, RetryPlan, TaskBoundaries, plan_from_node, plan_retry
from workflows.models import (
    RunError,
    RunInput,
    RunInputs,
    RunState,
    RunStatus,
    StepError,
    StepState,
    StepStatus,
    Timing,
    Trigger,
    WorkflowRef,
    final_state_payloads,
)
from workflows.run_workflow import RunWorkflow

HISTORIES = Path(__file__).parent / "histories"
REGISTRY = default_registry()

# ------------------------------------------------------------------------------ loading


class Recorded:
    """One recorded run: its history, input and state, and the planner's other inputs."""

    def __init__(self, history: WorkflowHistory, run_input: RunInput, state: RunState) -> None:
        self.history = history
        self.run_input = run_input
        self.state = state
        self.plans = {node_id: plan.execution for node_id, plan in run_input.plans.items()}
        self.boundaries = TaskBoundaries.from_events(history.events)

    def plan(self, from_: RetryFrom = "failure_point", state: RunState | None = None) -> RetryPlan:
        return plan_retry(state or self.state, self.plans, REGISTRY, from_, self.boundaries)

    def event(self, event_id: int) -> HistoryEvent:
        [event] = [e for e in self.history.events if e.event_id == event_id]
        return event

    def task_of(self, command: HistoryEvent) -> int:
        """The WorkflowTaskStarted event id of the task whose completion wrote `command`."""
        kind = command.WhichOneof("attributes")
        assert kind is not None
        completed = self.event(getattr(command, kind).workflow_task_completed_event_id)
        assert completed.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        started = completed.workflow_task_completed_event_attributes.started_event_id
        assert self.event(started).event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
        return started

    def activity_scheduled(self, activity_id: str) -> HistoryEvent:
        """The last scheduling of the activity `activity_id`."""
        [*_, event] = [
            e
            for e in self.history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_id == activity_id
        ]
        return event

    def timer_started(self) -> HistoryEvent:
        [event] = [
            e for e in self.history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        ]
        return event

    async def batch_marker(self, node_id: str) -> tuple[HistoryEvent, PureBatchResult]:
        """The local-activity marker of the batch that recorded `node_id`'s outcome."""
        found = []
        for event in self.history.events:
            if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
                continue
            details = event.marker_recorded_event_attributes.details
            if "result" not in details:
                continue
            [result] = await data_converter().decode(
                list(details["result"].payloads), [PureBatchResult]
            )
            assert isinstance(result, PureBatchResult)
            if any(outcome.node_id == node_id for outcome in result.outcomes):
                found.append((event, result))
        [marker] = found
        return marker

    def first_task(self) -> int:
        return next(
            e.event_id
            for e in self.history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
        )

    def assert_reset_point(self, event_id: int | None) -> None:
        """A workflow task Temporal can reset to: started, and no heartbeat continuation."""
        assert event_id is not None
        assert self.event(event_id).event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
        assert self.boundaries.snap(event_id) == event_id


_replayed: list[RunState] = []


class _CaptureState(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            return await super().execute_workflow(input)
        finally:
            # What the `state` query answers once the run has ended.
            _replayed.append(workflow.instance().state())


class CaptureState(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _CaptureState


async def _replayed_state(history: WorkflowHistory) -> RunState:
    _replayed.clear()
    replayer = Replayer(
        workflows=[RunWorkflow], data_converter=data_converter(), interceptors=[CaptureState()]
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
    [state] = _replayed
    # The sandbox imports the models afresh: back to this module's classes.
    return RunState.model_validate(state.model_dump())


async def load(name: str, *, replay: bool = False) -> Recorded:
    """`replay`: the state the `state` query answers (a replay with today's code), rather
    than the one in the close event."""
    history = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
    converter = data_converter()
    started = history.events[0]
    assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    payloads = started.workflow_execution_started_event_attributes.input.payloads
    [run_input] = await converter.decode(list(payloads)[:1], [RunInput])
    assert isinstance(run_input, RunInput)
    if replay:
        state = await _replayed_state(history)
    else:
        close = final_state_payloads(history.events[-1])
        assert close, f"{name}'s close event carries no state"
        [state] = await converter.decode(close[:1], [RunState])
        assert isinstance(state, RunState)
    return Recorded(history, run_input, state)


def _events(*kinds: str) -> list[HistoryEvent]:
    """Events numbered from 1, by EventType name without its prefix."""
    return [
        HistoryEvent(event_id=i, event_type=EventType.Value(f"EVENT_TYPE_{kind}"))
        for i, kind in enumerate(kinds, start=1)
    ]


def step_ids(recorded: Recorded) -> list[str]:
    return [step.node_id for step in recorded.state.steps]


# --------------------------------------------------------------- retry from the failure point


def failed_at(state: RunState, node_id: str) -> RunState:
    """`state` as if `node_id` had failed instead, and nothing after it had run."""
    steps = [s.node_id for s in state.steps]
    after = steps[steps.index(node_id) + 1 :]
    error = StepError(type="HttpStatusError", message="500")
    return state.model_copy(
        update={
            "status": "error",
            "final_outputs": None,
            "error": RunError(stage="execution", node_id=node_id, **error.model_dump()),
            "steps": [
                s.model_copy(update={"status": "error", "error": error})
                if s.node_id == node_id
                else StepState(node_id=s.node_id, node_type=s.node_type, label=s.label)
                if s.node_id in after
                else s
                for s in state.steps
            ],
        }
    )


async def test_a_failed_http_call_is_retried_from_the_task_that_scheduled_it() -> None:
    """note -> call (fails: connection refused) -> out, pure nodes in batches."""
    run = await load("http_failure_recorded")
    assert run.state.status == "error" and run.state.error is not None
    assert step_ids(run) == ["note", "call", "out"]

    plan = run.plan()

    assert plan.allowed and plan.reason is None and plan.from_ == "failure_point"
    assert plan.resumed_from_node_id == "call"
    # The batch that ran `note` is in the reset task too: its outcome is taken back.
    assert plan.reuse == ["note"]
    assert plan.rerun == ["call", "out"]
    # `call` had started (and maybe reached the server); `out` never ran.
    assert plan.repeated_side_effects == ["call"]
    assert plan.reset_event_id == run.task_of(run.activity_scheduled("call"))
    run.assert_reset_point(plan.reset_event_id)


async def test_a_failure_inside_a_batch_reuses_what_that_batch_recorded_before_it() -> None:
    """meta -> check (its expression fails at run time) -> yes -> out: the one batch of the
    first task records `meta` completed and `check` in error. A reset to that task takes the
    batch's outcomes back from history except errors (activities/recorded.py): `meta` keeps
    its output, `check` is evaluated again."""
    run = await load("condition_error_recorded")
    assert run.state.error is not None and run.state.error.node_id == "check"
    marker, batch = await run.batch_marker("check")
    assert [(o.node_id, o.status) for o in batch.outcomes] == [
        ("meta", "completed"),
        ("check", "error"),
    ]

    plan = run.plan()

    assert plan.allowed
    assert plan.resumed_from_node_id == "check"
    assert plan.reuse == ["meta"]
    assert plan.rerun == ["check", "yes", "out"]
    assert plan.repeated_side_effects == []  # nothing here talks to the outside world
    assert plan.reset_event_id == run.task_of(marker)
    run.assert_reset_point(plan.reset_event_id)


@pytest.mark.parametrize(
    ("name", "reuse"),
    [
        # The batch of the reset task recorded `note`: taken back.
        ("cancelled_delay_recorded", ["note"]),
        # `note` was evaluated in the workflow, in the reset task: evaluated again.
        ("cancelled_delay_inline", []),
    ],
)
async def test_a_cancelled_run_is_retried_from_the_cancelled_node(
    name: str, reuse: list[str]
) -> None:
    """note -> wait (a one-hour delay, cancelled while it waits) -> out."""
    run = await load(name, replay=True)
    assert run.state.status == "cancelled" and run.state.error is None

    plan = run.plan()

    assert plan.allowed
    assert plan.resumed_from_node_id == "wait"
    assert plan.reuse == reuse
    assert plan.rerun == [n for n in ["note", "wait", "out"] if n not in reuse]
    assert plan.repeated_side_effects == []  # a delay has no side effect
    assert plan.reset_event_id == run.task_of(run.timer_started())
    run.assert_reset_point(plan.reset_event_id)


async def test_a_run_cancelled_while_a_held_batch_heartbeats_is_retried_before_the_cancel() -> None:
    """meta -> big (condition) -> out, the batch held past the task timeout (captured from
    tests/recovery/test_retry.py, whose timing scripts/record_histories.py cannot force): task
    3 scheduled the batch and went on as heartbeats 6, 9, 12 and 15; the cancel request (17)
    arrived while task 15 was in flight, and task 15 failed. A replay leaves the failed task
    out and runs task 3, its heartbeats and the cancel request as one task, reported as task
    19: the steps say the batch started there. A reset to 19 would keep the cancel request in
    the new execution's history and the retry would end cancelled again; the plan resets to
    the task before the request."""
    run = await load("cancelled_held_batch_recorded", replay=True)
    assert run.state.status == "cancelled"
    [cancel_request] = [
        e.event_id
        for e in run.history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
    ]
    failed = [
        e.event_id
        for e in run.history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert failed and failed[0] < cancel_request
    meta = {s.node_id: s for s in run.state.steps}["meta"]
    assert meta.status == "cancelled"
    assert meta.started_event_id is not None and meta.started_event_id > cancel_request

    plan = run.plan()

    assert plan.allowed
    assert plan.reset_event_id == run.first_task() < cancel_request
    run.assert_reset_point(plan.reset_event_id)
    assert plan.resumed_from_node_id == "meta"
    assert plan.reuse == []
    assert plan.rerun == ["meta", "big", "out"]


@pytest.mark.parametrize(
    ("name", "replay"),
    [
        # Pure nodes evaluated in the workflow; the close event has the task ids.
        ("http_failure_inline", False),
        # Pure nodes as local activities, recorded before steps carried task ids: the state
        # a query answers (a replay fills them in).
        ("http_failure", True),
    ],
)
async def test_older_engines_compute_the_pure_nodes_of_the_reset_task_again(
    name: str, replay: bool
) -> None:
    """The http_failure scenario before outcomes were recorded: `note` ran in the task that
    scheduled `call`; the reset runs that task again and nothing takes `note` back."""
    run = await load(name, replay=replay)
    assert run.plans["note"] in ("workflow", "local")

    plan = run.plan()

    assert plan.allowed
    assert plan.resumed_from_node_id == "call"
    assert plan.reuse == []
    assert plan.rerun == ["note", "call", "out"]
    assert plan.repeated_side_effects == ["call"]
    assert plan.reset_event_id == run.task_of(run.activity_scheduled("call"))
    run.assert_reset_point(plan.reset_event_id)


async def test_a_second_failure_after_a_retry_resets_to_the_task_of_the_retried_call() -> None:
    """retried_after_transform (note -> first -> shape -> flaky -> out) ended completed after
    one retry; had `flaky` failed again, the reset point is the task of the new execution that
    scheduled it, which is neither the first task nor the one the first retry reset to. In it,
    `first`'s result (an event before the task) and `shape`'s batch outcome are kept."""
    run = await load("retried_after_transform_recorded")

    plan = run.plan(state=failed_at(run.state, "flaky"))

    reset_task = run.task_of(run.activity_scheduled("flaky"))
    assert reset_task not in (run.first_task(), run.task_of(run.activity_scheduled("first")))
    assert plan.allowed
    assert plan.resumed_from_node_id == "flaky"
    assert plan.reset_event_id == reset_task
    run.assert_reset_point(plan.reset_event_id)
    assert plan.reuse == ["note", "first", "shape"]
    assert plan.rerun == ["flaky", "out"]
    assert plan.repeated_side_effects == ["flaky"]


async def test_side_effecting_nodes_never_reached_are_no_repeated_side_effect() -> None:
    """The same history had its first call failed: `flaky`, an HTTP node too, runs on a
    retry but never ran before, so only `first` repeats anything."""
    run = await load("retried_after_transform_recorded")

    plan = run.plan(state=failed_at(run.state, "first"))

    assert plan.allowed
    assert plan.resumed_from_node_id == "first"
    assert plan.reset_event_id == run.task_of(run.activity_scheduled("first"))
    assert plan.reuse == ["note"]
    assert plan.rerun == ["first", "shape", "flaky", "out"]
    assert plan.repeated_side_effects == ["first"]


@pytest.mark.parametrize(
    ("name", "reuse"),
    [
        # One batch: `call` (an HTTP node) was skipped by the branch not taken; the batch
        # recorded the skip, so it is kept, and a call that never started repeats nothing.
        ("skipped_http_recorded", ["meta", "big", "call", "small"]),
        # The batch after the review (in a later task): the rejected review routed to `ko`
        # and skipped `ok`; the decision is a signal before the reset task, so it is kept.
        ("review_rejected_branch_recorded", ["meta", "review", "ok", "ko"]),
    ],
)
async def test_a_batch_s_skips_and_outcomes_before_its_failure_are_kept(
    name: str, reuse: list[str]
) -> None:
    """The end node failing in the last batch of runs that completed."""
    run = await load(name)
    marker, batch = await run.batch_marker("out")
    assert batch.outcomes[-1].node_id == "out"

    plan = run.plan(state=failed_at(run.state, "out"))

    assert plan.allowed
    assert plan.resumed_from_node_id == "out"
    assert plan.reset_event_id == run.task_of(marker)
    run.assert_reset_point(plan.reset_event_id)
    assert plan.reuse == reuse
    assert plan.rerun == ["out"]
    assert plan.repeated_side_effects == []


def test_the_earliest_unfinished_step_sets_the_reset_point() -> None:
    """Hand-built: note -> a (HTTP, slow) and note -> wait (delay) -> b (HTTP). Task 3 runs
    `note`'s batch, schedules `a` and starts the timer; task 11 schedules `b` when it fires;
    `b` fails, so task 17 ends the run and cancels `a`, still running. The reset goes to the
    task that started the earliest failed or cancelled step (3, `a`'s), not to the failed
    node's (11); the run still resumes from the node that failed."""
    events = _events(
        "WORKFLOW_EXECUTION_STARTED",  # 1
        "WORKFLOW_TASK_SCHEDULED",  # 2
        "WORKFLOW_TASK_STARTED",  # 3
        "WORKFLOW_TASK_COMPLETED",  # 4
        "MARKER_RECORDED",  # 5: note
        "ACTIVITY_TASK_SCHEDULED",  # 6: a
        "TIMER_STARTED",  # 7: wait
        "ACTIVITY_TASK_STARTED",  # 8: a
        "TIMER_FIRED",  # 9
        "WORKFLOW_TASK_SCHEDULED",  # 10
        "WORKFLOW_TASK_STARTED",  # 11
        "WORKFLOW_TASK_COMPLETED",  # 12
        "ACTIVITY_TASK_SCHEDULED",  # 13: b
        "ACTIVITY_TASK_STARTED",  # 14
        "ACTIVITY_TASK_FAILED",  # 15
        "WORKFLOW_TASK_SCHEDULED",  # 16
        "WORKFLOW_TASK_STARTED",  # 17
        "WORKFLOW_TASK_COMPLETED",  # 18
        "ACTIVITY_TASK_CANCEL_REQUESTED",  # 19: a
        "WORKFLOW_EXECUTION_FAILED",  # 20
    )
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def step(node_id: str, node_type: str, status: StepStatus, *tasks: int) -> StepState:
        started, finished = tasks or (None, None)
        return StepState(
            node_id=node_id,
            node_type=node_type,
            status=status,
            attempt=1 if tasks else 0,
            started_at=at if tasks else None,
            started_event_id=started,
            finished_event_id=finished,
        )

    error = RunError(stage="execution", node_id="b", type="HttpStatusError", message="500")
    state = _hand_built(
        "diamond",
        "error",
        first_task_event_id=3,
        error=error,
        steps=[
            step("note", "start_text", "completed", 3, 3),
            step("a", "http_request", "cancelled", 3, 17),
            step("wait", "delay", "completed", 3, 11),
            step("b", "http_request", "error", 11, 17),
            step("out", "end", "pending"),
        ],
    )
    plans = {"note": "batch", "a": "remote", "wait": "workflow", "b": "remote", "out": "batch"}

    plan = plan_retry(state, plans, REGISTRY, "failure_point", TaskBoundaries.from_events(events))

    assert plan.allowed
    assert plan.reset_event_id == 3
    assert plan.resumed_from_node_id == "b"
    assert plan.reuse == ["note"]
    # The timer ended after the reset point: it is waited for again.
    assert plan.rerun == ["a", "wait", "b", "out"]
    assert plan.repeated_side_effects == ["a", "b"]


async def test_a_run_recorded_before_task_ids_has_no_failure_point() -> None:
    """http_failure.json's close event holds the state of code that did not record task ids
    yet, and the API reads a failed run's state from there: the planner has no reset point
    and must not invent one; its reason says why and what works instead."""
    run = await load("http_failure")
    assert run.state.status == "error"
    assert all(s.started_event_id is None for s in run.state.steps)
    assert run.state.first_task_event_id is None

    plan = run.plan()

    assert not plan.allowed
    assert plan.reason is not None and '"from": "start"' in plan.reason
    assert "recorded where each step started" in plan.reason
    assert plan.reset_event_id is None
    assert plan.reuse == [] and plan.rerun == [] and plan.repeated_side_effects == []


async def test_a_run_recorded_before_task_ids_can_be_retried_from_the_start() -> None:
    run = await load("http_failure")
    assert run.state.steps[1].started_at is not None  # `call` did run

    plan = run.plan("start")

    assert plan.allowed, plan.reason
    assert plan.rerun == ["note", "call", "out"]


# ------------------------------------------------------------------- nothing to retry / start


@pytest.mark.parametrize("from_", ["failure_point", "start"])
async def test_a_completed_run_cannot_be_retried(from_: RetryFrom) -> None:
    run = await load("review_approved_recorded")
    assert run.state.status == "completed"

    plan = run.plan(from_)

    assert not plan.allowed
    assert plan.reason is not None
    assert "restart" in plan.reason and "rerun" in plan.reason
    assert plan.reuse == [] and plan.rerun == [] and plan.repeated_side_effects == []
    assert plan.reset_event_id is None and plan.resumed_from_node_id is None


@pytest.mark.parametrize(
    ("name", "replay", "side_effects"),
    [
        ("http_failure_recorded", False, ["call"]),
        ("http_failure_inline", False, ["call"]),
        ("condition_error_recorded", False, []),
        ("cancelled_delay_recorded", True, []),
    ],
)
async def test_retry_from_the_start_runs_every_node_again(
    name: str, replay: bool, side_effects: list[str]
) -> None:
    run = await load(name, replay=replay)

    plan = run.plan("start")

    assert plan.allowed and plan.from_ == "start"
    assert plan.reuse == []
    assert sorted(plan.rerun) == sorted(node.id for node in run.run_input.definition.nodes)
    assert plan.rerun == step_ids(run)  # in the run's step order
    assert plan.repeated_side_effects == side_effects
    assert plan.resumed_from_node_id is None
    assert plan.reset_event_id == run.first_task()


# ------------------------------------------------------------------------- task boundaries


# A batch held longer than the task timeout: task 3 goes on as heartbeats 6 and 9; the
# activity it scheduled completes and task 16 handles that.
HEARTBEATS = _events(
    "WORKFLOW_EXECUTION_STARTED",  # 1
    "WORKFLOW_TASK_SCHEDULED",  # 2
    "WORKFLOW_TASK_STARTED",  # 3: head
    "WORKFLOW_TASK_COMPLETED",  # 4: empty (heartbeat)
    "WORKFLOW_TASK_SCHEDULED",  # 5
    "WORKFLOW_TASK_STARTED",  # 6: continues 3
    "WORKFLOW_TASK_COMPLETED",  # 7: empty (heartbeat)
    "WORKFLOW_TASK_SCHEDULED",  # 8
    "WORKFLOW_TASK_STARTED",  # 9: continues 3
    "WORKFLOW_TASK_COMPLETED",  # 10
    "MARKER_RECORDED",  # 11: the batch
    "ACTIVITY_TASK_SCHEDULED",  # 12
    "ACTIVITY_TASK_STARTED",  # 13
    "ACTIVITY_TASK_COMPLETED",  # 14
    "WORKFLOW_TASK_SCHEDULED",  # 15
    "WORKFLOW_TASK_STARTED",  # 16: head
    "WORKFLOW_TASK_COMPLETED",  # 17
    "WORKFLOW_EXECUTION_COMPLETED",  # 18
)


def test_heartbeat_continuations_snap_to_the_task_they_continue() -> None:
    boundaries = TaskBoundaries.from_events(HEARTBEATS)
    assert boundaries.snap(3) == 3
    assert boundaries.snap(6) == 3
    assert boundaries.snap(9) == 3
    assert boundaries.snap(16) == 16


def test_a_length_short_of_a_task_start_snaps_to_that_start() -> None:
    boundaries = TaskBoundaries.from_events(HEARTBEATS)
    assert boundaries.snap(1) == 3
    assert boundaries.snap(2) == 3
    assert boundaries.snap(10) == 16  # after the heartbeats: the next real task
    assert boundaries.snap(14) == 16
    assert boundaries.snap(15) == 16
    # Short of a continuation: its head.
    assert boundaries.snap(5) == 3
    assert boundaries.snap(8) == 3


def test_beyond_the_last_task_there_is_no_reset_point() -> None:
    boundaries = TaskBoundaries.from_events(HEARTBEATS)
    assert boundaries.snap(17) is None
    assert boundaries.snap(100) is None
    assert boundaries.snap(None) is None


@pytest.mark.parametrize(
    "between",
    [
        ["WORKFLOW_EXECUTION_SIGNALED"],  # a signal after the task completed
        ["TIMER_STARTED", "TIMER_FIRED"],  # the task's command, then what it waited for
    ],
)
def test_a_task_after_other_events_is_a_reset_point_of_its_own(between: list[str]) -> None:
    events = _events(
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",  # 3
        "WORKFLOW_TASK_COMPLETED",  # 4
        *between,
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
    )
    next_task = events[-1].event_id
    boundaries = TaskBoundaries.from_events(events)
    assert boundaries.snap(next_task) == next_task
    assert boundaries.snap(4) == next_task
    assert boundaries.snap(3) == 3


async def test_boundaries_of_a_recorded_history() -> None:
    run = await load("http_failure_recorded")
    tasks = [
        e.event_id
        for e in run.history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    ]
    assert len(tasks) == 2
    first, last = tasks
    assert run.boundaries.snap(first) == first
    assert run.boundaries.snap(first + 1) == last
    assert run.boundaries.snap(last) == last
    assert run.boundaries.snap(last + 1) is None


# The history above, by event: a replay reports task 19 as the batch's (and the run's first).
CANCELLED_WHILE_A_HEARTBEAT_FAILED = _events(
    "WORKFLOW_EXECUTION_STARTED",  # 1
    "WORKFLOW_TASK_SCHEDULED",  # 2
    "WORKFLOW_TASK_STARTED",  # 3: head, schedules the batch
    "WORKFLOW_TASK_COMPLETED",  # 4: empty (heartbeat)
    "WORKFLOW_TASK_SCHEDULED",  # 5
    "WORKFLOW_TASK_STARTED",  # 6: continues 3
    "WORKFLOW_TASK_COMPLETED",  # 7
    "WORKFLOW_TASK_SCHEDULED",  # 8
    "WORKFLOW_TASK_STARTED",  # 9: continues 3
    "WORKFLOW_TASK_COMPLETED",  # 10
    "WORKFLOW_TASK_SCHEDULED",  # 11
    "WORKFLOW_TASK_STARTED",  # 12: continues 3
    "WORKFLOW_TASK_COMPLETED",  # 13
    "WORKFLOW_TASK_SCHEDULED",  # 14
    "WORKFLOW_TASK_STARTED",  # 15: continues 3
    "WORKFLOW_TASK_FAILED",  # 16
    "WORKFLOW_EXECUTION_CANCEL_REQUESTED",  # 17
    "WORKFLOW_TASK_SCHEDULED",  # 18
    "WORKFLOW_TASK_STARTED",  # 19: takes in the cancel request
    "WORKFLOW_TASK_COMPLETED",  # 20
    "MARKER_RECORDED",  # 21: the batch, cancelled
    "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",  # 22
    "WORKFLOW_EXECUTION_CANCELED",  # 23
)


def test_a_reset_point_at_or_after_the_cancel_request_moves_before_it() -> None:
    boundaries = TaskBoundaries.from_events(CANCELLED_WHILE_A_HEARTBEAT_FAILED)
    assert boundaries.cancel_requested == 17
    assert boundaries.snap(19) == 19  # a task of its own: a failed task is no heartbeat
    # The last task before the request is 15, a continuation: its head.
    assert boundaries.before_cancel_request(19) == 3
    assert boundaries.before_cancel_request(3) == 3
    # No cancel request: any reset point stands.
    assert TaskBoundaries.from_events(HEARTBEATS).before_cancel_request(16) == 16


def _hand_built(
    name: str,
    status: RunStatus,
    *,
    first_task_event_id: int,
    steps: list[StepState],
    error: RunError | None = None,
) -> RunState:
    """A run's state written out by hand, for event sequences no recorded history holds."""
    return RunState(
        run_id=f"run_{name}",
        organization_id="org",
        workflow=WorkflowRef(
            workflow_id="wf", snapshot_id=None, version=None, name_at_run_time=name
        ),
        trigger=Trigger(),
        inputs=RunInputs(),
        timing=Timing(created_at=datetime(2026, 1, 1, tzinfo=UTC)),
        status=status,
        error=error,
        first_task_event_id=first_task_event_id,
        steps=steps,
    )


def _cancelled_run(meta_started: int) -> RunState:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return _hand_built(
        "cancelled",
        "cancelled",
        first_task_event_id=meta_started,
        steps=[
            StepState(
                node_id="meta",
                node_type="start_json",
                status="cancelled",
                attempt=1,
                started_at=at,
                started_event_id=meta_started,
                finished_event_id=meta_started,
            ),
            StepState(node_id="big", node_type="condition"),
            StepState(node_id="out", node_type="end"),
        ],
    )


_BATCHES = {"meta": "batch", "big": "batch", "out": "batch"}


def test_a_cancelled_run_is_never_reset_to_a_point_that_keeps_its_cancel_request() -> None:
    boundaries = TaskBoundaries.from_events(CANCELLED_WHILE_A_HEARTBEAT_FAILED)

    plan = plan_retry(_cancelled_run(19), _BATCHES, REGISTRY, "failure_point", boundaries)

    assert plan.allowed
    assert plan.reset_event_id == 3
    assert plan.resumed_from_node_id == "meta"
    assert plan.reuse == [] and plan.rerun == ["meta", "big", "out"]


def test_a_run_cancelled_before_its_first_task_can_only_be_retried_from_the_start() -> None:
    """The cancel request came before any task started: every reset point keeps it."""
    events = _events(
        "WORKFLOW_EXECUTION_STARTED",  # 1
        "WORKFLOW_TASK_SCHEDULED",  # 2
        "WORKFLOW_EXECUTION_CANCEL_REQUESTED",  # 3
        "WORKFLOW_TASK_STARTED",  # 4: starts the batch and takes in the cancel
        "WORKFLOW_TASK_COMPLETED",  # 5
        "MARKER_RECORDED",  # 6
        "WORKFLOW_EXECUTION_CANCELED",  # 7
    )
    boundaries = TaskBoundaries.from_events(events)
    state = _cancelled_run(4)

    plan = plan_retry(state, _BATCHES, REGISTRY, "failure_point", boundaries)

    assert not plan.allowed and plan.reset_event_id is None
    assert plan.reason is not None and '{"from": "start"}' in plan.reason
    assert plan_retry(state, _BATCHES, REGISTRY, "start", boundaries).allowed


# ------------------------------------------------------------------------ retry from a node

# A run a first retry reset to its first task, whose `retry` signal (6) reached Temporal before
# the new execution's first task started (7), then completed.
RETRIED_TO_THE_FIRST_TASK = _events(
    "WORKFLOW_EXECUTION_STARTED",  # 1
    "WORKFLOW_TASK_SCHEDULED",  # 2
    "WORKFLOW_TASK_STARTED",  # 3: the chain's first task
    "WORKFLOW_TASK_FAILED",  # 4: the first retry's reset
    "WORKFLOW_TASK_SCHEDULED",  # 5
    "WORKFLOW_EXECUTION_SIGNALED",  # 6: its `retry` signal
    "WORKFLOW_TASK_STARTED",  # 7: this execution's first task (its first_task_event_id)
    "WORKFLOW_TASK_COMPLETED",  # 8
    "MARKER_RECORDED",  # 9: the start's batch
    "ACTIVITY_TASK_SCHEDULED",  # 10: call
    "ACTIVITY_TASK_STARTED",  # 11
    "ACTIVITY_TASK_COMPLETED",  # 12
    "WORKFLOW_TASK_SCHEDULED",  # 13
    "WORKFLOW_TASK_STARTED",  # 14
    "WORKFLOW_TASK_COMPLETED",  # 15
    "MARKER_RECORDED",  # 16: out's batch
    "WORKFLOW_EXECUTION_COMPLETED",  # 17
)


def test_a_retry_from_a_node_resets_to_the_first_task_of_the_chain() -> None:
    """Not to the first task of the execution an earlier retry made: a reset there would keep
    that retry's signal, which the new execution would apply as its own request before the
    new one came (and keep nothing, running the upstream `call` again)."""
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def step(node_id: str, node_type: str, attempt: int, *tasks: int) -> StepState:
        return StepState(
            node_id=node_id,
            node_type=node_type,
            status="completed",
            attempt=attempt,
            started_at=at,
            started_event_id=tasks[0],
            finished_event_id=tasks[1],
        )

    state = _hand_built(
        "retried",
        "completed",
        first_task_event_id=7,
        steps=[
            step("start", "start_json", 1, 3, 3),
            step("call", "http_request", 2, 7, 14),
            step("out", "end", 2, 14, 14),
        ],
    )
    boundaries = TaskBoundaries.from_events(RETRIED_TO_THE_FIRST_TASK)
    assert boundaries.first() == 3

    plan = plan_from_node(state, [], REGISTRY, "out", boundaries)

    assert plan.allowed
    assert plan.reset_event_id == 3
    assert plan.reuse == ["start", "call"] and plan.kept == ["start", "call"]
    assert plan.rerun == ["out"] and plan.repeated_side_effects == []
