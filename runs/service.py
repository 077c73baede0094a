"""The run service: every way a run is started, read, listed, cancelled, recovered or reviewed.

The one place the run lifecycle lives, with no HTTP in it: the API's routes, and later the CLI,
bulk operations, schedules and webhooks, call these methods and present what they return or
raise (`runlane.errors`). Every command follows one idempotency protocol (runs/commands.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.maps import ItemOutcome, MapItemsQuery
from activities.registry import NodeRegistry
from runlane import ids
from runlane.errors import Conflict, NotFound, Unavailable, invalid
from runlane.paging import Order
from runs.commands import Command, CommandLog, Steps
from runs.compare import Comparison, Comparisons
from runs.dry_run import DryRunNode, DryRuns
from runs.inputs import InputResolver, RequestedInputs
from runs.models import EventSubscriptions, Outcome, RetrySpec, WaitingReview
from runs.reader import (
    CANCELLED_BY_TERMINATION,
    QUERY_TIMEOUT,
    RunFilter,
    RunPage,
    RunReader,
    RunView,
    workflow_task_failing,
)
from runs.retries import Retries
from runs.retry_plan import RetryFrom, RetryPlan
from runs.reviews import ReviewActor, Reviews
from runs.starter import (
    ConfigSource,
    PublishedDefinitions,
    RunStarter,
    check_secrets,
    definition_for,
)
from runs.subworkflows import SubworkflowTargets
from runs.temporal_errors import Reachability, needs_temporal
from runs.usage import RunUsage, StepLedger, UsageWindow
from store.decisions import DecisionRepository
from store.files import FileRepository
from store.idempotency import IdempotencyRepository
from store.secrets import SecretRepository
from store.usage import Usage, UsageRepository
from store.workflows import WorkflowRepository
from workflows.maps import MapWorkflow
from workflows.models import (
    TERMINAL_STATUSES,
    ReviewDecision,
    RunInput,
    RunInputs,
    StepState,
    Trigger,
    initial_state,
)

# Executions that closed otherwise than cancelled, by the run status they stand for.
_ENDED_OTHERWISE = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "error",
    WorkflowExecutionStatus.TERMINATED: "error",
    WorkflowExecutionStatus.TIMED_OUT: "error",
}


async def _terminate_as_cancelled(handle: WorkflowHandle[Any, Any]) -> None:
    """A run whose workflow task keeps failing never processes the cancel request it was
    sent: it is terminated instead, with the reason the reader reads as cancelled."""
    try:
        await handle.terminate(reason=CANCELLED_BY_TERMINATION)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:  # (it closed meanwhile: nothing to end)
            raise


class RunService:
    def __init__(
        self,
        *,
        client: Client,
        registry: NodeRegistry,
        workflows: WorkflowRepository,
        files: FileRepository,
        idempotency: IdempotencyRepository,
        decisions: DecisionRepository,
        secrets: SecretRepository,
        task_queue: str,
        max_upload_bytes: int,
        published: PublishedDefinitions | None = None,
        reachability: Reachability | None = None,
        subscriptions: EventSubscriptions | None = None,
        usage: UsageRepository | None = None,
        run_started: Callable[[str], None] | None = None,
    ) -> None:
        """`published` caches published definitions, `reachability` watches Temporal (runs/
        temporal_errors.py); share one of each per process. `subscriptions` says which events
        new runs emit (none without it). `usage` is the effects ledger the worker writes
        (runs read without it show no effects or usage)."""
        self._client = client
        # Told the trigger type of every run this service starts (the API's metrics).
        self._run_started = run_started
        self._usage = RunUsage(usage, registry) if usage is not None else None
        self.reachability = reachability
        self._published = published or PublishedDefinitions()
        self._registry = registry
        self._workflows = workflows
        self._secrets = secrets
        self._subscriptions = subscriptions
        self._reader = RunReader(client, self._usage)
        self._starter = RunStarter(client, registry, task_queue)
        self._inputs = InputResolver(files, registry, max_upload_bytes)
        self._subworkflows = SubworkflowTargets(workflows, registry, self._published)
        self._commands = CommandLog(idempotency)
        self._reviews = Reviews(client, self._reader, self._commands, decisions)
        self._retries = Retries(
            client=client,
            registry=registry,
            reader=self._reader,
            starter=self._starter,
            inputs=self._inputs,
            commands=self._commands,
            secrets=secrets,
        )

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
    async def organization_of(self, run_id: str) -> str | None:
        """The organization run `run_id` belongs to, or None when there is no such run. For
        callers that hold no organization yet (the codec endpoint checks a payload's run)."""
        return await self._reader.organization_of(run_id)

    @needs_temporal
    async def step(self, org: str, run_id: str, node_id: str) -> StepState:
        """One step of the run; NotFound for the run first (like `get`), then for a node the
        run does not have."""
        view = await self._reader.get(org, run_id)
        for step in view.state.steps:
            if step.node_id == node_id:
                return await self._live(step)
        raise NotFound("step_not_found", f"Run {run_id} has no node {node_id}.")

    @needs_temporal
    async def steps(self, org: str, run_id: str) -> list[StepState]:
        """The run's steps, a running map's with its live progress."""
        view = await self._reader.get(org, run_id)
        return [await self._live(step) for step in view.state.steps]

    async def _live(self, step: StepState) -> StepState:
        """A running map step's progress as its child workflow counts it now (the run records
        it when the map starts and ends); the recorded one when the child cannot answer."""
        if step.status != "running" or step.map_workflow_id is None:
            return step
        handle = self._client.get_workflow_handle(step.map_workflow_id)
        try:
            progress = await handle.query(MapWorkflow.progress, rpc_timeout=QUERY_TIMEOUT)
        except (RPCError, WorkflowQueryFailedError):
            return step
        return step.model_copy(update={"progress": progress})

    @needs_temporal
    async def map_items(
        self, org: str, run_id: str, node_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[ItemOutcome], str | None]:
        """A page of a map step's items, in item order; NotFound for a node that is no map."""
        step = await self.step(org, run_id, node_id)
        spec = self._registry.get(step.node_type)
        if spec is None or not spec.behaviour.map:
            raise NotFound("map_not_found", f"Node {node_id} of run {run_id} is not a map.")
        offset = 0
        if cursor is not None:
            if not (cursor.startswith("i") and cursor[1:].isdigit() and len(cursor) < 12):
                message = "cursor is not one this API returned."
                raise invalid(
                    "invalid_cursor", message, [{"loc": ["query", "cursor"], "message": message}]
                )
            offset = int(cursor[1:])
        if step.map_workflow_id is None:  # the map has not started
            return [], None
        handle = self._client.get_workflow_handle(step.map_workflow_id)
        try:
            items = await handle.query(
                MapWorkflow.items,
                MapItemsQuery(offset=offset, limit=limit + 1),
                rpc_timeout=QUERY_TIMEOUT,
            )
        except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
            raise Unavailable(
                "map_items_unavailable",
                f"The items of map {node_id} cannot be read right now ({err}); try again.",
            ) from err
        except RPCError as err:
            if err.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.DEADLINE_EXCEEDED):
                raise
            raise Unavailable(
                "map_items_unavailable",
                f"The items of map {node_id} cannot be read right now (no worker answered); "
                "try again.",
            ) from err
        if len(items) > limit:
            return items[:limit], f"i{offset + limit}"
        return items, None

    @needs_temporal
    async def list_runs(
        self,
        org: str,
        run_filter: RunFilter,
        *,
        limit: int,
        cursor: str | None,
        order: Order = "desc",
    ) -> RunPage:
        """By creation time whatever each run's status: newest first, or oldest first."""
        return await self._reader.list_page(
            org, run_filter, limit=limit, cursor=cursor, order=order
        )

    @needs_temporal
    async def pending_reviews(
        self, org: str, *, limit: int, cursor: str | None, order: Order = "desc"
    ) -> tuple[list[WaitingReview], str | None]:
        """The organization's waiting reviews across runs; `limit` counts runs, each of which
        may wait on several nodes."""
        page = await self.list_runs(
            org, RunFilter(status="waiting_for_human"), limit=limit, cursor=cursor, order=order
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
        started_by: str | None = None,
    ) -> Outcome:
        """A new run of the workflow's published (or draft) definition. `body` is what makes
        two commands with one `command_id` the same request (defaults to nothing);
        `started_by` the subject of the API key that starts it."""
        command = Command(org, command_id, "start", workflow_id, body or {})

        async def prepare(run_id: str) -> RunInput:
            return await self.prepare_start(
                org,
                workflow_id,
                requested,
                config_source=config_source,
                trigger=trigger or Trigger(),
                run_id=run_id,
                started_by=started_by,
            )

        return await self._launch(command, prepare)

    async def prepare_start(
        self,
        org: str,
        workflow_id: str,
        requested: RequestedInputs,
        *,
        config_source: ConfigSource,
        trigger: Trigger,
        run_id: str,
        started_by: str | None = None,
    ) -> RunInput:
        """What a new run of the workflow would start with, checked as a start checks it: the
        definition published now (or the draft), its subworkflow targets frozen, its secrets
        present, the inputs valid for its start nodes (inline documents are stored). Starts
        nothing: `start` and the schedules' launcher (triggers/) start what it returns."""
        definition, ref = await definition_for(
            org, workflow_id, config_source, self._workflows, self._registry, self._published
        )
        subworkflows = await self._subworkflows.resolve(org, ref.workflow_id, definition)
        users = self._published.secret_users(ref.snapshot_id, definition)
        await check_secrets(org, users, self._secrets)
        inputs = await self._inputs.resolve(org, definition, requested)
        return self._starter.run_input(
            run_id=run_id,
            org=org,
            workflow=ref,
            definition=definition,
            inputs=inputs,
            trigger=trigger,
            subworkflows=subworkflows,
            events=await self._subscribed_events(org),
            started_by=started_by,
        )

    @needs_temporal
    async def restart(
        self,
        org: str,
        run_id: str,
        *,
        config_source: ConfigSource = "published",
        command_id: str | None = None,
        started_by: str | None = None,
    ) -> Outcome:
        """A new run with the source's inputs and the workflow's current definition."""
        command = Command(org, command_id, "restart", run_id, {"config_source": config_source})
        return await self._derive(org, run_id, command, config_source, started_by)

    @needs_temporal
    async def rerun(
        self,
        org: str,
        run_id: str,
        *,
        command_id: str | None = None,
        started_by: str | None = None,
    ) -> Outcome:
        """A new run with the source's inputs and exactly the snapshot the source ran."""
        command = Command(org, command_id, "rerun", run_id, {})
        return await self._derive(org, run_id, command, None, started_by)

    async def _derive(
        self,
        org: str,
        run_id: str,
        command: Command,
        config_source: ConfigSource | None,
        started_by: str | None = None,
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
                # The same snapshot, and the same subworkflow targets it ran with.
                definition, ref = source_input.definition, source_input.workflow
                inputs: RunInputs = source.state.inputs
                subworkflows = source_input.subworkflows
            else:
                definition, ref = await definition_for(
                    org,
                    source_input.workflow.workflow_id,
                    config_source,
                    self._workflows,
                    self._registry,
                    self._published,
                )
                subworkflows = await self._subworkflows.resolve(org, ref.workflow_id, definition)
                # The current definition may name other start nodes: checked like a start.
                inputs = await self._inputs.resolve(
                    org, definition, RequestedInputs.of_run(source.state.inputs)
                )
            users = self._published.secret_users(ref.snapshot_id, definition)
            await check_secrets(org, users, self._secrets)
            return self._starter.run_input(
                run_id=new_run_id,
                org=org,
                workflow=ref,
                definition=definition,
                inputs=inputs,
                trigger=Trigger(type=kind, source_run_id=run_id),
                subworkflows=subworkflows,
                events=await self._subscribed_events(org),
                started_by=started_by,
            )

        return await self._launch(command, prepare)

    async def _subscribed_events(self, org: str) -> list[str]:
        """The event types the new run emits: those the organization's endpoints subscribe to
        now (an endpoint added later gets the events of runs started after it)."""
        if self._subscriptions is None:
            return []
        return await self._subscriptions.subscribed_event_types(org)

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
            if self._run_started is not None:
                self._run_started(run_input.trigger.type)

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
            description = await handle.describe()
            status = description.status
            if status in _ENDED_OTHERWISE:
                raise Conflict(
                    "run_ended", f"Run {run_id} already ended ({_ENDED_OTHERWISE[status]})."
                )
            if workflow_task_failing(description):
                await _terminate_as_cancelled(handle)

        executed = await self._commands.execute(
            command, Steps(run_id, took_effect, prepare, perform)
        )
        return Outcome(view, executed.replayed)

    # ------------------------------------------------------------------ reviews

    @needs_temporal
    async def review(
        self,
        org: str,
        run_id: str,
        decision: ReviewDecision,
        *,
        command_id: str | None = None,
        actor: ReviewActor | None = None,
    ) -> Outcome:
        """A reviewer's decision for a waiting human_review node; Conflict when that node is
        not waiting (or was just decided by someone else); Forbidden when `actor` may not
        take it (runs/reviews.py `ReviewActor`)."""
        return await self._reviews.decide(org, run_id, decision, command_id=command_id, actor=actor)

    # ------------------------------------------------------------------ retry

    @needs_temporal
    async def retry_plan(
        self, org: str, run_id: str, from_: RetryFrom, node_id: str | None = None
    ) -> RetryPlan:
        """What a retry would reuse, run again and repeat; changes nothing."""
        return await self._retries.plan(org, run_id, from_, node_id)

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
        """The same run again: from its failure point, a node or the start (runs/retries.py)."""
        return await self._retries.retry(org, run_id, spec, command_id=command_id, body=body)

    # ------------------------------------------------------------------ compare and dry run

    @needs_temporal
    async def compare(self, org: str, run_id: str, other_run_id: str | None) -> Comparison:
        """Run `run_id` against `other_run_id` (default: the run it was restarted or rerun
        from): definition changes and each node's status, output and branch in both."""
        return await Comparisons(self._reader).compare(org, run_id, other_run_id)

    @needs_temporal
    async def dry_run(
        self, org: str, workflow_id: str, run_id: str, config_source: ConfigSource = "draft"
    ) -> list[DryRunNode]:
        """The run's inputs evaluated against the workflow's draft (or published) definition;
        calls nothing, starts nothing."""
        dry_runs = DryRuns(self._reader, self._workflows, self._registry, self._published)
        return await dry_runs.dry_run(org, workflow_id, run_id, config_source)

    # ------------------------------------------------------------------ bulk operations

    # ------------------------------------------------------------------ effects and usage

    @needs_temporal
    async def steps_with_ledger(
        self, org: str, run_id: str
    ) -> tuple[list[StepState], dict[str, StepLedger]]:
        """The run's steps (as `steps`), with each one's usage and, for side-effecting nodes,
        the requests it sent (runs/usage.py); no ledger entries without a usage store."""
        view = await self._reader.get(org, run_id)
        steps = [await self._live(step) for step in view.state.steps]
        if self._usage is None:
            return steps, {}
        return steps, await self._usage.steps(view.state)

    @needs_temporal
    async def step_with_ledger(
        self, org: str, run_id: str, node_id: str
    ) -> tuple[StepState, StepLedger | None]:
        """One step (as `step`) with its usage and effects."""
        view = await self._reader.get(org, run_id)
        for step in view.state.steps:
            if step.node_id == node_id:
                if self._usage is None:
                    return await self._live(step), None
                ledgers = await self._usage.steps(view.state)
                return await self._live(step), ledgers.get(node_id)
        raise NotFound("step_not_found", f"Run {run_id} has no node {node_id}.")

    async def usage(
        self,
        org: str,
        *,
        start: datetime | None,
        end: datetime | None,
        workflow_id: str | None = None,
    ) -> tuple[UsageWindow, Usage]:
        """What the organization's runs (of `workflow_id`, when given) used in [start, end):
        usage counts when its activity attempt started. InvalidInput for a bad window or id."""
        if self._usage is None:
            raise Unavailable("usage_unavailable", "Usage is not recorded by this deployment.")
        return await self._usage.organization(
            org, start=start, end=end, workflow_id=workflow_id, now=datetime.now(UTC)
        )
