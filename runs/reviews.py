"""Reviewers' decisions: exactly one per waiting node and attempt, delivered as the `review`
signal operators can also send from the Temporal UI."""

from __future__ import annotations

import asyncio
import time
import uuid

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from runlane.errors import Conflict, TooLarge
from runs.commands import FIRST_CALL_GRACE_S, Command, CommandLog, Steps
from runs.models import Outcome
from runs.reader import RunReader
from runs.temporal_errors import REFUSED, over_payload_limit
from workflows.models import TERMINAL_STATUSES, ReviewDecision
from workflows.run_workflow import RunWorkflow


class Reviews:
    def __init__(self, client: Client, reader: RunReader, commands: CommandLog) -> None:
        self._client = client
        self._reader = reader
        self._commands = commands

    async def decide(
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
                if err.status not in REFUSED:
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
                if over_payload_limit(err):
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
