"""Bulk operations, with no HTTP in them: start one, read one (status, progress, outcomes),
or dry-run one (which runs it would touch, and for a retry each run's plan).

**Which runs.** The filter is the run listing's (`RunService.list_runs`: workflow_id, status,
trigger_type, created_after/before) and/or explicit `run_ids`, each of which must be a run of
the organization (a missing or foreign one is refused, naming it). An empty filter is refused
(`filter_required`): "every run of the organization" is never what an empty object meant by
accident. The runs are matched once, when the operation starts, and frozen in the store in
creation order (oldest first): a retried run leaving the `status=error` filter, or a new run
entering it, changes nothing. At most RUNLANE_BULK_MAX_RUNS runs (`bulk_too_large` beyond:
narrow the filter).

**Idempotent by `command_id`** through the run commands' own protocol (runs/commands.py): the
operation's id is derived from the command id, the command log compares bodies (the same
command_id with another body → InvalidInput; Temporal's id uniqueness alone could not tell a
replay from a different request), and the workflow is started with USE_EXISTING, so
concurrent replays attach to one execution. A replay answers the operation as it is now.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from bulk.models import BULK, BulkAction, BulkFilter, BulkInput, Pace, Progress, is_bulk_id
from bulk.workflow import BulkOperationWorkflow
from runlane import ids, search_attributes
from runlane.errors import NotFound, invalid, not_found
from runlane.settings import Settings
from runs.commands import Command, CommandLog, Steps
from runs.reader import RunFilter, RunView
from runs.retry_plan import RetryPlan
from runs.service import RunService
from runs.temporal_errors import Reachability, needs_temporal
from store.bulk import BulkRecord, BulkRepository, OutcomeRecord
from store.idempotency import IdempotencyRepository
from store.pagination import Page
from workflows.models import RunStatus, TriggerType

_STATUSES: tuple[RunStatus, ...] = (
    "pending",
    "running",
    "waiting_for_human",
    "completed",
    "error",
    "cancelled",
)
_TRIGGERS: tuple[TriggerType, ...] = ("api", "restart", "rerun", "schedule", "webhook", "parent")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# Runs listed per page while matching, and read (or planned) at once.
_PAGE = 200
_CONCURRENCY = 8
# The largest batch one activity takes (bulk/workflow.py).
_MAX_BATCH = 100

# The operation's status, by its workflow's.
_STATUS_OF_EXECUTION = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TERMINATED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
}


@dataclass(frozen=True)
class BulkView:
    record: BulkRecord
    # running, completed, cancelled (from the Temporal UI), failed (terminated, or lost).
    status: str
    progress: Progress
    replayed: bool = False


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    status: str
    # Retry only: what the retry would do to this run.
    plan: RetryPlan | None = None


@dataclass(frozen=True)
class DryRun:
    action: BulkAction
    runs: list[PlannedRun]


def _problem(code: str, message: str, *loc: str | int) -> Any:
    return invalid(code, message, [{"loc": ["body", "filter", *loc], "message": message}])


def check_filter(run_filter: BulkFilter, max_runs: int) -> None:
    """The filter names at least one criterion, each of a valid shape."""
    if run_filter.is_empty():
        message = (
            "filter needs at least one criterion (workflow_id, status, trigger_type, "
            "created_after, created_before or run_ids): an empty filter would match every "
            "run of the organization."
        )
        raise _problem("filter_required", message)
    if run_filter.workflow_id is not None and not _SAFE_VALUE.match(run_filter.workflow_id):
        raise _problem(
            "invalid_filter",
            f"workflow_id '{run_filter.workflow_id}' is not a valid id.",
            "workflow_id",
        )
    if run_filter.status is not None and run_filter.status not in _STATUSES:
        raise _problem("invalid_filter", f"status must be one of {', '.join(_STATUSES)}.", "status")
    if run_filter.trigger_type is not None and run_filter.trigger_type not in _TRIGGERS:
        message = f"trigger_type must be one of {', '.join(_TRIGGERS)}."
        raise _problem("invalid_filter", message, "trigger_type")
    for field in ("created_after", "created_before"):
        moment = getattr(run_filter, field)
        if moment is not None and moment.utcoffset() is None:
            raise _problem(
                "invalid_filter", f"{field} must carry a timezone offset (RFC 3339).", field
            )
    after, before = run_filter.created_after, run_filter.created_before
    if after is not None and before is not None and after >= before:
        raise _problem(
            "invalid_filter", "created_after must be earlier than created_before.", "created_before"
        )
    if run_filter.run_ids is not None:
        if not run_filter.run_ids:
            raise _problem("invalid_filter", "run_ids must name at least one run.", "run_ids")
        if len(run_filter.run_ids) > max_runs:
            raise _too_large(max_runs, "run_ids")
        for index, run_id in enumerate(run_filter.run_ids):
            if not isinstance(run_id, str) or not ids.is_valid(ids.RUN, run_id):
                raise _problem(
                    "invalid_filter", f"No run {run_id} in this organization.", "run_ids", index
                )


def _too_large(max_runs: int, *loc: str) -> Any:
    message = (
        f"The filter matches more than {max_runs} runs, the most one bulk operation takes "
        "(RUNLANE_BULK_MAX_RUNS): narrow it, e.g. with created_after/created_before."
    )
    return _problem("bulk_too_large", message, *loc)


def _matches(view: RunView, run_filter: BulkFilter) -> bool:
    """The run's current state passes every criterion given (the listing reads visibility,
    which may lag a moment behind a run's state)."""
    state = view.state
    created = state.timing.created_at
    return (
        (run_filter.workflow_id is None or state.workflow.workflow_id == run_filter.workflow_id)
        and (run_filter.status is None or state.status == run_filter.status)
        and (run_filter.trigger_type is None or state.trigger.type == run_filter.trigger_type)
        and (run_filter.created_after is None or created >= run_filter.created_after)
        and (run_filter.created_before is None or created < run_filter.created_before)
    )


class BulkService:
    def __init__(
        self,
        *,
        client: Client,
        runs: RunService,
        repo: BulkRepository,
        idempotency: IdempotencyRepository,
        settings: Settings,
    ) -> None:
        self._client = client
        self._runs = runs
        self._repo = repo
        self._commands = CommandLog(idempotency)
        self._settings = settings
        self.reachability: Reachability | None = runs.reachability

    # ------------------------------------------------------------------ matching

    async def match(self, org: str, run_filter: BulkFilter) -> list[RunView]:
        """The runs the filter matches now, oldest first; InvalidInput for a bad filter, an
        unknown run id, or more runs than one operation takes."""
        max_runs = self._settings.bulk_max_runs
        check_filter(run_filter, max_runs)
        if run_filter.run_ids is not None:
            return await self._named(org, run_filter)
        views: list[RunView] = []
        cursor: str | None = None
        listing = RunFilter(
            workflow_id=run_filter.workflow_id,
            status=run_filter.status,
            trigger_type=run_filter.trigger_type,
            created_after=run_filter.created_after,
            created_before=run_filter.created_before,
        )
        while True:
            page = await self._runs.list_runs(org, listing, limit=_PAGE, cursor=cursor, order="asc")
            views.extend(view for view in page.views if _matches(view, run_filter))
            if len(views) > max_runs:
                raise _too_large(max_runs)
            cursor = page.next_cursor
            if cursor is None:
                return views

    async def _named(self, org: str, run_filter: BulkFilter) -> list[RunView]:
        run_ids = list(dict.fromkeys(run_filter.run_ids or []))
        semaphore = asyncio.Semaphore(_CONCURRENCY)

        async def read(run_id: str) -> RunView | None:
            async with semaphore:
                try:
                    return await self._runs.get(org, run_id)
                except NotFound:
                    return None

        views = await asyncio.gather(*(read(run_id) for run_id in run_ids))
        named = run_filter.run_ids or []
        missing = [run_id for run_id, view in zip(run_ids, views, strict=True) if view is None]
        if missing:
            problems: list[dict[str, Any]] = [
                {
                    "loc": ["body", "filter", "run_ids", named.index(run_id)],
                    "message": f"No run {run_id} in this organization.",
                }
                for run_id in missing
            ]
            message = "; ".join(f"No run {run_id} in this organization." for run_id in missing)
            raise invalid("invalid_filter", message, problems)
        return [view for view in views if view is not None and _matches(view, run_filter)]

    # ------------------------------------------------------------------ dry run

    @needs_temporal
    async def dry_run(self, org: str, action: BulkAction, run_filter: BulkFilter) -> DryRun:
        """What an operation with this filter would touch now; for a retry, each run's plan.
        Changes nothing and starts nothing."""
        views = await self.match(org, run_filter)
        if action != "retry":
            return DryRun(action, [PlannedRun(v.state.run_id, v.state.status) for v in views])
        semaphore = asyncio.Semaphore(_CONCURRENCY)

        async def planned(view: RunView) -> PlannedRun:
            async with semaphore:
                try:
                    plan = await self._runs.retry_plan(org, view.state.run_id, "failure_point")
                except NotFound:  # gone since it was listed
                    plan = RetryPlan(from_="failure_point", allowed=False, reason="No such run.")
            return PlannedRun(view.state.run_id, view.state.status, plan)

        return DryRun(action, list(await asyncio.gather(*(planned(v) for v in views))))

    # ------------------------------------------------------------------ start

    @needs_temporal
    async def start(
        self,
        org: str,
        action: BulkAction,
        run_filter: BulkFilter,
        *,
        command_id: str | None = None,
    ) -> BulkView:
        """Match the runs, store them, and start the operation's workflow; a replay of the
        same command_id answers the operation it started (`replayed`)."""
        filter_json = run_filter.model_dump(mode="json", exclude_none=True)
        command = Command(
            org, command_id, "bulk", "runs", {"action": action, "filter": filter_json}
        )
        bulk_id = ids.derived_id(BULK, org, command_id) if command_id else ids.new_id(BULK)

        async def took_effect(result_id: str) -> bool:
            return await self._repo.get(org, result_id) is not None and (
                await self._execution_status(result_id) is not None
            )

        async def prepare() -> list[str]:
            return [view.state.run_id for view in await self.match(org, run_filter)]

        async def perform(run_ids: list[str], result_id: str) -> None:
            record = await self._repo.create(
                org, result_id, action=action, filter=filter_json, run_ids=run_ids
            )
            await self._start_workflow(record)

        executed = await self._commands.execute(
            command, Steps(bulk_id, took_effect, prepare, perform)
        )
        view = await self.get(org, executed.result_id)
        return BulkView(view.record, view.status, view.progress, replayed=executed.replayed)

    def _pace(self) -> Pace:
        rate = self._settings.bulk_rate_per_s
        concurrency = self._settings.bulk_concurrency
        # About a second of actions per batch (never fewer than run at once): one timer and
        # one activity per second of the operation.
        batch = max(concurrency, min(int(rate), _MAX_BATCH))
        return Pace(rate_per_s=rate, concurrency=concurrency, batch_size=batch)

    async def _start_workflow(self, record: BulkRecord) -> None:
        filter_text = ", ".join(f"{key}={value}" for key, value in record.filter.items())
        try:
            await self._client.start_workflow(
                BulkOperationWorkflow.run,
                BulkInput(
                    bulk_id=record.id,
                    organization_id=record.organization_id,
                    action=record.action,  # type: ignore[arg-type]  # stored from a BulkAction
                    matched=record.matched,
                    pace=self._pace(),
                ),
                id=record.id,
                task_queue=self._settings.task_queue,
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(search_attributes.ORGANIZATION, record.organization_id)]
                ),
                memo={"action": record.action, "filter": record.filter, "matched": record.matched},
                static_summary=f"Bulk {record.action} of {record.matched} runs",
                static_details=f"Runs matching {filter_text[:1000]}",
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return  # it ran already (and ended): a replay of the command that started it

    # ------------------------------------------------------------------ reading

    @needs_temporal
    async def get(self, org: str, bulk_id: str) -> BulkView:
        """The operation with its progress; NotFound when missing or another organization's."""
        record = await self._record(org, bulk_id)
        counts = await self._repo.counts(record.id)
        progress = Progress(
            done=sum(counts.values()),
            succeeded=counts.get("succeeded", 0),
            failed=counts.get("failed", 0),
            skipped=counts.get("skipped", 0),
        )
        status = await self._execution_status(record.id)
        if status is None:
            # No execution (any more): Temporal's retention removed a finished one, or it was
            # never started (a start that failed, never answered to its caller).
            status = "completed" if progress.done >= record.matched else "failed"
        return BulkView(record, status, progress)

    @needs_temporal
    async def outcomes(
        self, org: str, bulk_id: str, *, limit: int, cursor: str | None, order: Any = "desc"
    ) -> Page[OutcomeRecord]:
        """A page of what the operation did to each run so far (InvalidCursor: not ours)."""
        record = await self._record(org, bulk_id)
        return await self._repo.outcomes(record.id, limit=limit, cursor=cursor, order=order)

    async def _record(self, org: str, bulk_id: str) -> BulkRecord:
        record = await self._repo.get(org, bulk_id) if is_bulk_id(bulk_id) else None
        if record is None:
            raise not_found("bulk_operation", bulk_id)
        return record

    async def _execution_status(self, bulk_id: str) -> str | None:
        try:
            description = await self._client.get_workflow_handle(bulk_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        if description.status is None:
            return "running"
        return _STATUS_OF_EXECUTION.get(description.status, "running")
