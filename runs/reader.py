"""Reading runs from Temporal, which owns them (DESIGN.md "Who owns which data").

Details come from the workflow's `state` query; an ended run is read from its close event
(its result or failure details carry the final state) so no worker is needed; when no worker
answers for an open run, the record is rebuilt from the start event's input and the
search attributes. Lists come from visibility. Nothing polls with a long-poll.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from runlane import ids, search_attributes
from runlane.errors import InvalidInput, NotFound, Unavailable, invalid, not_found
from runlane.paging import Order
from runs.listing import CreationOrder, Position
from runs.temporal_errors import unavailable
from runs.usage import RunUsage
from store.usage import Usage
from workflows.maps import MAP_CHILD_MARK
from workflows.models import (
    TERMINAL_STATUSES,
    RunError,
    RunInput,
    RunState,
    final_state_payloads,
    initial_state,
)
from workflows.run_workflow import RunWorkflow

WORKFLOW_TYPE = "RunWorkflow"
QUERY_TIMEOUT = timedelta(seconds=5)
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# How many runs of a listed page are read at once.
_READ_CONCURRENCY = 10


@dataclass(frozen=True)
class RunView:
    state: RunState
    temporal_run_id: str | None
    # What its nodes sent and consumed (runs/usage.py): zero for a run just started; None
    # when the reader has no ledger to read.
    usage: Usage | None = dataclasses.field(default_factory=Usage)


# The reason RunService.cancel terminates a run with when its workflow task keeps failing (the
# run can then never process a cancel request): such a run reads as cancelled.
CANCELLED_BY_TERMINATION = (
    "cancelled through Runlane: the run's workflow task kept failing, so it was terminated"
)


def workflow_task_failing(execution: WorkflowExecution) -> bool:
    """The execution's workflow task failed and is being retried: until that changes, no query
    is answered, no signal or cancel request is processed."""
    if not isinstance(execution, WorkflowExecutionDescription):
        return False
    raw = execution.raw_description
    return raw.HasField("pending_workflow_task") and raw.pending_workflow_task.attempt > 1


def _reconcile(
    state: RunState, status: WorkflowExecutionStatus | None, termination_reason: str = ""
) -> RunState:
    """Executions ended from outside the workflow (terminated, timed out) never reported it;
    nor did one that failed outside any node."""
    if status in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW):
        return state
    cancelled_by_termination = (
        status == WorkflowExecutionStatus.TERMINATED
        and termination_reason == CANCELLED_BY_TERMINATION
    )
    if status == WorkflowExecutionStatus.CANCELED or cancelled_by_termination:
        if state.status == "cancelled":
            return state
        return state.model_copy(update={"status": "cancelled", "waiting_for_node_ids": []})
    if status == WorkflowExecutionStatus.FAILED and state.status not in TERMINAL_STATUSES:
        error = RunError(
            stage="execution",
            type="WorkflowFailed",
            message="the run's workflow failed outside any node; the Temporal UI shows why",
        )
        return state.model_copy(
            update={"status": "error", "error": error, "waiting_for_node_ids": []}
        )
    if status in (WorkflowExecutionStatus.TERMINATED, WorkflowExecutionStatus.TIMED_OUT):
        if state.status not in ("completed", "error", "cancelled"):
            kind = "Terminated" if status == WorkflowExecutionStatus.TERMINATED else "TimedOut"
            error = RunError(
                stage="execution",
                type=kind,
                message=f"the Temporal execution was {kind.lower()} from outside the run",
            )
            return state.model_copy(
                update={"status": "error", "error": error, "waiting_for_node_ids": []}
            )
    return state


def _awaiting_first_task(execution: WorkflowExecution) -> bool:
    """Only [started, workflow task scheduled] in history, per describe (visibility's copy of
    the history length is not authoritative): the first workflow task was never started."""
    if not isinstance(execution, WorkflowExecutionDescription):
        return False
    pending = execution.raw_description.pending_workflow_task
    return (
        execution.status == WorkflowExecutionStatus.RUNNING
        and execution.history_length <= 2
        and execution.raw_description.HasField("pending_workflow_task")
        and pending.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
    )


# An ended run's status is its execution's: an execution terminated or timed out from outside
# never upserted one, and its RunlaneStatus still says what it was doing then.
_ENDED_BY_EXECUTION_STATUS = {
    "completed": "ExecutionStatus = 'Completed'",
    "error": "ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut')",
    "cancelled": "ExecutionStatus = 'Canceled'",
}


def _status_clause(status: str) -> str:
    ended = _ENDED_BY_EXECUTION_STATUS.get(status)
    if ended is not None:
        return ended
    return f"ExecutionStatus = 'Running' AND {search_attributes.RUN_STATUS.name} = '{status}'"


def _query_string(
    org: str,
    workflow_id: str | None,
    status: str | None,
    trigger_type: str | None,
    parent_run_id: str | None = None,
    schedule_id: str | None = None,
) -> str:
    clauses = [
        f"WorkflowType = '{WORKFLOW_TYPE}'",
        f"{search_attributes.ORGANIZATION.name} = '{org}'",
    ]
    for key, value in (
        (search_attributes.WORKFLOW_ID, workflow_id),
        (search_attributes.TRIGGER_TYPE, trigger_type),
        (search_attributes.PARENT_RUN_ID, parent_run_id),
        (search_attributes.SCHEDULE_ID, schedule_id),
    ):
        if value is not None:
            clauses.append(f"{key.name} = '{value}'")
    if status is not None:
        clauses.append(_status_clause(status))
    return " AND ".join(clauses)


@dataclass(frozen=True)
class RunFilter:
    workflow_id: str | None = None
    status: str | None = None
    trigger_type: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    # Child runs of this run (its subworkflow nodes').
    parent_run_id: str | None = None
    # Runs this schedule fired.
    schedule_id: str | None = None


def _filter_problem(field: str, message: str) -> InvalidInput:
    return invalid("invalid_filter", message, [{"loc": ["query", field], "message": message}])


def _check_filter(run_filter: RunFilter) -> None:
    if run_filter.workflow_id is not None and not _SAFE_VALUE.match(run_filter.workflow_id):
        raise _filter_problem(
            "workflow_id", f"workflow_id '{run_filter.workflow_id}' is not a valid id."
        )
    for field, value in (
        ("parent_run_id", run_filter.parent_run_id),
        ("schedule_id", run_filter.schedule_id),
    ):
        if value is not None and not _SAFE_VALUE.match(value):
            raise _filter_problem(field, f"{field} '{value}' is not a valid id.")
    bounds = {
        "created_after": run_filter.created_after,
        "created_before": run_filter.created_before,
    }
    for field, moment in bounds.items():
        # A moment without an offset names no instant (and cannot be compared with one).
        if moment is not None and moment.utcoffset() is None:
            raise _filter_problem(field, f"{field} must carry a timezone offset (RFC 3339).")
    after, before = run_filter.created_after, run_filter.created_before
    if after is not None and before is not None and after >= before:
        raise _filter_problem(
            "created_before", "created_after must be earlier than created_before."
        )


class _RecentOrganizations:
    """Runs' organizations recently read, for `RunReader.organization_of`.

    A run's organization never changes, so a cached answer stays right; the cache only spares
    the codec endpoint's bursts (the Temporal UI posts one decode request per event it shows)
    a describe each. Positive answers only: a run started a moment ago must not be refused for
    the cache's lifetime. One per process (a module global): a RunReader lives for one request.
    """

    def __init__(self, seconds: float = 300.0, size: int = 4096) -> None:
        self._seconds = seconds
        self._size = size
        self._entries: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()

    def get(self, namespace: str, run_id: str) -> str | None:
        cached = self._entries.get((namespace, run_id))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def put(self, namespace: str, run_id: str, organization: str) -> None:
        key = (namespace, run_id)
        self._entries[key] = (time.monotonic() + self._seconds, organization)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


_recent_organizations = _RecentOrganizations()


@dataclass(frozen=True)
class RunPage:
    views: list[RunView]
    next_cursor: str | None


class RunReader:
    def __init__(self, client: Client, usage: RunUsage | None = None) -> None:
        """With `usage`, the runs read (`get`, `list_page`) carry their usage."""
        self._client = client
        self._listing = CreationOrder(client)
        self._usage = usage

    async def get(self, org: str, run_id: str) -> RunView:
        """The run, or 404 when it is missing or belongs to another organization."""
        if not ids.is_valid(ids.RUN, run_id):
            raise not_found("run", run_id)
        handle = self._client.get_workflow_handle(run_id)
        try:
            desc = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise not_found("run", run_id) from None
            raise
        if desc.workflow_type != WORKFLOW_TYPE or not self._owned(
            desc.typed_search_attributes, org
        ):
            raise not_found("run", run_id)
        [view] = await self._with_usage([await self._view(desc)])
        return view

    async def _with_usage(self, views: list[RunView]) -> list[RunView]:
        if self._usage is None:
            return [replace(view, usage=None) for view in views]
        totals = await self._usage.totals([view.state.run_id for view in views])
        return [replace(view, usage=totals[view.state.run_id]) for view in views]

    async def exists(self, org: str, run_id: str) -> bool:
        try:
            await self.get(org, run_id)
        except NotFound:
            return False
        return True

    async def organization_of(self, run_id: str) -> str | None:
        """The organization run `run_id` belongs to (the search attribute `get` checks), or
        None when there is no such run; recent answers are cached (`_RecentOrganizations`).
        A map's child workflow (workflows/maps.py) belongs to the run that started it."""
        run_id = run_id.partition(MAP_CHILD_MARK)[0]
        if not ids.is_valid(ids.RUN, run_id):
            return None
        namespace = self._client.namespace
        cached = _recent_organizations.get(namespace, run_id)
        if cached is not None:
            return cached
        try:
            desc = await self._client.get_workflow_handle(run_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            # Whatever else describe fails with, the answer cannot be given now: the codec
            # endpoint that asks must answer 503, never a 500.
            raise unavailable() from err
        except RuntimeError as err:  # a lazy client that cannot connect (runs/temporal_errors.py)
            raise unavailable() from err
        if desc.workflow_type != WORKFLOW_TYPE:
            return None
        organization = desc.typed_search_attributes.get(search_attributes.ORGANIZATION)
        if organization is not None:
            _recent_organizations.put(namespace, run_id, organization)
        return organization

    async def list_page(
        self,
        org: str,
        run_filter: RunFilter,
        *,
        limit: int,
        cursor: str | None,
        order: Order = "desc",
    ) -> RunPage:
        """By creation time, newest first or oldest first (runs/listing.py), each run read
        like `get`."""
        _check_filter(run_filter)
        listed = await self._listing.page(
            _query_string(
                org,
                run_filter.workflow_id,
                run_filter.status,
                run_filter.trigger_type,
                run_filter.parent_run_id,
                run_filter.schedule_id,
            ),
            limit=limit,
            position=Position.decode(cursor, order) if cursor is not None else None,
            order=order,
            created_after=run_filter.created_after,
            created_before=run_filter.created_before,
        )
        semaphore = asyncio.Semaphore(_READ_CONCURRENCY)

        async def read(run_id: str) -> RunView | None:
            async with semaphore:
                # Only the current execution is the run: an older execution of a retried run
                # (listed because it matched the filter) does not stand for it.
                try:
                    current = await self._client.get_workflow_handle(run_id).describe()
                except RPCError as err:
                    if err.status == RPCStatusCode.NOT_FOUND:  # gone since it was listed
                        return None
                    raise
                if current.run_id not in listed.executions[run_id]:
                    return None
                return await self._view(current)

        views = await asyncio.gather(*(read(run_id) for run_id in listed.run_ids))
        next_cursor = listed.next_position.encode() if listed.next_position else None
        return RunPage(await self._with_usage([v for v in views if v is not None]), next_cursor)

    async def run_input(self, run_id: str) -> RunInput:
        """What the run was started with (its start event): definition, snapshot, inputs."""
        handle = self._client.get_workflow_handle(run_id)
        async for event in handle.fetch_history_events(page_size=1):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [run_input] = await self._client.data_converter.decode(payloads[:1], [RunInput])
            assert isinstance(run_input, RunInput)
            return run_input
        raise Unavailable("run_unreadable", "The run's history could not be read.")

    async def derived_run_ids(self, org: str, run_id: str) -> list[str]:
        """Runs restarted or rerun from this one (visibility: eventually consistent)."""
        query = (
            f"{search_attributes.ORGANIZATION.name} = '{org}' AND "
            f"{search_attributes.SOURCE_RUN_ID.name} = '{run_id}'"
        )
        return sorted({execution.id async for execution in self._client.list_workflows(query)})

    @staticmethod
    def _owned(attributes: TypedSearchAttributes, org: str) -> bool:
        return attributes.get(search_attributes.ORGANIZATION) == org

    async def _view(self, execution: WorkflowExecution) -> RunView:
        handle = self._client.get_workflow_handle(execution.id, run_id=execution.run_id)
        state: RunState | None = None
        if execution.status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED):
            state = await self._final_state(handle)
        if state is None and _awaiting_first_task(execution):
            # No worker has picked the run up yet: a query would wait for one until its
            # timeout, and nothing has executed, so the start event says all there is.
            run_input = await self.run_input(execution.id)
            if run_input.retry is None:  # a retry's attempts come from the workflow itself
                state = initial_state(run_input)
        reason = ""
        if execution.status == WorkflowExecutionStatus.TERMINATED:
            reason = await self._termination_reason(handle)
        # A run whose workflow task keeps failing answers no query (it would time out): what
        # it has done so far is in its history, what it was doing in visibility.
        # Nor does one that failed outside any node (its failure carries no state): replaying
        # it for a query would fail the same way.
        stuck = (
            workflow_task_failing(execution)
            or reason == CANCELLED_BY_TERMINATION
            or execution.status == WorkflowExecutionStatus.FAILED
        )
        if state is None and not stuck:
            state = await self._queried_state(handle)
        if state is None:
            state = await self._state_from_start(handle, execution.typed_search_attributes)
        return RunView(
            state=_reconcile(state, execution.status, reason), temporal_run_id=execution.run_id
        )

    async def _termination_reason(self, handle: WorkflowHandle) -> str:
        async for event in handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
        ):
            return str(event.workflow_execution_terminated_event_attributes.reason)
        return ""

    async def _queried_state(self, handle: WorkflowHandle) -> RunState | None:
        try:
            return await handle.query(RunWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
        except (WorkflowQueryFailedError, WorkflowQueryRejectedError, RPCError):
            return None

    async def _final_state(self, handle: WorkflowHandle) -> RunState | None:
        async for event in handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
        ):
            payloads = final_state_payloads(event)
            if not payloads:
                return None
            try:
                [state] = await self._client.data_converter.decode(payloads[:1], [RunState])
            except Exception:  # noqa: BLE001 - an undecodable result falls back to a query
                return None
            return state if isinstance(state, RunState) else None
        return None

    async def _state_from_start(
        self, handle: WorkflowHandle, attributes: TypedSearchAttributes
    ) -> RunState:
        """No worker answered: the input is in the start event, the status in visibility."""
        async for event in handle.fetch_history_events(page_size=1):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [run_input] = await self._client.data_converter.decode(payloads[:1], [RunInput])
            assert isinstance(run_input, RunInput)
            status = attributes.get(search_attributes.RUN_STATUS) or "pending"
            return initial_state(run_input, status)  # type: ignore[arg-type]
        raise Unavailable("run_unreadable", "The run's history could not be read.")
