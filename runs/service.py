"""The run service: every way a run is started, read, listed, cancelled, recovered or reviewed.

The one place the run lifecycle lives, with no HTTP in it: the API's routes, and later the CLI,
bulk operations, schedules and webhooks, call these methods and present what they return or
raise (`runlane.errors`). Every command follows one idempotency protocol (runs/commands.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.registry import NodeRegistry
from runlane import ids
from runlane.errors import Conflict, TooLarge
from runs.commands import Command, CommandLog, Steps
from runs.inputs import InputResolver, RequestedInputs
from runs.reader import RunFilter, RunPage, RunReader, RunView
from runs.reset import reset_run, task_boundaries
from runs.retry_plan import RETRYABLE_STATUSES, RetryFrom, RetryPlan, plan_retry, retry_request
from runs.starter import ConfigSource, PublishedDefinitions, RunStarter, definition_for
from runs.temporal_errors import needs_temporal
from store.files import FileRepository
from store.idempotency import IdempotencyRepository
from store.workflows import WorkflowRepository
from workflows.models import (
    TERMINAL_STATUSES,
    PendingReview,
    ReviewDecision,
    RunInput,
    RunInputs,
    Trigger,
    initial_state,
)
from workflows.run_workflow import RunWorkflow

# How long a replayed retry or decision waits for the first call's effect to show before
# concluding that the first call was lost before it (and applying it itself).
FIRST_CALL_GRACE_S = 5.0


# Executions that closed otherwise than cancelled, by the run status they stand for.
_ENDED_OTHERWISE = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "error",
    WorkflowExecutionStatus.TERMINATED: "error",
    WorkflowExecutionStatus.TIMED_OUT: "error",
}


# Temporal refused the call outright (nothing was applied): a size limit, a closed execution.
_REFUSED = (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.NOT_FOUND)


def _over_payload_limit(err: RPCError) -> bool:
    return err.status == RPCStatusCode.INVALID_ARGUMENT and "size exceeds limit" in err.message


@dataclass(frozen=True)
class Outcome:
    """The run a command produced or acted on; `replayed` when an earlier identical command
    (same `command_id`) already did it and nothing new happened."""

    view: RunView
    replayed: bool


@dataclass(frozen=True)
class RetrySpec:
    from_: RetryFrom = "failure_point"
    # From the start only: inputs overriding the run's own.
    overrides: RequestedInputs | None = None


@dataclass(frozen=True)
class WaitingReview:
    view: RunView
    review: PendingReview


class RunService:
    def __init__(
        self,
        *,
        client: Client,
        registry: NodeRegistry,
        workflows: WorkflowRepository,
        files: FileRepository,
        idempotency: IdempotencyRepository,
        task_queue: str,
        max_upload_bytes: int,
        published: PublishedDefinitions | None = None,
    ) -> None:
        """`published` caches published definitions; share one per process."""
        self._client = client
        self._published = published or PublishedDefinitions()
        self._registry = registry
        self._workflows = workflows
        self._reader = RunReader(client)
        self._starter = RunStarter(client, registry, task_queue)
        self._inputs = InputResolver(files, max_upload_bytes)
        self._commands = CommandLog(idempotency)

    # ------------------------------------------------------------------ reading

    @needs_temporal
    async def get(self, org: str, run_id: str) -> RunView:
        """The run, or NotFound when it is missing or belongs to another organization."""
        return await self._reader.get(org, run_id)

    @needs_temporal
    async def derived_run_ids(self, org: str, run_id: str) -> list[str]:
        """Runs restarted or rerun from this one."""
        return await self._reader.derived_run_ids(org, run_id)

    @needs_temporal
    async def list_runs(
        self, org: str, run_filter: RunFilter, *, limit: int, cursor: str | None
    ) -> RunPage:
        """Newest first by creation time, whatever each run's status."""
        return await self._reader.list_page(org, run_filter, limit=limit, cursor=cursor)

    @needs_temporal
    async def pending_reviews(
        self, org: str, *, limit: int, cursor: str | None
    ) -> tuple[list[WaitingReview], str | None]:
        """The organization's waiting reviews across runs; `limit` counts runs, each of which
        may wait on several nodes."""
        page = await self.list_runs(
            org, RunFilter(status="waiting_for_human"), limit=limit, cursor=cursor
        )
        reviews = [
            WaitingReview(view, review)
            for view in page.views
            for review in view.state.pending_reviews
        ]
        return reviews, page.next_cursor

    # ------------------------------------------------------------------ new runs

    @needs_temporal
    async def start(
        self,
        org: str,
        workflow_id: str,
        requested: RequestedInputs,
        *,
        config_source: ConfigSource = "published",
        command_id: str | None = None,
        body: dict[str, Any] | None = None,
        trigger: Trigger | None = None,
    ) -> Outcome:
        """A new run of the workflow's published (or draft) definition. `body` is what makes
        two commands with one `command_id` the same request (defaults to nothing)."""
        command = Command(org, command_id, "start", workflow_id, body or {})

        async def prepare(run_id: str) -> RunInput:
            definition, ref = await definition_for(
                org, workflow_id, config_source, self._workflows, self._registry, self._published
            )
            inputs = await self._inputs.resolve(org, definition, requested)
            return self._starter.run_input(
                run_id=run_id,
                org=org,
                workflow=ref,
                definition=definition,
                inputs=inputs,
                trigger=trigger or Trigger(),
            )

        return await self._launch(command, prepare)

    @needs_temporal
    async def restart(
        self,
        org: str,
        run_id: str,
        *,
        config_source: ConfigSource = "published",
        command_id: str | None = None,
    ) -> Outcome:
        """A new run with the source's inputs and the workflow's current definition."""
        command = Command(org, command_id, "restart", run_id, {"config_source": config_source})
        return await self._derive(org, run_id, command, config_source)

    @needs_temporal
    async def rerun(self, org: str, run_id: str, *, command_id: str | None = None) -> Outcome:
        """A new run with the source's inputs and exactly the snapshot the source ran."""
        command = Command(org, command_id, "rerun", run_id, {})
        return await self._derive(org, run_id, command, None)

    async def _derive(
        self, org: str, run_id: str, command: Command, config_source: ConfigSource | None
    ) -> Outcome:
        kind: Literal["restart", "rerun"] = "restart" if config_source else "rerun"

        async def prepare(new_run_id: str) -> RunInput:
            source = await self._reader.get(org, run_id)
            if source.state.status not in TERMINAL_STATUSES:
                raise Conflict(
                    "run_not_ended",
                    f"Run {run_id} is {source.state.status}; only ended runs can be {kind}ed "
                    "(cancel it first, or wait for it to end).",
                )
            source_input = await self._reader.run_input(run_id)
            if config_source is None:
                definition, ref = source_input.definition, source_input.workflow
                inputs: RunInputs = source.state.inputs
            else:
                definition, ref = await definition_for(
                    org,
                    source_input.workflow.workflow_id,
                    config_source,
                    self._workflows,
                    self._registry,
                    self._published,
                )
                # The current definition may name other start nodes: checked like a start.
                inputs = await self._inputs.resolve(
                    org, definition, RequestedInputs.of_run(source.state.inputs)
                )
            return self._starter.run_input(
                run_id=new_run_id,
                org=org,
                workflow=ref,
                definition=definition,
                inputs=inputs,
                trigger=Trigger(type=kind, source_run_id=run_id),
            )

        return await self._launch(command, prepare)

    async def _launch(self, command: Command, prepare_input: Any) -> Outcome:
        """Start, restart and rerun. With a command_id the run id is derived from it, so
        concurrent replays all start, or attach to, the same workflow id (Temporal's
        USE_EXISTING conflict policy)."""
        org = command.organization_id
        run_id = (
            ids.derived_id(ids.RUN, org, command.command_id)
            if command.command_id
            else ids.new_id(ids.RUN)
        )
        started: list[RunView] = []

        async def took_effect(result_id: str) -> bool:
            return await self._reader.exists(org, result_id)

        async def prepare() -> RunInput:
            run_input: RunInput = await prepare_input(run_id)
            return run_input

        async def perform(run_input: RunInput, _: str) -> None:
            try:
                temporal_run_id = await self._starter.start(
                    run_input, attach_to_existing=command.command_id is not None
                )
            except WorkflowAlreadyStartedError:
                if command.command_id is None:
                    raise Conflict("run_exists", "A run with this id already exists.") from None
                return  # a concurrent identical call started it, and it already ended
            started.append(RunView(initial_state(run_input), temporal_run_id))

        executed = await self._commands.execute(
            command, Steps(run_id, took_effect, prepare, perform)
        )
        if started and not executed.replayed:
            return Outcome(started[0], replayed=False)
        return Outcome(await self._reader.get(org, executed.result_id), replayed=True)

    # ------------------------------------------------------------------ cancel

    @needs_temporal
    async def cancel(self, org: str, run_id: str, *, command_id: str | None = None) -> Outcome:
        """Ask the run to stop; Conflict when it already ended."""
        view = await self._reader.get(org, run_id)
        command = Command(org, command_id, "cancel", run_id, {})

        async def took_effect(_: str) -> bool:
            # Cancelled, not merely ended: a cancel refused because the run ended otherwise
            # never took effect, and its replay is refused the same way.
            return view.state.status == "cancelled"

        async def prepare() -> None:
            if view.state.status in TERMINAL_STATUSES:
                raise Conflict("run_ended", f"Run {run_id} already ended ({view.state.status}).")

        async def perform(_: None, __: str) -> None:
            handle = self._client.get_workflow_handle(run_id)
            await handle.cancel()
            # Temporal accepts the cancel of an execution that has already closed, and does
            # nothing: a run that ended otherwise since it was read was too late to cancel.
            status = (await handle.describe()).status
            if status in _ENDED_OTHERWISE:
                raise Conflict(
                    "run_ended", f"Run {run_id} already ended ({_ENDED_OTHERWISE[status]})."
                )

        executed = await self._commands.execute(
            command, Steps(run_id, took_effect, prepare, perform)
        )
        return Outcome(view, executed.replayed)

    # ------------------------------------------------------------------ reviews

    @needs_temporal
    async def review(
        self, org: str, run_id: str, decision: ReviewDecision, *, command_id: str | None = None
    ) -> Outcome:
        """A reviewer's decision for a waiting human_review node; Conflict when that node is
        not waiting (or was just decided by someone else)."""
        view = await self._reader.get(org, run_id)
        node_id = decision.node_id
        command = Command(
            org,
            command_id,
            "review",
            f"{run_id}/{node_id}",
            decision.model_dump(mode="json", exclude={"node_id"}),
        )

        def slot(attempt: int) -> str:
            return f"review:{run_id}:{node_id}:{attempt}"

        async def took_effect(_: str) -> bool:
            """A replay (same command_id): whether this command's decision was taken and
            reached the run. Never decided again on the strength of a stale read: the first
            call may be in flight (its signal not yet seen), or have lost to another
            reviewer's decision (then it never took effect, and the replay is refused too)."""
            assert command_id is not None
            current = view
            deadline = time.monotonic() + FIRST_CALL_GRACE_S
            while True:
                attempt = current.state.attempt
                holder = await self._commands.slot_holder(org, slot=slot(attempt))
                if holder == command_id and node_id not in current.state.waiting_for_node_ids:
                    return True
                if holder is not None and holder != command_id:
                    return False  # another decision won this attempt's slot
                if holder is None and current.state.status in TERMINAL_STATUSES:
                    return False  # nothing was decided, and nothing will be
                for earlier in range(attempt - 1, 0, -1):  # taken before a retry
                    if await self._commands.slot_holder(org, slot=slot(earlier)) == command_id:
                        return True
                if time.monotonic() > deadline:
                    return False  # the first call was lost before its signal: decide again
                await asyncio.sleep(0.1)
                current = await self._reader.get(org, run_id)

        async def prepare() -> None:
            if node_id not in view.state.waiting_for_node_ids:
                raise Conflict(
                    "review_not_waiting",
                    f"Node '{node_id}' of run {run_id} is not waiting for a review (already "
                    "decided, not reached yet, or not a human_review node).",
                )

        async def perform(_: None, __: str) -> None:
            # Exactly one decision per waiting node and attempt, even when several reviewers
            # click at once. (A retry that runs the node again waits under a new attempt, so
            # it takes a new decision.) A command_id lets its replay take the slot again.
            taken = slot(view.state.attempt)
            holder = command_id or uuid.uuid4().hex
            decided = await self._commands.take_slot(
                org, slot=taken, target=f"{run_id}/{node_id}", holder=holder
            )
            if not decided:
                raise Conflict(
                    "review_not_waiting",
                    f"Node '{node_id}' of run {run_id} is not waiting for a review: it was "
                    "just decided.",
                )
            # The signal operators can also send from the Temporal UI: ordinary workflow
            # tasks, so a retry can later reset to any point after the decision.
            try:
                await self._client.get_workflow_handle(run_id).signal(RunWorkflow.review, decision)
            except RPCError as err:
                if err.status not in _REFUSED:
                    raise  # outcome unknown: the slot stays, for this command's replay
                # Refused outright, so nothing was decided: the node may take a decision
                # again (a slot kept here would refuse every later one as "just decided").
                await self._commands.release_slot(org, slot=taken, holder=holder)
                if err.status == RPCStatusCode.NOT_FOUND:
                    # "workflow execution already completed": the run ended (cancelled, timed
                    # out) since it was read. It exists; the node just no longer waits.
                    raise Conflict(
                        "review_not_waiting",
                        f"Node '{node_id}' of run {run_id} is not waiting for a review: the run "
                        "has ended.",
                    ) from None
                if _over_payload_limit(err):
                    raise TooLarge(
                        "decision_too_large",
                        "The decision (its data, comment and reviewer) is larger than Temporal "
                        "accepts in one signal (about 2 MB, compressed). Keep large data in a "
                        "document and put its file id in data.",
                    ) from None
                raise

        executed = await self._commands.execute(
            command, Steps(run_id, took_effect, prepare, perform)
        )
        return Outcome(await self._reader.get(org, run_id), executed.replayed)

    # ------------------------------------------------------------------ retry

    @needs_temporal
    async def retry_plan(self, org: str, run_id: str, from_: RetryFrom) -> RetryPlan:
        """What a retry would reuse, run again and repeat; changes nothing."""
        plan, _ = await self._plan(await self._reader.get(org, run_id), from_)
        return plan

    async def _plan(self, view: RunView, from_: RetryFrom) -> tuple[RetryPlan, RunInput]:
        run_input = await self._reader.run_input(view.state.run_id)
        plans = {node_id: plan.execution for node_id, plan in run_input.plans.items()}
        boundaries = await task_boundaries(self._client, view.state.run_id, view.temporal_run_id)
        return plan_retry(view.state, plans, self._registry, from_, boundaries), run_input

    @needs_temporal
    async def retry(
        self,
        org: str,
        run_id: str,
        spec: RetrySpec,
        *,
        command_id: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> Outcome:
        """The same run again: reset to its failure point, or from the start with overrides."""
        command = Command(org, command_id, "retry", run_id, body or {"from": spec.from_})
        view = await self._reader.get(org, run_id)
        request_id = ids.derived_id("retry", org, command_id) if command_id else uuid.uuid4().hex

        async def took_effect(_: str) -> bool:
            return await self._first_retry(org, run_id, request_id, view) is not None

        async def prepare() -> tuple[RetryPlan, RunInput, RunInputs | None]:
            plan, run_input = await self._plan(view, spec.from_)
            if not plan.allowed:
                raise Conflict("retry_not_allowed", plan.reason or "This run cannot be retried.")
            inputs = None
            if spec.from_ == "start":  # validated like a start, before anything is recorded
                requested = RequestedInputs.of_run(view.state.inputs)
                if spec.overrides is not None:
                    requested = requested.overridden_by(spec.overrides)
                inputs = await self._inputs.resolve(org, run_input.definition, requested)
            return plan, run_input, inputs

        async def perform(prepared: tuple[RetryPlan, RunInput, RunInputs | None], _: str) -> None:
            plan, run_input, inputs = prepared
            # Exactly one retry per attempt: Temporal does not deduplicate resets, so two
            # different concurrent retries would otherwise both reset the run.
            taken = f"retry:{run_id}:{view.state.attempt}"
            if not await self._commands.take_slot(
                org, slot=taken, target=run_id, holder=request_id
            ):
                raise Conflict(
                    "retry_in_progress",
                    f"Run {run_id} is already being retried (attempt {view.state.attempt + 1}); "
                    "read the run to follow it.",
                )
            if inputs is not None:  # from the start: a fresh execution under the same run id
                fresh = run_input.model_copy(
                    update={"inputs": inputs, "retry": retry_request(view.state, plan, request_id)}
                )
                try:
                    await self._starter.start(fresh, reuse_ended_id=True)
                except RPCError as err:
                    # Refused outright (the inputs over Temporal's payload limit): nothing
                    # started, so the run may be retried again; a slot kept here would
                    # answer every later retry "already being retried".
                    if err.status in _REFUSED:
                        await self._commands.release_slot(org, slot=taken, holder=request_id)
                    raise
            else:
                try:
                    await reset_run(
                        self._client,
                        run_id=run_id,
                        temporal_run_id=view.temporal_run_id,
                        state=view.state,
                        plan=plan,
                        request_id=request_id,
                    )
                except Conflict as impossible:
                    refusal = impossible.__cause__
                    if isinstance(refusal, RPCError) and refusal.status in _REFUSED:
                        # The reset itself was refused: nothing was reset.
                        await self._commands.release_slot(org, slot=taken, holder=request_id)
                    raise

        executed = await self._commands.execute(
            command, Steps(run_id, took_effect, prepare, perform)
        )
        return Outcome(await self._reader.get(org, run_id), executed.replayed)

    async def _first_retry(
        self, org: str, run_id: str, request_id: str, view: RunView
    ) -> RunView | None:
        """For a replayed retry: the run once the first call's retry shows (its attempt, or
        the run no longer ended), waiting a little for a first call still in flight; None when
        it never shows, i.e. the first call was lost before its reset."""
        deadline = time.monotonic() + FIRST_CALL_GRACE_S
        while True:
            if view.state.status not in RETRYABLE_STATUSES or any(
                a.request_id == request_id for a in view.state.attempts
            ):
                return view
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.1)
            view = await self._reader.get(org, run_id)
