"""The launcher: the workflow a schedule's Temporal Schedule starts at each fire.

It prepares the run through the run service (an activity, triggers/schedule_fire.py: the
definition published at fire time, the schedule's inputs checked as a REST start checks them),
then starts it as a child workflow and waits for it to end. Waiting is what makes the
schedule's overlap policy apply to runs: Temporal sees the launcher running as long as its run
is, so `skip` skips a fire while the previous run goes on, and `cancel_other` cancels the
launcher, which cancels its run (parent close policy REQUEST_CANCEL too).

The launcher completes whatever the run's outcome (its result says how the run ended): a
failed run is the run's business, never a reason to retry the fire. It fails only when the
fire could not start a run (FIRE_FAILED, carrying the domain error), and is cancelled with
its run.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from runs.starter import run_search_attributes
    from triggers.schedule_fire import (
        FIRE_FAILED,
        PREPARE_RUN,
        FireRequest,
        LaunchInput,
        LaunchResult,
    )
    from workflows.models import RunInput

RUN_WORKFLOW_TYPE = "RunWorkflow"
# Temporal sets it on every workflow a schedule starts: the fire's scheduled (nominal) time.
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
PREPARE_TIMEOUT = timedelta(seconds=60)
# Only what may pass (the store or Temporal out of reach) is retried; a domain error is not.
PREPARE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_attempts=5
)


@workflow.defn(name="ScheduledRunWorkflow")
class ScheduledRunWorkflow:
    @workflow.run
    async def run(self, launch: LaunchInput) -> LaunchResult:
        info = workflow.info()
        scheduled_at = info.typed_search_attributes.get(SCHEDULED_START_TIME) or info.start_time
        try:
            run_input = await workflow.execute_activity(
                PREPARE_RUN,
                FireRequest(
                    organization_id=launch.organization_id,
                    schedule_id=launch.schedule_id,
                    scheduled_at=scheduled_at,
                    launcher_workflow_id=info.workflow_id,
                    launcher_run_id=info.first_execution_run_id,
                ),
                result_type=RunInput,
                start_to_close_timeout=PREPARE_TIMEOUT,
                retry_policy=PREPARE_RETRY,
                summary=f"Prepare the run of schedule {launch.schedule_id}",
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == FIRE_FAILED:
                # The launcher fails with the domain error itself: its message is what the
                # Temporal UI shows, its details what the schedule's read shows.
                raise ApplicationError(
                    cause.message, *cause.details, type=FIRE_FAILED, non_retryable=True
                ) from None
            raise
        version = run_input.workflow.version
        try:
            state = await workflow.execute_child_workflow(
                RUN_WORKFLOW_TYPE,
                run_input,
                id=run_input.run_id,
                result_type=dict,
                cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                search_attributes=TypedSearchAttributes(run_search_attributes(run_input)),
                static_summary=f"{run_input.workflow.name_at_run_time} "
                f"({'v' + str(version) if version else 'draft'}, schedule "
                f"{launch.schedule_id})",
            )
        except WorkflowAlreadyStartedError:
            return LaunchResult(run_id=run_input.run_id, status="already_started")
        except ChildWorkflowError as err:
            if isinstance(err.cause, CancelledError):
                task = asyncio.current_task()
                if workflow.cancellation_reason() is not None or (task and task.cancelling()):
                    # This launcher was cancelled (overlap cancel_other, or an operator): so
                    # was its run, and the launcher ends cancelled too.
                    raise asyncio.CancelledError() from None
                return LaunchResult(run_id=run_input.run_id, status="cancelled")
            return LaunchResult(run_id=run_input.run_id, status="error")
        status = state.get("status") if isinstance(state, dict) else None
        return LaunchResult(run_id=run_input.run_id, status=str(status or "completed"))
