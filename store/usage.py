"""The effects ledger and usage records: what node activities sent and consumed.

Written by the worker (activities/usage.py), one short transaction per group of activity
attempts, never held open across a request; read by the run service (runs/usage.py) to
attach effects and usage to runs and steps, and summed per organization for `GET /v1/usage`.
Rows are only inserted, never updated: a write that landed twice would count twice, so the
worker writes a group once; when its transaction fails (as a whole: nothing of it landed), each
record is tried once on its own, so that one bad record does not lose the others, then dropped
and logged.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from store.db import Database
from store.tables import EffectRow, NodeUsageRow, UsageCostRow

# Bounds of what one row holds: a write must not fail on a value a column cannot take
# (one bad row would lose the rows written with it).
MAX_URL_CHARS = 8192
MAX_KEY_CHARS = 1024
MAX_UNIT_CHARS = 64


def _text(value: str, limit: int) -> str:
    # PostgreSQL text cannot hold NUL.
    return value.replace("\x00", "")[:limit]


@dataclass(frozen=True)
class RunRef:
    """Whose work it was: the run (its organization and workflow) and node, and the Temporal
    execution and activity attempt that did it."""

    organization_id: str
    workflow_id: str
    run_id: str
    node_id: str
    temporal_workflow_id: str
    temporal_run_id: str
    activity_attempt: int


@dataclass(frozen=True)
class EffectRecord:
    method: str
    url: str
    idempotency_key: str | None
    status_code: int | None
    bytes_sent: int
    bytes_received: int
    at: datetime
    item_index: int | None = None


@dataclass
class AttemptRecord:
    """One activity attempt's work for one node: the requests it sent, what it counts."""

    ref: RunRef
    at: datetime
    executions: int = 1
    activity_attempts: int = 1
    effects: list[EffectRecord] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=dict)


@dataclass
class Usage:
    """Totals, as the API shows them (API.md "Runs: more")."""

    nodes_executed: int = 0
    activity_attempts: int = 0
    http_requests: int = 0
    http_bytes_sent: int = 0
    http_bytes_received: int = 0
    cost: dict[str, float] = field(default_factory=dict)

    def add_cost(self, unit: str, amount: float) -> None:
        self.cost[unit] = self.cost.get(unit, 0) + amount


@dataclass(frozen=True)
class StoredEffect:
    node_id: str
    item_index: int | None
    temporal_workflow_id: str
    temporal_run_id: str
    activity_attempt: int
    method: str
    url: str
    idempotency_key: str | None
    status_code: int | None
    at: datetime


@dataclass
class RunLedger:
    """A run's effects (in the order sent) and usage, per node and in total."""

    effects: list[StoredEffect] = field(default_factory=list)
    nodes: dict[str, Usage] = field(default_factory=dict)
    total: Usage = field(default_factory=Usage)


def _new_id() -> str:
    return uuid.uuid4().hex


def _usage_columns() -> tuple:
    return (
        func.coalesce(func.sum(NodeUsageRow.executions), 0),
        func.coalesce(func.sum(NodeUsageRow.activity_attempts), 0),
        func.coalesce(func.sum(NodeUsageRow.http_requests), 0),
        func.coalesce(func.sum(NodeUsageRow.http_bytes_sent), 0),
        func.coalesce(func.sum(NodeUsageRow.http_bytes_received), 0),
    )


def _usage(values: Sequence[int]) -> Usage:
    executions, attempts, requests, sent, received = (int(v) for v in values)
    return Usage(
        nodes_executed=executions,
        activity_attempts=attempts,
        http_requests=requests,
        http_bytes_sent=sent,
        http_bytes_received=received,
    )


class UsageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ------------------------------------------------------------------ writing

    async def record(self, attempts: Iterable[AttemptRecord]) -> None:
        """Insert the attempts' rows in one transaction."""
        rows: list[EffectRow | NodeUsageRow | UsageCostRow] = []
        for attempt in attempts:
            ref = attempt.ref
            common = {
                "organization_id": ref.organization_id,
                "workflow_id": ref.workflow_id,
                "run_id": ref.run_id,
                "node_id": ref.node_id,
            }
            execution = {
                "temporal_workflow_id": ref.temporal_workflow_id,
                "temporal_run_id": ref.temporal_run_id,
                "activity_attempt": ref.activity_attempt,
            }
            for effect in attempt.effects:
                rows.append(
                    EffectRow(
                        id=_new_id(),
                        **common,
                        **execution,
                        item_index=effect.item_index,
                        method=_text(effect.method, 16),
                        url=_text(effect.url, MAX_URL_CHARS),
                        idempotency_key=(
                            _text(effect.idempotency_key, MAX_KEY_CHARS)
                            if effect.idempotency_key is not None
                            else None
                        ),
                        status_code=effect.status_code,
                        bytes_sent=effect.bytes_sent,
                        bytes_received=effect.bytes_received,
                        at=effect.at,
                    )
                )
            rows.append(
                NodeUsageRow(
                    id=_new_id(),
                    **common,
                    **execution,
                    executions=attempt.executions,
                    activity_attempts=attempt.activity_attempts,
                    http_requests=len(attempt.effects),
                    http_bytes_sent=sum(e.bytes_sent for e in attempt.effects),
                    http_bytes_received=sum(e.bytes_received for e in attempt.effects),
                    at=attempt.at,
                )
            )
            for unit, amount in attempt.costs.items():
                rows.append(
                    UsageCostRow(
                        id=_new_id(),
                        **common,
                        unit=_text(unit, MAX_UNIT_CHARS),
                        amount=float(amount),
                        at=attempt.at,
                    )
                )
        if not rows:
            return
        async with self._db.session() as session, session.begin():
            session.add_all(rows)

    # ------------------------------------------------------------------ reading

    async def run_ledger(self, run_id: str) -> RunLedger:
        """A run's effects and usage. Runs are read by id only once the caller checked the
        run is the organization's (the run service reads it from Temporal first)."""
        ledger = RunLedger()
        async with self._db.session() as session:
            effects = await session.execute(
                select(
                    EffectRow.node_id,
                    EffectRow.item_index,
                    EffectRow.temporal_workflow_id,
                    EffectRow.temporal_run_id,
                    EffectRow.activity_attempt,
                    EffectRow.method,
                    EffectRow.url,
                    EffectRow.idempotency_key,
                    EffectRow.status_code,
                    EffectRow.at,
                )
                .where(EffectRow.run_id == run_id)
                .order_by(EffectRow.at, EffectRow.id)
            )
            ledger.effects = [StoredEffect(**row._asdict()) for row in effects]
            usage = await session.execute(
                select(NodeUsageRow.node_id, *_usage_columns())
                .where(NodeUsageRow.run_id == run_id)
                .group_by(NodeUsageRow.node_id)
            )
            for node_id, *values in usage:
                ledger.nodes[node_id] = _usage(values)
            costs = await session.execute(
                select(UsageCostRow.node_id, UsageCostRow.unit, func.sum(UsageCostRow.amount))
                .where(UsageCostRow.run_id == run_id)
                .group_by(UsageCostRow.node_id, UsageCostRow.unit)
            )
            for node_id, unit, amount in costs:
                ledger.nodes.setdefault(node_id, Usage()).add_cost(unit, amount)
        for node_usage in ledger.nodes.values():
            _add(ledger.total, node_usage)
        return ledger

    async def run_totals(self, run_ids: Sequence[str]) -> dict[str, Usage]:
        """The usage of each run (runs with none recorded are left out)."""
        if not run_ids:
            return {}
        totals: dict[str, Usage] = defaultdict(Usage)
        async with self._db.session() as session:
            usage = await session.execute(
                select(NodeUsageRow.run_id, *_usage_columns())
                .where(NodeUsageRow.run_id.in_(list(run_ids)))
                .group_by(NodeUsageRow.run_id)
            )
            for run_id, *values in usage:
                totals[run_id] = _usage(values)
            costs = await session.execute(
                select(UsageCostRow.run_id, UsageCostRow.unit, func.sum(UsageCostRow.amount))
                .where(UsageCostRow.run_id.in_(list(run_ids)))
                .group_by(UsageCostRow.run_id, UsageCostRow.unit)
            )
            for run_id, unit, amount in costs:
                totals[run_id].add_cost(unit, amount)
        return dict(totals)

    async def organization_totals(
        self,
        organization_id: str,
        *,
        start: datetime | None,
        end: datetime | None,
        workflow_id: str | None = None,
    ) -> Usage:
        """The organization's usage recorded at `start` or later and before `end`."""
        usage_filter = [NodeUsageRow.organization_id == organization_id]
        cost_filter = [UsageCostRow.organization_id == organization_id]
        if start is not None:
            usage_filter.append(NodeUsageRow.at >= start)
            cost_filter.append(UsageCostRow.at >= start)
        if end is not None:
            usage_filter.append(NodeUsageRow.at < end)
            cost_filter.append(UsageCostRow.at < end)
        if workflow_id is not None:
            usage_filter.append(NodeUsageRow.workflow_id == workflow_id)
            cost_filter.append(UsageCostRow.workflow_id == workflow_id)
        async with self._db.session() as session:
            [values] = (await session.execute(select(*_usage_columns()).where(*usage_filter))).all()
            total = _usage(values)
            costs = await session.execute(
                select(UsageCostRow.unit, func.sum(UsageCostRow.amount))
                .where(*cost_filter)
                .group_by(UsageCostRow.unit)
            )
            for unit, amount in costs:
                total.add_cost(unit, amount)
        return total


def _add(total: Usage, part: Usage) -> None:
    total.nodes_executed += part.nodes_executed
    total.activity_attempts += part.activity_attempts
    total.http_requests += part.http_requests
    total.http_bytes_sent += part.http_bytes_sent
    total.http_bytes_received += part.http_bytes_received
    for unit, amount in part.cost.items():
        total.add_cost(unit, amount)
