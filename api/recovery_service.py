"""Recovery commands: restart and rerun (new runs, copied inputs), retry (the same run).

How a retry is carried out in Temporal (the plan, the reset) lives in `api/recovery.py`; this
module decides whether it may happen and makes sure it happens once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Literal

from temporalio.client import Client

from activities.registry import NodeRegistry
from api import schemas
from api.errors import conflict
from api.idempotency import Command, claim, claim_slot, previous_result
from api.recovery import (
    RETRYABLE_STATUSES,
    RetryFrom,
    RetryPlan,
    plan_retry,
    reset_run,
    retry_request,
    task_boundaries,
)
from api.run_reader import RunReader, RunView
from api.run_starter import Launched, RequestedInputs, RunStarter, definition_for
from api.store.idempotency import IdempotencyRepository
from api.store.workflows import WorkflowRepository
from runlane import ids
from workflows.models import TERMINAL_STATUSES, RunInput, RunInputs, Trigger

# How long a replayed retry waits for the first call's retry to show before concluding that
# the first call was lost before its reset (and making it itself).
FIRST_RETRY_GRACE_S = 5.0


def requested_inputs(inputs: RunInputs) -> RequestedInputs:
    """A run's inputs as a new request: documents by reference, never re-uploaded."""
    return RequestedInputs(
        documents={
            node_id: schemas.DocumentInput(file_id=ref.file_id)
            for node_id, ref in inputs.documents.items()
        },
        json_inputs=dict(inputs.json_data),
        text_inputs=dict(inputs.text_data),
    )


class RecoveryService:
    def __init__(
        self,
        *,
        client: Client,
        reader: RunReader,
        starter: RunStarter,
        workflows: WorkflowRepository,
        registry: NodeRegistry,
        idempotency: IdempotencyRepository,
    ) -> None:
        self._client = client
        self._reader = reader
        self._starter = starter
        self._workflows = workflows
        self._registry = registry
        self._idempotency = idempotency

    # ------------------------------------------------------------- restart and rerun

    async def derive(
        self,
        org: str,
        run_id: str,
        command: Command,
        config_source: Literal["published", "draft"] | None,
    ) -> Launched:
        """Restart (a `config_source`: the workflow's current definition) or rerun (None:
        exactly the snapshot the source ran), with the source's inputs."""
        kind: Literal["restart", "rerun"] = "restart" if config_source else "rerun"

        async def prepare(new_run_id: str) -> RunInput:
            source = await self._reader.get(org, run_id)
            if source.state.status not in TERMINAL_STATUSES:
                raise conflict(
                    "run_not_ended",
                    f"Run {run_id} is {source.state.status}; only ended runs can be {kind}ed "
                    "(cancel it first, or wait for it to end).",
                )
            source_input = await self._reader.run_input(run_id)
            if config_source is None:
                definition, ref = source_input.definition, source_input.workflow
                inputs = source.state.inputs
            else:
                definition, ref = await definition_for(
                    org,
                    source_input.workflow.workflow_id,
                    config_source,
                    self._workflows,
                    self._registry,
                )
                # The current definition may name other start nodes: checked like a start.
                inputs = await self._starter.resolve_inputs(
                    org, definition, requested_inputs(source.state.inputs)
                )
            return self._starter.run_input(
                run_id=new_run_id,
                org=org,
                workflow=ref,
                definition=definition,
                inputs=inputs,
                trigger=Trigger(type=kind, source_run_id=run_id),
            )

        return await self._starter.launch(command, prepare)

    # ------------------------------------------------------------- retry

    async def plan(self, view: RunView, from_: RetryFrom) -> tuple[RetryPlan, RunInput]:
        run_input = await self._reader.run_input(view.state.run_id)
        plans = {node_id: plan.execution for node_id, plan in run_input.plans.items()}
        boundaries = await task_boundaries(self._client, view.state.run_id, view.temporal_run_id)
        return plan_retry(view.state, plans, self._registry, from_, boundaries), run_input

    async def retry(self, org: str, run_id: str, body: schemas.RetryBody) -> Launched:
        command = Command(
            org,
            body.command_id,
            "retry",
            run_id,
            body.model_dump(mode="json", exclude={"command_id"}, by_alias=True),
        )
        view = await self._reader.get(org, run_id)
        request_id = (
            ids.derived_id("retry", org, body.command_id) if body.command_id else uuid.uuid4().hex
        )
        if await previous_result(self._idempotency, command) is not None:
            done = await self._first_retry(org, run_id, request_id, view)
            if done is not None:
                return Launched(done, replayed=True)
        plan, run_input = await self.plan(view, body.from_)
        if not plan.allowed:
            raise conflict("retry_not_allowed", plan.reason or "This run cannot be retried.")
        inputs = None
        if body.from_ == "start":  # validated like a start, before anything is recorded
            requested = requested_inputs(view.state.inputs)
            requested.documents.update(body.documents or {})
            requested.json_inputs.update(body.json_inputs or {})
            requested.text_inputs.update(body.text_inputs or {})
            inputs = await self._starter.resolve_inputs(org, run_input.definition, requested)
        _, replayed = await claim(self._idempotency, command, run_id)
        if replayed:
            # A concurrent identical call claimed the command first and is retrying the run.
            done = await self._first_retry(org, run_id, request_id, view)
            if done is not None:
                return Launched(done, replayed=True)
        if not await self._take_attempt(org, run_id, view.state.attempt, request_id):
            raise conflict(
                "retry_in_progress",
                f"Run {run_id} is already being retried (attempt {view.state.attempt + 1}); "
                "read the run to follow it.",
            )
        if inputs is not None:  # from the start: a fresh execution under the same run id
            fresh = run_input.model_copy(
                update={"inputs": inputs, "retry": retry_request(view.state, plan, request_id)}
            )
            await self._starter.start(fresh, reuse_ended_id=True)
        else:
            await reset_run(
                self._client,
                run_id=run_id,
                temporal_run_id=view.temporal_run_id,
                state=view.state,
                plan=plan,
                request_id=request_id,
            )
        return Launched(await self._reader.get(org, run_id), replayed=replayed)

    async def _take_attempt(self, org: str, run_id: str, attempt: int, request_id: str) -> bool:
        """Exactly one retry per attempt: Temporal does not deduplicate resets, so two
        different concurrent retries would otherwise both reset the run."""
        return await claim_slot(
            self._idempotency,
            org,
            slot=f"retry:{run_id}:{attempt}",
            target=run_id,
            holder=request_id,
        )

    async def _first_retry(
        self, org: str, run_id: str, request_id: str, view: RunView
    ) -> RunView | None:
        """For a replayed retry: the run once the first call's retry shows (its attempt, or
        the run no longer ended), waiting a little for a first call still in flight; None when
        it never shows, i.e. the first call was lost before its reset."""
        deadline = time.monotonic() + FIRST_RETRY_GRACE_S
        while True:
            if view.state.status not in RETRYABLE_STATUSES or any(
                a.request_id == request_id for a in view.state.attempts
            ):
                return view
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.1)
            view = await self._reader.get(org, run_id)
