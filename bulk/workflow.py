"""A bulk operation: `BulkOperationWorkflow`, started by bulk/service.py with the operation's
id (`bulk_...`) as its workflow id, the organization as its `RunlaneOrganization` search
attribute, and a summary and memo saying what it does (operators see it in the Temporal UI).

The runs it acts on were matched and stored (store/bulk.py) before it started, in the order it
takes them; it walks them by offset:

* One activity per batch of runs (`APPLY_BATCH`, bulk/activities.py) applies the action to
  `pace.batch_size` runs, at most `pace.concurrency` at once, and records each run's outcome.
  An activity retried after a worker died applies nothing twice (see there).
* Between batches, a durable timer paces the operation to at most `pace.rate_per_s` actions a
  second (RUNLANE_BULK_RATE_PER_S): a bulk retry of thousands of runs never takes the worker
  and Temporal from interactive requests. The pace is frozen into the input at start.
* History stays bounded whatever the number of runs: an execution handles at most
  `BATCHES_PER_EXECUTION` batches (about 10 events each), then continues as new carrying only
  its offset and counters; the outcomes themselves live in the store, never in history. 10,000
  runs at the default batch of 5 are 2,000 batches over 20 executions.

Progress shows as the workflow's current details in the Temporal UI, through the `progress`
query, and (what the API reads, worker or not) as the outcomes recorded in the store.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from bulk.models import (
        APPLY_BATCH,
        BatchInput,
        BatchResult,
        BulkInput,
        BulkResult,
        Progress,
    )

BATCHES_PER_EXECUTION = 100
# A batch is at most a few hundred actions, each a few requests to Temporal and the store.
_BATCH_TIMEOUT = timedelta(minutes=10)
# Each finished action heartbeats: a worker that died mid-batch is noticed in this time.
_BATCH_HEARTBEAT = timedelta(seconds=60)
# Only what may pass is raised by a batch (Temporal or the store out of reach): retried until
# it comes back, backing off up to a minute; domain errors are outcomes, never failures.
_BATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)


@workflow.defn
class BulkOperationWorkflow:
    """See the module docstring."""

    def __init__(self) -> None:
        self._matched = 0
        self._progress = Progress()

    @workflow.run
    async def run(self, op: BulkInput) -> BulkResult:
        self._matched = op.matched
        self._progress = op.progress
        offset = op.offset
        batches = 0
        self._show(op)
        while offset < op.matched:
            if batches >= BATCHES_PER_EXECUTION or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    op.model_copy(update={"offset": offset, "progress": self._progress})
                )
            size = min(op.pace.batch_size, op.matched - offset)
            began = workflow.now()
            result = await workflow.execute_activity(
                APPLY_BATCH,
                BatchInput(
                    bulk_id=op.bulk_id,
                    organization_id=op.organization_id,
                    action=op.action,
                    offset=offset,
                    limit=size,
                    concurrency=op.pace.concurrency,
                ),
                result_type=BatchResult,
                start_to_close_timeout=_BATCH_TIMEOUT,
                heartbeat_timeout=_BATCH_HEARTBEAT,
                retry_policy=_BATCH_RETRY,
                summary=f"{op.action} runs {offset + 1}-{offset + size} of {op.matched}",
            )
            self._progress = self._progress.plus(result.progress)
            offset += size
            batches += 1
            self._show(op)
            # Paced: this batch's share of a second at the operation's rate, whatever part of
            # it the batch itself took.
            spent = (workflow.now() - began).total_seconds()
            rest = size / op.pace.rate_per_s - spent
            if offset < op.matched and rest > 0:
                await workflow.sleep(timedelta(seconds=rest), summary="pace")
        return BulkResult(matched=op.matched, progress=self._progress)

    @workflow.query
    def progress(self) -> BulkResult:
        return BulkResult(matched=self._matched, progress=self._progress)

    def _show(self, op: BulkInput) -> None:
        p = self._progress
        workflow.set_current_details(
            f"**{op.action}**: {p.done} of {op.matched} runs done "
            f"({p.succeeded} succeeded, {p.failed} failed, {p.skipped} skipped)"
        )
