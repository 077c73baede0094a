"""Retrying a run in place: planning it (runs/retry_plan.py) and carrying it out, once per
attempt, as a reset to the failure point or a fresh execution from the start."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from activities.registry import NodeRegistry
from runlane import ids
from runlane.definition import Graph
from runlane.errors import Conflict, invalid
from runs import plan_tokens
from runs.commands import FIRST_CALL_GRACE_S, Command, CommandLog, Steps
from runs.inputs import InputResolver, RequestedInputs
from runs.models import Outcome, RetrySpec
from runs.plan_tokens import PlannedRetry
from runs.reader import RunReader, RunView
from runs.reset import reset_run, task_boundaries
from runs.retry_plan import (
    RetryFrom,
    RetryPlan,
    downstream,
    plan_from_node,
    plan_retry,
    retry_request,
)
from runs.starter import RunStarter, check_secrets, secret_users
from runs.temporal_errors import REFUSED
from store.secrets import SecretRepository
from workflows.models import TERMINAL_STATUSES, RetryRequest, RunInput, RunInputs
from workflows.run_workflow import MAX_STATE_PAYLOAD_BYTES


class Retries:
    def __init__(
        self,
        *,
        client: Client,
        registry: NodeRegistry,
        reader: RunReader,
        starter: RunStarter,
        inputs: InputResolver,
        commands: CommandLog,
        secrets: SecretRepository,
    ) -> None:
        self._client = client
        self._registry = registry
        self._reader = reader
        self._starter = starter
        self._inputs = inputs
        self._commands = commands
        self._secrets = secrets

    async def plan(
        self, org: str, run_id: str, from_: RetryFrom, node_id: str | None = None
    ) -> RetryPlan:
        """What a retry would reuse, run again and repeat; changes nothing."""
        view = await self._reader.get(org, run_id)
        if from_ != "node" and node_id is not None:
            raise invalid(
                "invalid_query",
                "node_id goes with from=node",
                [{"loc": ["query", "node_id"], "message": "given without from=node"}],
            )
        plan, _ = await self._plan(view, from_, node_id)
        return plan

    async def _plan(
        self,
        view: RunView,
        from_: RetryFrom,
        node_id: str | None = None,
        overridden: Collection[str] = (),
    ) -> tuple[RetryPlan, RunInput]:
        run_input = await self._reader.run_input(view.state.run_id)
        boundaries = await task_boundaries(self._client, view.state.run_id, view.temporal_run_id)
        side_effecting = [
            node.id
            for node in run_input.definition.nodes
            if self._registry.repeats_effects_per_item(node)
        ]
        if from_ == "node":
            graph = Graph(run_input.definition)
            if node_id is None:
                raise invalid(
                    "node_id_required",
                    "A retry from a node needs node_id, the node to retry from.",
                    [{"loc": ["node_id"], "message": "required with from=node"}],
                )
            if node_id not in graph.nodes:
                raise invalid(
                    "unknown_node",
                    f"Run {view.state.run_id} has no node {node_id!r} to retry from; "
                    "node_id names one of its steps.",
                    [{"loc": ["node_id"], "message": f"no node {node_id!r} in this run"}],
                )
            plan = plan_from_node(
                view.state,
                downstream(graph, node_id),
                self._registry,
                node_id,
                boundaries,
                side_effecting,
                overridden,
            )
        else:
            plans = {node_id: plan.execution for node_id, plan in run_input.plans.items()}
            plan = plan_retry(view.state, plans, self._registry, from_, boundaries, side_effecting)
        token = plan_tokens.plan_id(view.state, view.temporal_run_id, from_, plan.node_id)
        return replace(plan, plan_id=token), run_input

    async def retry(
        self,
        org: str,
        run_id: str,
        spec: RetrySpec,
        *,
        command_id: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> Outcome:
        """The same run again: reset to its failure point, from a node (keeping what is not
        downstream of it), or from the start; with overriding inputs for the last two."""
        view = await self._reader.get(org, run_id)
        planned = plan_tokens.parse(spec.plan_id) if spec.plan_id else None
        from_, node_id = _what_to_retry(spec, planned)
        command = Command(org, command_id, "retry", run_id, body or {"from": from_})
        request_id = ids.derived_id("retry", org, command_id) if command_id else uuid.uuid4().hex

        async def took_effect(_: str) -> bool:
            return await self._first_retry(org, run_id, request_id, view) is not None

        async def prepare() -> tuple[RetryPlan, RunInput, RunInputs | None, RetryRequest]:
            if planned is not None:
                plan_tokens.check_fresh(planned, view.state, view.temporal_run_id)
            overridden: list[str] = []
            if spec.overrides is not None and from_ == "node":
                overridden = [*spec.overrides.json_inputs, *spec.overrides.text_inputs]
            plan, run_input = await self._plan(view, from_, node_id, overridden)
            if not plan.allowed:
                raise Conflict("retry_not_allowed", plan.reason or "This run cannot be retried.")
            # A secret deleted since the run started would fail a node run again.
            users = secret_users(run_input.definition, nodes=set(plan.rerun))
            await check_secrets(org, users, self._secrets)
            inputs = None
            # Validated like a start, before anything is recorded.
            if from_ == "start" or (from_ == "node" and spec.overrides is not None):
                requested = RequestedInputs.of_run(view.state.inputs)
                if spec.overrides is not None:
                    requested = requested.overridden_by(spec.overrides)
                inputs = await self._inputs.resolve(org, run_input.definition, requested)
            request = retry_request(view.state, plan, request_id, inputs)
            if from_ == "node":
                await self._check_signal_size(request)
            return plan, run_input, inputs, request

        async def perform(
            prepared: tuple[RetryPlan, RunInput, RunInputs | None, RetryRequest], _: str
        ) -> None:
            plan, run_input, inputs, request = prepared
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
            if from_ == "start":  # a fresh execution under the same run id
                fresh = run_input.model_copy(update={"inputs": inputs, "retry": request})
                try:
                    await self._starter.start(fresh, reuse_ended_id=True)
                except RPCError as err:
                    # Refused outright (the inputs over Temporal's payload limit): nothing
                    # started, so the run may be retried again; a slot kept here would
                    # answer every later retry "already being retried".
                    if err.status in REFUSED:
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
                        request=request,
                    )
                except Conflict as impossible:
                    refusal = impossible.__cause__
                    if isinstance(refusal, RPCError) and refusal.status in REFUSED:
                        # The reset itself was refused: nothing was reset.
                        await self._commands.release_slot(org, slot=taken, holder=request_id)
                    raise

        executed = await self._commands.execute(
            command, Steps(run_id, took_effect, prepare, perform)
        )
        return Outcome(await self._reader.get(org, run_id), executed.replayed)

    async def _check_signal_size(self, request: RetryRequest) -> None:
        """A retry from a node sends what it keeps in one signal, after the reset: one
        Temporal would refuse must be refused before anything is reset."""
        [payload] = await self._client.data_converter.encode([request])
        size = payload.ByteSize()
        if size > MAX_STATE_PAYLOAD_BYTES:
            raise Conflict(
                "retry_too_large",
                f"The outputs this retry would keep are {size:,} bytes as one payload, more "
                f"than Temporal takes in a signal ({MAX_STATE_PAYLOAD_BYTES:,}); retry from an "
                'earlier node, with {"from": "start"}, or restart the run.',
            )

    async def _first_retry(
        self, org: str, run_id: str, request_id: str, view: RunView
    ) -> RunView | None:
        """For a replayed retry: the run once the first call's retry shows (its attempt, or
        the run no longer ended), waiting a little for a first call still in flight; None when
        it never shows, i.e. the first call was lost before its reset."""
        deadline = time.monotonic() + FIRST_CALL_GRACE_S
        while True:
            if view.state.status not in TERMINAL_STATUSES or any(
                a.request_id == request_id for a in view.state.attempts
            ):
                return view
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.1)
            view = await self._reader.get(org, run_id)


def _what_to_retry(spec: RetrySpec, planned: PlannedRetry | None) -> tuple[RetryFrom, str | None]:
    """Where the retry starts: the plan's when it carries one (the body may repeat it, not
    contradict it), else the body's (default: the failure point)."""
    if planned is None:
        return spec.from_ or "failure_point", spec.node_id
    if spec.from_ not in (None, planned.from_) or spec.node_id not in (None, planned.node_id):
        planned_as = f'"from": "{planned.from_}"' + (
            f', "node_id": "{planned.node_id}"' if planned.node_id else ""
        )
        raise invalid(
            "plan_mismatch",
            f"The body asks for another retry than its plan_id ({planned_as}); give the plan_id "
            "alone, or read a plan for what you ask.",
            [{"loc": ["body", "plan_id"], "message": f"plans {planned_as}"}],
        )
    if spec.overrides is not None and planned.from_ == "failure_point":
        raise invalid(
            "overrides_need_start_or_node",
            'input overrides need "from": "start" or "node"; this plan resumes from the failure '
            "point",
            [{"loc": ["body", "json_inputs"], "message": "not with this plan"}],
        )
    if spec.overrides is not None and spec.overrides.documents and planned.from_ == "node":
        raise invalid(
            "documents_need_start",
            'document overrides need "from": "start"',
            [{"loc": ["body", "documents"], "message": "not with a retry from a node"}],
        )
    return planned.from_, planned.node_id
