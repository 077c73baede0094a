"""Schedules (API.md "Triggers"): Temporal Schedules that start runs of a workflow.

Who owns what: the row (store/schedules.py) owns whose a schedule is, the workflow, the inputs,
the note and the spec as written; the Temporal Schedule by the same id owns the timing (the
times it fires, paused, the overlap policy, next and recent fires), so operators see, pause
and trigger it in the Temporal UI and the API answers what Temporal does. The row is written
first and the Temporal Schedule second (a refusal removes the row again: nothing half-made);
deleting goes the other way. A row whose Temporal Schedule is gone reads as missing.

Each fire starts the launcher workflow (triggers/schedule_workflow.py), which prepares the run
through the run service (the definition published *then*) and runs it as its child.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
    WorkflowHistoryEventFilterType,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.converter import WorkflowSerializationContext
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from runlane import ids, search_attributes
from runlane.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    RunlaneError,
    TooLarge,
    Unavailable,
    invalid,
    not_found,
)
from runlane.paging import Order
from runs.reader import RunFilter, RunView
from runs.service import RunService
from runs.temporal_errors import Reachability, needs_temporal
from store.pagination import Page
from store.schedules import SCHEDULE_PREFIX, ScheduleRecord, ScheduleRepository
from triggers.schedule_fire import (
    FIRE_FAILED,
    FireError,
    LaunchInput,
    requested_inputs,
    scheduled_run_id,
)
from triggers.schedule_spec import (
    OUT_OF_RANGE,
    TimeSpec,
    body_problem,
    refused_spec,
    representable,
    spec_problems,
)
from triggers.schedule_workflow import SCHEDULED_START_TIME, ScheduledRunWorkflow
from workflows.models import RunInput, Trigger

log = logging.getLogger("runlane.triggers")
T = TypeVar("T")

Overlap = Literal["skip", "buffer_one", "allow_all", "cancel_other"]
# What a schedule may read back: an operator may pick Temporal's other policies in its UI.
OverlapShown = Literal[
    "skip", "buffer_one", "allow_all", "cancel_other", "buffer_all", "terminate_other"
]
ConfigSource = Literal["published", "draft"]

OVERLAP_POLICIES: dict[str, ScheduleOverlapPolicy] = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
}
_OVERLAP_NAMES: dict[ScheduleOverlapPolicy, OverlapShown] = {
    ScheduleOverlapPolicy.SKIP: "skip",
    ScheduleOverlapPolicy.BUFFER_ONE: "buffer_one",
    ScheduleOverlapPolicy.ALLOW_ALL: "allow_all",
    ScheduleOverlapPolicy.CANCEL_OTHER: "cancel_other",
    ScheduleOverlapPolicy.BUFFER_ALL: "buffer_all",
    ScheduleOverlapPolicy.TERMINATE_OTHER: "terminate_other",
}

LAUNCHER_TYPE = "ScheduledRunWorkflow"
RECENT_RUNS = 10
NEXT_RUN_TIMES = 5
# One backfill starts at most this many runs (a typo in a range must not start millions).
# Below the 1,000 times Temporal lists at most (ListScheduleMatchingTimes stops there): a
# longer list is then known to be too long.
MAX_BACKFILL = 500
# What a fire's prepared run may weigh, encoded as Temporal gets it (the launcher's activity
# answers it, the launcher starts its run with it): Temporal's default payload limit (2 MiB),
# less room for the rest of the message.
MAX_RUN_INPUT_BYTES = 2 * 1024 * 1024 - 64 * 1024
# How long `trigger` waits for the run it started to exist before answering 503.
TRIGGER_WAIT = timedelta(seconds=10)
_POLL_S = 0.1
# Temporal out of reach (runs/temporal_errors.py answers those 503).
_UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
# Schedules of a listed page read from Temporal at once.
_READ_CONCURRENCY = 10


@dataclass(frozen=True)
class RecentRun:
    """A fire of the schedule: the run it started, or (`run_id` None, status `error`) why it
    could not start one."""

    run_id: str | None
    scheduled_at: datetime | None
    status: str
    error: FireError | None = None


@dataclass(frozen=True)
class ScheduleView:
    record: ScheduleRecord
    spec: TimeSpec
    overlap: OverlapShown
    paused: bool
    next_run_times: list[datetime]
    recent_runs: list[RecentRun]


# Files some tzdata directories hold beside the zones: `localtime` is the host's own zone
# (Temporal would read it on its server, whichever zone that is), not an IANA name.
def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class ScheduleService:
    def __init__(
        self,
        *,
        client: Client,
        schedules: ScheduleRepository,
        runs: RunService,
        task_queue: str,
    ) -> None:
        self._client = client
        self._schedules = schedules
        self._runs = runs
        self._task_queue = task_queue

    @property
    def reachability(self) -> Reachability | None:
        return self._runs.reachability

    # ------------------------------------------------------------------ create

    @needs_temporal
    async def create(
        self,
        org: str,
        workflow_id: str,
        *,
        spec: TimeSpec,
        inputs: dict[str, Any],
        config_source: ConfigSource,
        overlap: Overlap,
        paused: bool,
        note: str,
    ) -> ScheduleView:
        """A new schedule of the workflow. Checked as a run start would be now (the workflow,
        its published snapshot, the inputs, the secrets), then its spec."""
        prepared = await self._check_start(org, workflow_id, inputs, config_source)
        problems = spec_problems(spec)
        if problems:
            raise invalid("invalid_schedule_spec", _summary(problems), problems)
        schedule_id = ids.new_id(SCHEDULE_PREFIX)
        name = prepared.workflow.name_at_run_time

        async def make() -> ScheduleRecord:
            record = await self._schedules.add(
                org,
                schedule_id,
                workflow_id=workflow_id,
                spec=spec.stored(),
                inputs=inputs,
                config_source=config_source,
                note=note,
            )
            attributes = TypedSearchAttributes(
                [
                    SearchAttributePair(search_attributes.ORGANIZATION, org),
                    SearchAttributePair(search_attributes.WORKFLOW_ID, workflow_id),
                    SearchAttributePair(search_attributes.SCHEDULE_ID, schedule_id),
                ]
            )
            try:
                await self._client.create_schedule(
                    schedule_id,
                    Schedule(
                        action=ScheduleActionStartWorkflow(
                            ScheduledRunWorkflow.run,
                            LaunchInput(organization_id=org, schedule_id=schedule_id),
                            id=schedule_id,
                            task_queue=self._task_queue,
                            typed_search_attributes=attributes,
                            static_summary=f"Schedule {schedule_id}: a run of {name} "
                            f"({workflow_id}) for {org}",
                        ),
                        spec=spec.temporal(),
                        policy=SchedulePolicy(overlap=OVERLAP_POLICIES[overlap]),
                        state=ScheduleState(paused=paused, note=note or None),
                    ),
                    memo={
                        "organization_id": org,
                        "workflow_id": workflow_id,
                        "workflow_name": name,
                    },
                    search_attributes=attributes,
                )
            except BaseException as err:
                # Nothing half-made: the row goes with the refused schedule.
                await self._schedules.delete(org, schedule_id)
                refused = refused_spec(err) if isinstance(err, RPCError) else None
                if refused is not None:
                    raise refused from None
                raise
            return record

        # Made whole even when the request is cut meanwhile (its client gone): cut between
        # Temporal's create and the row's removal, it left a Temporal Schedule without a row,
        # firing launchers that fail for ever, which no API call shows or deletes.
        record = await _carried_through(make())
        return await self._view(record)

    async def _check_start(
        self, org: str, workflow_id: str, inputs: dict[str, Any], config_source: ConfigSource
    ) -> RunInput:
        """Prepare (and drop) a run as a fire now would: the same errors as a start."""
        run_id = ids.new_id(ids.RUN)
        prepared = await self._runs.prepare_start(
            org,
            workflow_id,
            requested_inputs(inputs),
            config_source=config_source,
            trigger=Trigger(type="schedule"),
            run_id=run_id,
        )
        # A start learns it from Temporal's refusal; a fire would learn it only when its
        # prepared run could not be handed over (every fire failing after its retries).
        converter = self._client.data_converter.with_context(
            WorkflowSerializationContext(namespace=self._client.namespace, workflow_id=run_id)
        )
        payloads = await converter.encode([prepared])
        if sum(payload.ByteSize() for payload in payloads) > MAX_RUN_INPUT_BYTES:
            raise TooLarge(
                "run_too_large",
                "The run's input (its definition and inputs) is larger than Temporal accepts "
                "in one payload (about 2 MB, compressed). Split the workflow, or pass large "
                "data as documents.",
                {"limit_bytes": MAX_RUN_INPUT_BYTES},
            )
        return prepared

    # ------------------------------------------------------------------ read

    @needs_temporal
    async def get(self, org: str, schedule_id: str) -> ScheduleView:
        return await self._view(await self._record(org, schedule_id))

    @needs_temporal
    async def list_page(
        self,
        org: str,
        *,
        workflow_id: str | None = None,
        limit: int,
        cursor: str | None,
        order: Order = "desc",
    ) -> Page[ScheduleView]:
        """By creation time; a schedule whose Temporal Schedule is gone is left out."""
        page = await self._schedules.list(
            org, workflow_id=workflow_id, limit=limit, cursor=cursor, order=order
        )
        semaphore = asyncio.Semaphore(_READ_CONCURRENCY)

        async def read(record: ScheduleRecord) -> ScheduleView | None:
            async with semaphore:
                try:
                    return await self._view(record)
                except NotFound:
                    return None

        views = await asyncio.gather(*(read(record) for record in page.items))
        return Page([view for view in views if view is not None], page.next_cursor)

    async def _record(self, org: str, schedule_id: str) -> ScheduleRecord:
        record = await self._schedules.get(org, schedule_id)
        if record is None:
            raise not_found("schedule", schedule_id)
        return record

    def _handle(self, schedule_id: str) -> ScheduleHandle:
        return self._client.get_schedule_handle(schedule_id)

    async def _describe(self, record: ScheduleRecord) -> ScheduleDescription:
        try:
            return await self._handle(record.id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise not_found("schedule", record.id) from None
            raise

    @asynccontextmanager
    async def _on_schedule(self, record: ScheduleRecord) -> AsyncIterator[None]:
        """A call on the Temporal Schedule: when it fails because the schedule was deleted
        meanwhile (a DELETE at the same time), the answer is the one a moment later would be,
        the schedule is missing, not Temporal's error about it (a NOT_FOUND that read as
        `run_not_found`, or a CANCELLED call that answered 502)."""
        try:
            yield
        except RPCError as err:
            if err.status in _UNREACHABLE or not await self._deleted(record):
                raise
            raise not_found("schedule", record.id) from None

    async def _deleted(self, record: ScheduleRecord) -> bool:
        if await self._schedules.get(record.organization_id, record.id) is None:
            return True
        try:
            await self._handle(record.id).describe()
        except RPCError as err:
            return err.status == RPCStatusCode.NOT_FOUND
        return False

    async def _view(
        self, record: ScheduleRecord, description: ScheduleDescription | None = None
    ) -> ScheduleView:
        description = description or await self._describe(record)
        schedule = description.schedule
        return ScheduleView(
            record=record,
            spec=TimeSpec.of_stored(record.spec),
            # (Unspecified is Temporal's default: skip.)
            overlap=_OVERLAP_NAMES.get(schedule.policy.overlap, "skip"),
            paused=schedule.state.paused,
            next_run_times=list(description.info.next_action_times[:NEXT_RUN_TIMES]),
            recent_runs=await self._recent_runs(record),
        )

    async def _recent_runs(self, record: ScheduleRecord) -> list[RecentRun]:
        """The newest runs the schedule started and the fires that could not start one."""
        page, failed = await asyncio.gather(
            self._runs.list_runs(
                record.organization_id,
                RunFilter(schedule_id=record.id),
                limit=RECENT_RUNS,
                cursor=None,
            ),
            self._failed_fires(record),
        )
        runs = [_recent(view) for view in page.views]
        entries = sorted(
            [*runs, *failed],
            key=lambda entry: entry.scheduled_at or datetime.min.replace(tzinfo=UTC),
            reverse=True,
        )
        return entries[:RECENT_RUNS]

    async def _failed_fires(self, record: ScheduleRecord) -> list[RecentRun]:
        query = (
            f"WorkflowType = '{LAUNCHER_TYPE}' AND "
            f"{search_attributes.ORGANIZATION.name} = '{record.organization_id}' AND "
            f"{search_attributes.SCHEDULE_ID.name} = '{record.id}' AND "
            "ExecutionStatus = 'Failed'"
        )
        failed: list[RecentRun] = []
        async for execution in self._client.list_workflows(query, limit=RECENT_RUNS):
            error = await self._fire_error(execution.id, execution.run_id)
            failed.append(
                RecentRun(
                    run_id=None,
                    scheduled_at=execution.typed_search_attributes.get(SCHEDULED_START_TIME)
                    or execution.start_time,
                    status="error",
                    error=error,
                )
            )
        return failed

    async def _fire_error(self, launcher_id: str, launcher_run_id: str | None) -> FireError:
        """Why a failed launcher started no run: the domain error it carries."""
        handle = self._client.get_workflow_handle(launcher_id, run_id=launcher_run_id)
        async for event in handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
        ):
            attributes = event.workflow_execution_failed_event_attributes
            if not event.HasField("workflow_execution_failed_event_attributes"):
                break
            failure = await self._client.data_converter.decode_failure(attributes.failure)
            if isinstance(failure, ApplicationError) and failure.type == FIRE_FAILED:
                try:
                    return FireError.model_validate(failure.details[0])
                except (IndexError, ValueError):
                    pass
            return FireError(kind="Failed", code="fire_failed", message=str(failure))
        return FireError(
            kind="Failed", code="fire_failed", message="The fire failed; see the Temporal UI."
        )

    # ------------------------------------------------------------------ change

    @needs_temporal
    async def update(
        self,
        org: str,
        schedule_id: str,
        *,
        spec: TimeSpec | None = None,
        inputs: dict[str, Any] | None = None,
        overlap: Overlap | None = None,
        paused: bool | None = None,
        note: str | None = None,
    ) -> ScheduleView:
        """Change what is given. New inputs are checked against the workflow as a start would
        check them now; a new spec replaces the whole spec."""
        record = await self._record(org, schedule_id)
        await self._describe(record)  # (gone from Temporal: missing)
        if inputs is not None:
            source: ConfigSource = "draft" if record.config_source == "draft" else "published"
            await self._check_start(org, record.workflow_id, inputs, source)
        if spec is not None:
            problems = spec_problems(spec)
            if problems:
                raise invalid("invalid_schedule_spec", _summary(problems), problems)

        def change(current: ScheduleUpdateInput) -> ScheduleUpdate | None:
            schedule = current.description.schedule
            if spec is not None:
                schedule.spec = spec.temporal()
            if overlap is not None:
                schedule.policy.overlap = OVERLAP_POLICIES[overlap]
            if paused is not None:
                schedule.state.paused = paused
            if note is not None:
                schedule.state.note = note or None
            return ScheduleUpdate(schedule=schedule)

        async def update_temporal(_: ScheduleRecord) -> None:
            if spec is None and overlap is None and paused is None and note is None:
                return
            try:
                async with self._on_schedule(record):
                    await self._handle(schedule_id).update(change)
            except RPCError as err:
                refused = refused_spec(err)
                if refused is not None:
                    raise refused from None
                raise

        # The Temporal Schedule is changed with the row held: Temporal drops, silently, an
        # update made from a description another update has since changed (its conflict
        # token), so two PATCHes at once would otherwise both answer 200 with one of them
        # lost there (and the row showing a spec that is not the one that fires).
        # (Carried through when the request is cut meanwhile, as a create is: cut after the
        # Temporal update, the row would not have followed it.)
        updated = await _carried_through(
            self._schedules.update(
                org,
                schedule_id,
                spec=spec.stored() if spec is not None else None,
                inputs=inputs,
                note=note,
                during=update_temporal,
            )
        )
        if updated is None:
            raise not_found("schedule", schedule_id)
        return await self._view(updated)

    @needs_temporal
    async def delete(self, org: str, schedule_id: str) -> None:
        """The Temporal Schedule, then the row. Runs it started stay; so do launchers running
        (each ends with its run)."""
        record = await self._record(org, schedule_id)
        try:
            async with self._on_schedule(record):
                await self._handle(record.id).delete()
        except NotFound:
            pass  # (gone from Temporal already: remove the row too, if it is still there)
        if not await self._schedules.delete(org, schedule_id):
            # Deleted meanwhile (two DELETEs at once): the second answers as a later one does.
            raise not_found("schedule", schedule_id)

    # ------------------------------------------------------------------ fire by hand

    @needs_temporal
    async def trigger(self, org: str, schedule_id: str) -> RunView:
        """Start one run now through the Temporal Schedule (never skipped: overlap allow_all
        for this one), and answer it once it exists. Unavailable when it does not within
        TRIGGER_WAIT; the fire's own error when it could not start a run."""
        record = await self._record(org, schedule_id)
        handle = self._handle(record.id)
        before = _launchers(await self._describe(record))
        await _next_second_after(max(before.values(), default=None))
        async with self._on_schedule(record):
            await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
        deadline = time.monotonic() + TRIGGER_WAIT.total_seconds()
        launcher: tuple[str, str] | None = None
        while launcher is None:
            started = _launchers(await self._describe(record))
            new = [key for key in started if key not in before]
            if new:
                # The newest: a fire due at the same moment may have started beside it.
                launcher = max(new, key=lambda key: started[key])
                break
            _check_deadline(deadline)
            await asyncio.sleep(_POLL_S)
        run_id = scheduled_run_id(*launcher)
        while True:
            try:
                return await self._runs.get(org, run_id)
            except NotFound:
                pass
            await self._raise_if_fire_failed(*launcher)
            _check_deadline(deadline)
            await asyncio.sleep(_POLL_S)

    async def _raise_if_fire_failed(self, launcher_id: str, launcher_run_id: str) -> None:
        handle = self._client.get_workflow_handle(launcher_id, run_id=launcher_run_id)
        description = await handle.describe()
        if description.status != WorkflowExecutionStatus.FAILED:
            return
        error = await self._fire_error(launcher_id, launcher_run_id)
        kinds: dict[str, type[RunlaneError]] = {
            "NotFound": NotFound,
            "Conflict": Conflict,
            "InvalidInput": InvalidInput,
            "TooLarge": TooLarge,
        }
        raise kinds.get(error.kind, Conflict)(error.code, error.message, error.details)

    @needs_temporal
    async def backfill(
        self, org: str, schedule_id: str, *, start_at: datetime, end_at: datetime
    ) -> int:
        """Runs for the times the schedule matches in (start_at, end_at], started now as if
        each had passed (overlap allow_all: none is skipped); how many."""
        record = await self._record(org, schedule_id)
        await self._describe(record)
        problems = [
            body_problem([key], OUT_OF_RANGE)
            for key, moment in (("start_at", start_at), ("end_at", end_at))
            if not representable(moment)
        ]
        if not problems and end_at <= start_at:
            problems.append(body_problem(["end_at"], "end_at must be later than start_at"))
        if not problems and end_at > datetime.now(UTC):
            problems.append(body_problem(["end_at"], "a backfill covers past times only"))
        if problems:
            raise invalid("invalid_backfill", _summary(problems), problems)
        async with self._on_schedule(record):
            matching = await self._client.workflow_service.list_schedule_matching_times(
                ListScheduleMatchingTimesRequest(
                    namespace=self._client.namespace,
                    schedule_id=record.id,
                    start_time=_timestamp(start_at),
                    end_time=_timestamp(end_at),
                )
            )
        count = len(matching.start_time)
        if count > MAX_BACKFILL:
            held = f"{count} or more" if count >= 1000 else str(count)
            message = (
                f"The range holds {held} scheduled times; one backfill starts at most "
                f"{MAX_BACKFILL}. Split it."
            )
            raise invalid("backfill_too_large", message, [body_problem(["start_at"], message)])
        if count:
            async with self._on_schedule(record):
                await self._handle(record.id).backfill(
                    ScheduleBackfill(
                        start_at=start_at, end_at=end_at, overlap=ScheduleOverlapPolicy.ALLOW_ALL
                    )
                )
        return count


async def _carried_through(change: Coroutine[Any, Any, T]) -> T:
    """`change` run to its end even when the request awaiting it is cancelled (its client
    gone): the row and the Temporal Schedule are changed together or not at all. Its outcome
    is logged when nobody is left to receive it."""
    task = asyncio.ensure_future(change)

    def unheard(done: asyncio.Future[T]) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.warning("schedule change ended after its request: %s", done.exception())

    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(unheard)
        raise


def _recent(view: RunView) -> RecentRun:
    state = view.state
    return RecentRun(
        run_id=state.run_id,
        scheduled_at=state.trigger.scheduled_at or state.timing.created_at,
        status=state.status,
    )


def _launchers(description: ScheduleDescription) -> dict[tuple[str, str], datetime]:
    """The launcher executions the schedule started (the last ten), by when they were due."""
    return {
        (action.action.workflow_id, action.action.first_execution_run_id): action.scheduled_at
        for action in description.info.recent_actions
        if isinstance(action.action, ScheduleActionExecutionStartWorkflow)
    }


async def _next_second_after(due: datetime | None) -> None:
    """Temporal names a fire's workflow by the second it is due: a trigger in the second of the
    schedule's latest fire would take that fire's workflow id, and Temporal would drop it (the
    caller then waited TRIGGER_WAIT for a run that never came). Waits into the next second."""
    if due is None:
        return
    now = datetime.now(UTC)
    if due.replace(microsecond=0) >= now.replace(microsecond=0):
        await asyncio.sleep(1.01 - now.microsecond / 1_000_000)


def _check_deadline(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise Unavailable(
            "schedule_trigger_pending",
            "The schedule was triggered but its run has not appeared yet; list its runs "
            "with ?schedule_id= in a moment.",
        )


def _summary(problems: list[dict[str, Any]]) -> str:
    shown = "; ".join(
        f"{'.'.join(str(p) for p in problem['loc'][1:])}: {problem['message']}"
        for problem in problems[:5]
    )
    return f"Invalid schedule: {shown}"
