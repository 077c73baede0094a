"""Reviewers' decisions: exactly one per waiting node and attempt, recorded, then delivered as
the `review` signal operators can also send from the Temporal UI.

A transactional outbox. A decision is checked whole first (the node waits, the encoded signal
fits Temporal's payload limit); then its row is claimed (store/decisions.py: the row decides
between reviewers at once); then it is sent. The signal carries a request id derived from the
row, and Temporal records a run's signals once per request id, so sending a decision again is
always safe: the API's own quick retries, the same command's replays, any later decision for
the node (which finds the row, delivers it and is refused as "already decided"), and the sweep
that delivers what nobody else did. So the row and the signal succeed together, or neither:

- Temporal refuses the signal outright (the run ended, the payload is invalid) and it never
  reached the run: the row is deleted, the node takes a decision again;
- the outcome is unknown (Temporal unreachable, no answer): the row stays and the caller hears
  503; the decision is delivered by whoever comes next, and by the sweep at the latest.

A decision is sent to the Temporal execution it was taken against (a retry's reset starts a
new one, with a new attempt), never to a later one.

A node that needs several approvals (`approvals_required`) takes one row per decision, in
numbered seats (store/decisions.py). A decision is checked against the seats before it: one
that comes after a reject or after the last required approval is refused (409, "not
waiting"), an approval by a reviewer who already approved is refused (409,
"already_approved"); otherwise it claims the next seat (losing it to a concurrent decision
means checking again). Seats are delivered in order (a seat's delivery first delivers the
seats before it), so the run applies them in the order the API decided them and reaches the
same verdict: every decision answered 202 has exactly one effect on the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.converter import WorkflowSerializationContext
from temporalio.service import RPCError, RPCStatusCode

from activities.control import review_data_problems
from runlane.errors import Conflict, Forbidden, RunlaneError, TooLarge, invalid
from runs.commands import Command, CommandLog, Steps
from runs.models import Outcome
from runs.reader import RunReader, RunView
from runs.temporal_errors import REFUSED, over_payload_limit, unavailable
from store.decisions import DecisionRecord, DecisionRepository, DecisionSlot
from workflows.models import PendingReview, ReviewDecision

log = logging.getLogger("runlane.reviews")

# The signal's name is part of the API (API.md "Human review"): operators send it too.
SIGNAL = "review"

# Temporal refuses a payload over 2 MiB (its blob size limit); the signal's request carries a
# little more than the decision, so decisions are held to a bit less.
MAX_DECISION_BYTES = 2 * 1024 * 1024 - 64 * 1024

# The API's own quick retries of a signal whose outcome is unknown, before it answers 503.
SEND_ATTEMPTS = 3
SEND_TIMEOUT = timedelta(seconds=2)
SEND_BACKOFF_S = 0.2

# The sweep: this often, decisions left undelivered for at least SWEEP_AFTER (the calls that
# recorded them are done with them by then).
SWEEP_EVERY = timedelta(seconds=2)
SWEEP_AFTER = timedelta(seconds=5)
SWEEP_BATCH = 100

# Request ids are UUIDs derived from the decision's row (any run, node, attempt and holder).
_REQUEST_IDS = uuid.UUID("5d0f4c52-7f1e-4a53-9a43-52c4b1a0d3e1")


def request_id(record: DecisionRecord) -> str:
    slot = record.slot
    # (Seat 1's key is the node id: rows recorded before seats keep their request ids.)
    parts = (slot.organization_id, slot.run_id, slot.key, str(slot.attempt), record.holder)
    return str(uuid.uuid5(_REQUEST_IDS, "\x1f".join(parts)))


class DecisionDelivery:
    """Sends recorded decisions as the `review` signal, as often as needed, applied once."""

    def __init__(self, client: Client, decisions: DecisionRepository) -> None:
        self._client = client
        self._decisions = decisions

    async def encode(self, run_id: str, decision: ReviewDecision) -> list[Payload]:
        """The signal's payloads, encoded as the SDK would (the client's codec, with the
        run's context); TooLarge when Temporal would refuse them."""
        converter = self._client.data_converter.with_context(
            WorkflowSerializationContext(namespace=self._client.namespace, workflow_id=run_id)
        )
        payloads = await converter.encode([decision])
        if sum(payload.ByteSize() for payload in payloads) > MAX_DECISION_BYTES:
            raise TooLarge(
                "decision_too_large",
                "The decision (its data, comment and reviewer) is larger than Temporal accepts "
                f"in one signal (about {MAX_DECISION_BYTES // 1_000_000} MB, compressed). Keep "
                "large data in a document and put its file id in data.",
                {"limit_bytes": MAX_DECISION_BYTES},
            )
        return payloads

    async def deliver(self, record: DecisionRecord, payloads: list[Payload] | None = None) -> None:
        """Make sure the decision reached its run (nothing is sent once that is known).

        Raises Conflict (the run ended) or TooLarge when Temporal refused it and it never
        reached the run: the record is deleted, the node may take a decision again.
        Raises Unavailable when the outcome is unknown: the record stays, to be sent again.
        """
        if record.delivered_at is not None:
            return
        if record.slot.seat > 1:
            # The seats before this one reach the run first: it applies them in seat order.
            for earlier in await self._decisions.of_node(record.slot):
                if earlier.slot.seat < record.slot.seat and earlier.delivered_at is None:
                    with contextlib.suppress(Conflict, TooLarge):  # refused: it never counts
                        await self.deliver(earlier)
        run_id = record.slot.run_id
        if payloads is None:
            try:
                payloads = await self.encode(run_id, ReviewDecision.model_validate(record.decision))
            except TooLarge:  # it never will fit (the codec changed since): nothing to send
                await self._decisions.release(record)
                raise
        request = SignalWorkflowExecutionRequest(
            namespace=self._client.namespace,
            workflow_execution=WorkflowExecution(
                workflow_id=run_id, run_id=record.temporal_run_id or ""
            ),
            signal_name=SIGNAL,
            identity=self._client.identity,
            request_id=request_id(record),
        )
        request.input.payloads.extend(payloads)
        try:
            await self._send(request)
        except RPCError as err:
            assert err.status in REFUSED
            if err.status == RPCStatusCode.NOT_FOUND and await self._reached(record):
                await self._decisions.mark_delivered(record)  # sent earlier, before it ended
                return
            await self._decisions.release(record)
            if err.status == RPCStatusCode.NOT_FOUND:
                # "workflow execution already completed": the run ended (cancelled, timed out,
                # retried) since it was read. It exists; the node just no longer waits.
                raise Conflict(
                    "review_not_waiting",
                    f"Node '{record.slot.node_id}' of run {run_id} is not waiting for a "
                    "review: the run has ended.",
                ) from None
            if over_payload_limit(err):
                raise TooLarge(
                    "decision_too_large",
                    "The decision is larger than Temporal accepts in one signal.",
                ) from None
            raise
        await self._decisions.mark_delivered(record)

    async def _send(self, request: SignalWorkflowExecutionRequest) -> None:
        """Sends, retrying a few times quickly while the outcome is unknown (the request id
        makes every repeat a no-op once one got through); RPCError for a refusal."""
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                await self._client.workflow_service.signal_workflow_execution(
                    request, retry=False, timeout=SEND_TIMEOUT
                )
                return
            except RPCError as err:
                if err.status in REFUSED:
                    raise
                if attempt == SEND_ATTEMPTS:
                    run_id = request.workflow_execution.workflow_id
                    log.warning("review signal to %s: outcome unknown (%s)", run_id, err.message)
                    raise unavailable() from err
            await asyncio.sleep(SEND_BACKOFF_S * attempt)

    async def _reached(self, record: DecisionRecord) -> bool:
        """After "already completed": whether an earlier send reached the execution before it
        ended (its history, final now, has a signal with this decision's request id)."""
        wanted = request_id(record)
        handle = self._client.get_workflow_handle(record.slot.run_id, run_id=record.temporal_run_id)
        try:
            async for event in handle.fetch_history_events():
                if (
                    event.HasField("workflow_execution_signaled_event_attributes")
                    and event.workflow_execution_signaled_event_attributes.request_id == wanted
                ):
                    return True
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:  # past retention: nothing to reach
                return False
            raise unavailable() from err
        return False


@dataclass(frozen=True)
class ReviewActor:
    """Who takes a decision, as the API key it came with says (API.md "Access control")."""

    # The key's subject: the decision's reviewer, and who may not approve a run it started
    # itself where the node says `self_approval: false`.
    subject: str | None = None
    # A reviewer's key decides only reviews assigned to its subject, or assigned to nobody
    # (an admin's decides any).
    assigned_only: bool = False


def review_assignees(review: PendingReview) -> list[str]:
    """Who a waiting review is assigned to: its `assignees`, and `escalate_to` once escalated
    (empty: anybody's to decide)."""
    assignees = list(review.assignees)
    if review.escalated_at is not None:
        assignees += [a for a in review.escalate_to if a not in assignees]
    return assignees


def assigned_to(review: PendingReview, subject: str | None) -> bool:
    """Whether a reviewer's key with this subject may decide the review: it is assigned to
    nobody, or to the subject."""
    assignees = review_assignees(review)
    return not assignees or (subject is not None and subject in assignees)


class Reviews:
    def __init__(
        self,
        client: Client,
        reader: RunReader,
        commands: CommandLog,
        decisions: DecisionRepository,
    ) -> None:
        self._reader = reader
        self._commands = commands
        self._decisions = decisions
        self._delivery = DecisionDelivery(client, decisions)

    async def decide(
        self,
        org: str,
        run_id: str,
        decision: ReviewDecision,
        *,
        command_id: str | None = None,
        actor: ReviewActor | None = None,
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

        async def took_effect(_: str) -> bool:
            """A replay (same command_id): whether this command's decision was recorded, by
            its first call or a concurrent twin; then it is delivered too, if it was not yet.
            A decision that lost to another reviewer's was never recorded: its replay is
            refused like it was."""
            assert command_id is not None
            record = await self._decisions.held_by(org, run_id, node_id, command_id)
            if record is None:
                return False
            try:
                await self._delivery.deliver(record)
            except (Conflict, TooLarge):
                return False  # refused, so never decided: it is decided again, or refused
            return True

        pending = next((p for p in view.state.pending_reviews if p.node_id == node_id), None)
        required = pending.approvals_required if pending is not None else 1

        async def prepare() -> list[Payload]:
            if node_id not in view.state.waiting_for_node_ids:
                raise Conflict(
                    "review_not_waiting",
                    f"Node '{node_id}' of run {run_id} is not waiting for a review (already "
                    "decided, not reached yet, or not a human_review node).",
                )
            if pending is not None:
                if actor is not None:
                    await self._check_actor(actor, decision, pending, run_id)
                _check(decision, pending)
            return await self._delivery.encode(run_id, decision)

        async def perform(payloads: list[Payload], _: str) -> None:
            # Exactly one decision per waiting node and attempt, even when several reviewers
            # click at once. (A retry that runs the node again waits under a new attempt, so
            # it takes a new decision.) A command_id makes its replays the same holder.
            holder = command_id or uuid.uuid4().hex
            slot = DecisionSlot(org, run_id, node_id, view.state.attempt)
            if required > 1:
                record = await self._take_seat(slot, decision, required, holder, view)
                await self._delivery.deliver(record, payloads)
                return
            record, _created = await self._decisions.claim(
                slot,
                holder=holder,
                decision=decision.model_dump(mode="json"),
                temporal_run_id=view.temporal_run_id,
            )
            if record.holder != holder:
                # The decision that came first may still be on its way: help it there.
                with contextlib.suppress(RunlaneError, RPCError):
                    await self._delivery.deliver(record)
                raise Conflict(
                    "review_not_waiting",
                    f"Node '{node_id}' of run {run_id} is not waiting for a review: it was "
                    "already decided.",
                )
            await self._delivery.deliver(record, payloads)

        executed = await self._commands.execute(
            command, Steps(run_id, took_effect, prepare, perform)
        )
        return Outcome(await self._reader.get(org, run_id), executed.replayed)

    async def _check_actor(
        self, actor: ReviewActor, decision: ReviewDecision, pending: PendingReview, run_id: str
    ) -> None:
        """Forbidden unless the caller's key may take this decision: a reviewer's only on a
        review assigned to its subject (or to nobody); nobody's approval of a node with
        `self_approval: false` in a run its own subject started."""
        if actor.assigned_only and not assigned_to(pending, actor.subject):
            who = f"'{actor.subject}'" if actor.subject else "a key without a subject"
            raise Forbidden(
                "review_not_assigned",
                f"Node '{pending.node_id}' of run {run_id} is assigned to "
                f"{', '.join(review_assignees(pending))}, not to {who}.",
            )
        if decision.decision != "approve" or actor.subject is None:
            return
        run_input = await self._reader.run_input(run_id)
        node = next((n for n in run_input.definition.nodes if n.id == pending.node_id), None)
        config = node.config if node is not None else {}
        if config.get("self_approval") is False and run_input.started_by == actor.subject:
            raise Forbidden(
                "self_approval_forbidden",
                f"'{actor.subject}' started run {run_id}, and node '{pending.node_id}' may not "
                "be approved by who started the run (self_approval: false); someone else must "
                "approve it (rejecting it is allowed).",
            )

    async def _take_seat(
        self,
        slot: DecisionSlot,
        decision: ReviewDecision,
        required: int,
        holder: str,
        view: RunView,
    ) -> DecisionRecord:
        """A decision on a node that needs several approvals: the next seat, when the seats
        before it leave the node waiting and this reviewer has not approved yet."""
        while True:
            taken = await self._decisions.of_node(slot)
            mine = next((r for r in taken if r.holder == holder), None)
            if mine is not None:  # a concurrent twin of this command took it
                return mine
            refusal = _seat_refusal(taken, decision, required, slot)
            if refusal is not None:
                # The decisions that came first may still be on their way: help them there.
                if taken:
                    with contextlib.suppress(RunlaneError, RPCError):
                        await self._delivery.deliver(taken[-1])
                raise refusal
            seat = taken[-1].slot.seat + 1 if taken else 1
            record, created = await self._decisions.claim(
                replace(slot, seat=seat),
                holder=holder,
                decision=decision.model_dump(mode="json"),
                temporal_run_id=view.temporal_run_id,
            )
            if created or record.holder == holder:
                return record
            # Another decision took that seat first: check against it too.


def _check(decision: ReviewDecision, pending: PendingReview) -> None:
    """What the node's config asks of a decision, checked before anything is recorded."""
    if decision.decision != "approve":
        return
    if decision.data is not None:
        problems = review_data_problems(pending.data_schema, decision.data)
        if problems:
            raise invalid(
                "invalid_review_data",
                f"data does not match the node's data_schema: {'; '.join(problems[:5])}",
                [{"loc": ["body", "data"], "message": problem} for problem in problems],
            )
    if pending.approvals_required > 1 and not decision.reviewer:
        message = (
            f"Node '{pending.node_id}' needs {pending.approvals_required} approvals from "
            "distinct reviewers: an approval must name its reviewer."
        )
        raise invalid(
            "reviewer_required", message, [{"loc": ["body", "reviewer"], "message": message}]
        )


def _seat_refusal(
    taken: list[DecisionRecord], decision: ReviewDecision, required: int, slot: DecisionSlot
) -> Conflict | None:
    """Why the decisions already taken for a node leave no seat for this one (or None)."""
    decisions = [ReviewDecision.model_validate(r.decision) for r in taken]
    approvers = [d.reviewer for d in decisions if d.decision == "approve"]
    if len(approvers) >= required or any(d.decision == "reject" for d in decisions):
        return Conflict(
            "review_not_waiting",
            f"Node '{slot.node_id}' of run {slot.run_id} is not waiting for a review: it was "
            "already decided.",
        )
    if decision.decision == "approve" and decision.reviewer in approvers:
        return Conflict(
            "review_already_approved",
            f"{decision.reviewer} already approved node '{slot.node_id}' of run {slot.run_id}; "
            f"it needs {required} approvals from distinct reviewers.",
        )
    return None


class DecisionSweep:
    """Delivers the decisions nobody else did (their signal's outcome was unknown, and no
    replay or later decision came): one per API process, for the process's life. Several
    processes sweeping at once only send signals Temporal records once."""

    def __init__(
        self,
        client: Client,
        decisions: DecisionRepository,
        *,
        every: timedelta = SWEEP_EVERY,
        after: timedelta = SWEEP_AFTER,
    ) -> None:
        self._decisions = decisions
        self._delivery = DecisionDelivery(client, decisions)
        self._every = every.total_seconds()
        self._after = after
        self._task: asyncio.Task[None] | None = None

    def start(self) -> DecisionSweep:
        self._task = asyncio.create_task(self._sweep_forever(), name="review-decision-sweep")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def sweep(self) -> int:
        """One pass; how many decisions it delivered. Stops at the first whose outcome is
        unknown: Temporal is out of reach, the others would fare no better."""
        due = await self._decisions.undelivered(
            created_before=datetime.now(UTC) - self._after, limit=SWEEP_BATCH
        )
        delivered = 0
        for record in due:
            where = f"run {record.slot.run_id} node {record.slot.node_id}"
            try:
                await self._delivery.deliver(record)
            except (Conflict, TooLarge) as refused:
                log.info("kept decision for %s dropped: %s", where, refused.message)
                continue
            delivered += 1
            log.info("kept decision for %s delivered", where)
        return delivered

    async def _sweep_forever(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.sweep()
            except Exception as err:  # noqa: BLE001 - the sweep outlives any one failure
                log.warning("review decision sweep: %s", err)
            await asyncio.sleep(max(0.0, self._every - (time.monotonic() - started)))
