"""Effects and usage as runs and steps show them (API.md "Runs: more"), read from the ledger the
worker's node activities write (activities/usage.py, store/usage.py).

The ledger is not run state (Temporal owns that, DESIGN.md): it is the account of what the
nodes did outside Temporal, which Temporal's history cannot hold (the requests of attempts
that failed). Each row names the Temporal execution that wrote it; the run's attempts
(`RunState.attempts`, one Temporal execution each) say which run attempt that was. Rows of a
map's items come from the map's child workflow, whose execution no attempt names: those take
the attempt that had started when they were written.

Usage sums what the node activities recorded. Per step: `nodes_executed` counts the node's
executions by an activity or a batch of pure work (one per run attempt that ran it; a map
counts each item; a retried activity is still one execution; a `delay` is a timer, not an
execution; a `human_review` counts when its payload is rendered); `activity_attempts` the
attempts of its own activity, retries included (0 for pure nodes, which are evaluated
together in batches, and a map's pure items); `http_requests` and `http_bytes_*` the requests
it sent (bodies' bytes as they crossed the wire); `cost` the units its node type reported.
The run's usage is the sum of its steps'. A child run (subworkflow, a map's `workflow_id`
items) has usage of its own; the node that started it counts its preparation.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from activities.registry import NodeRegistry
from runlane.errors import InvalidInput, invalid
from store.usage import RunLedger, StoredEffect, Usage, UsageRepository
from workflows.models import AttemptRecord, RunState

log = logging.getLogger("runlane.usage")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class Effect:
    """One request a node sent, as its step shows it."""

    attempt: int
    activity_attempt: int
    method: str
    url: str
    idempotency_key: str | None
    status_code: int | None
    at: datetime


@dataclass
class StepLedger:
    usage: Usage = field(default_factory=Usage)
    # None: the node is not side-effecting (its step carries no `effects`).
    effects: list[Effect] | None = None


@dataclass(frozen=True)
class UsageWindow:
    start: datetime | None
    end: datetime
    workflow_id: str | None


def run_attempt(effect: StoredEffect, attempts: list[AttemptRecord], current: int) -> int:
    """The run attempt whose Temporal execution sent it; for a map item's (sent from the map's
    child workflow), the attempt that had started by then."""
    for attempt in attempts:
        if attempt.temporal_run_id == effect.temporal_run_id:
            return attempt.attempt
    started = [a.attempt for a in attempts if a.started_at <= effect.at]
    if started:
        return started[-1]
    return attempts[0].attempt if attempts else max(current, 1)


def _problem(field_name: str, message: str) -> InvalidInput:
    return invalid(
        "invalid_usage_query", message, [{"loc": ["query", field_name], "message": message}]
    )


def _utc(field_name: str, moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.utcoffset() is None:
        raise _problem(field_name, f"{field_name} must carry a timezone offset (RFC 3339).")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise _problem(field_name, f"{field_name} is out of range once in UTC.") from None


class RunUsage:
    """Attaches the ledger to what the run service reads."""

    def __init__(self, repository: UsageRepository, registry: NodeRegistry) -> None:
        self._repository = repository
        self._registry = registry

    async def totals(self, run_ids: list[str]) -> dict[str, Usage | None]:
        """Each run's usage (zero for runs with nothing recorded). None when the store
        cannot be read: runs are Temporal's to show, the ledger only adds to them."""
        try:
            found = await self._repository.run_totals(run_ids)
        except (SQLAlchemyError, OSError) as err:
            log.warning("usage of %d runs not read: %r", len(run_ids), err)
            return dict.fromkeys(run_ids)
        return {run_id: found.get(run_id, Usage()) for run_id in run_ids}

    async def steps(self, state: RunState) -> dict[str, StepLedger]:
        """Each step's usage, and effects for steps of side-effecting nodes (or nodes that
        sent requests: a map whose inline node does). Nothing when the store cannot be read."""
        try:
            ledger: RunLedger = await self._repository.run_ledger(state.run_id)
        except (SQLAlchemyError, OSError) as err:
            log.warning("ledger of run %s not read: %r", state.run_id, err)
            return {}
        effects: dict[str, list[Effect]] = {}
        for stored in ledger.effects:
            effects.setdefault(stored.node_id, []).append(
                Effect(
                    attempt=run_attempt(stored, state.attempts, state.attempt),
                    activity_attempt=stored.activity_attempt,
                    method=stored.method,
                    url=stored.url,
                    idempotency_key=stored.idempotency_key,
                    status_code=stored.status_code,
                    at=stored.at,
                )
            )
        steps: dict[str, StepLedger] = {}
        for step in state.steps:
            spec = self._registry.get(step.node_type)
            side_effecting = spec is not None and spec.side_effecting
            sent = effects.get(step.node_id)
            steps[step.node_id] = StepLedger(
                usage=ledger.nodes.get(step.node_id, Usage()),
                effects=sent if sent is not None else ([] if side_effecting else None),
            )
        return steps

    async def organization(
        self,
        org: str,
        *,
        start: datetime | None,
        end: datetime | None,
        workflow_id: str | None,
        now: datetime,
    ) -> tuple[UsageWindow, Usage]:
        """The organization's usage recorded in [start, end) (end: now when not given)."""
        if workflow_id is not None and not _SAFE_ID.match(workflow_id):
            raise _problem("workflow_id", "workflow_id is not a valid workflow id.")
        start_utc = _utc("from", start)
        end_utc = _utc("to", end) or now
        if start_utc is not None and start_utc >= end_utc:
            raise _problem("to", "to must be later than from.")
        usage = await self._repository.organization_totals(
            org, start=start_utc, end=end_utc, workflow_id=workflow_id
        )
        return UsageWindow(start_utc, end_utc, workflow_id), usage
