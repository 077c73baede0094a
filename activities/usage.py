"""The effects ledger and usage, written by node activities as they work.

Why the activities write it, and not the workflow: Temporal's history holds an activity's final
outcome only. The requests a failed attempt sent, and what each attempt consumed, never reach
it; so the record of "every request actually sent" is written by the activity itself, when it
sends, into the relational store the worker already reaches for secrets (store/usage.py). The
run workflow does not change: the reader maps each row to the run attempt by the Temporal
execution that wrote it (runs/usage.py).

How it stays out of the node's way:

* Every node activity runs under a `Meter` (`metered`, applied by the node-type registry to
  each node type's activity): a context variable through which the node reports what it did
  (`record_effect`, for http_request) and plugins report cost units (`report_cost`).
* When the attempt ends, whatever its outcome, its record goes to the `Ledger`, which writes
  it in a short transaction of its own, after the request, never held open across it. Records
  that arrive while a write is in flight are written together by the next one (group commit):
  one transaction per burst, not per request.
* The attempt waits for its record to be written for at most `wait_s` (so that a run read
  right after it ended shows what it did), then carries on; the write goes on in the
  background. A store that cannot be reached is logged and the record dropped: the ledger is
  an account of the work, never a reason for the work to fail or wait.
* A worker crash between a request and the end of its attempt loses that attempt's record
  (the request was sent; nothing says so): the price of one write per attempt instead of one
  before and one after every request.

Plugins report cost units from inside their activity::

    from activities.usage import report_cost

    report_cost("llm_tokens", 1234)

Amounts add up per unit, per attempt, and show in the step's and the run's `usage.cost` and in
`GET /v1/usage`. Outside a node activity run by a Runlane worker, `report_cost` does nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from temporalio import activity
from temporalio.client import Client

from activities.models import NodeOutcome, NodeTaskInput, PureBatchInput
from runlane import search_attributes
from store.usage import AttemptRecord, EffectRecord, RunRef

log = logging.getLogger("runlane.usage")

_UNIT = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Records waiting for the store at most; beyond, new ones are dropped (and logged): a store
# down for long must not grow the worker's memory without bound.
MAX_PENDING = 10_000
# How long an attempt waits for its record to be written before it carries on.
DEFAULT_WAIT_S = 2.0
_CACHED_ORGANIZATIONS = 4096


class UsageStore(Protocol):
    async def record(self, attempts: Iterable[AttemptRecord]) -> None: ...


# Finds the organization of a run (by its id) when a task does not carry it: batches of runs
# started before batches carried it (worker.py looks the run up in Temporal).
OrganizationLookup = Callable[[str], Awaitable[str | None]]


def _now() -> datetime:
    return datetime.now(UTC)


def temporal_organizations(client: Client) -> OrganizationLookup:
    """Runs' organizations as their search attribute says (one describe per run and worker:
    the ledger keeps the answers)."""

    async def organization_of(run_id: str) -> str | None:
        description = await client.get_workflow_handle(run_id).describe()
        return description.typed_search_attributes.get(search_attributes.ORGANIZATION)

    return organization_of


# ---------------------------------------------------------------------------- the meter


@dataclass
class Meter:
    """What one activity attempt did for one node, reported while it runs."""

    record: AttemptRecord
    item_index: int | None = None

    def effect(
        self,
        *,
        method: str,
        url: str,
        idempotency_key: str | None,
        status_code: int | None,
        bytes_sent: int,
        bytes_received: int,
    ) -> None:
        self.record.effects.append(
            EffectRecord(
                method=method,
                url=url,
                idempotency_key=idempotency_key,
                status_code=status_code,
                bytes_sent=bytes_sent,
                bytes_received=bytes_received,
                at=_now(),
                item_index=self.item_index,
            )
        )

    def cost(self, unit: str, amount: float) -> None:
        costs = self.record.costs
        costs[unit] = costs.get(unit, 0) + amount


_current: ContextVar[Meter | None] = ContextVar("runlane_usage_meter", default=None)


def current_meter() -> Meter | None:
    return _current.get()


def record_effect(
    *,
    method: str,
    url: str,
    idempotency_key: str | None,
    status_code: int | None,
    bytes_sent: int,
    bytes_received: int,
) -> None:
    """A request the current node activity sent (`url` with secrets already as `***`);
    `status_code` None when no answer came. Nothing outside a metered activity."""
    meter = _current.get()
    if meter is not None:
        meter.effect(
            method=method,
            url=url,
            idempotency_key=idempotency_key,
            status_code=status_code,
            bytes_sent=bytes_sent,
            bytes_received=bytes_received,
        )


def report_cost(unit: str, amount: float) -> None:
    """Add `amount` of cost `unit` (e.g. "llm_tokens") to the current node's usage.

    `unit` matches `[A-Za-z0-9_.:-]{1,64}`; `amount` is a finite number >= 0 (ValueError
    otherwise: a plugin's mistake to fix, not a cost to guess). Call it from inside the node
    type's activity (an `async def`); reports of one attempt add up, and a failed attempt's
    reports count too (the cost was incurred). Outside a node activity it does nothing."""
    if not isinstance(unit, str) or not _UNIT.fullmatch(unit):
        raise ValueError(f"cost unit {unit!r} must match [A-Za-z0-9_.:-]{{1,64}}")
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise ValueError(f"cost amount {amount!r} must be a number")
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"cost amount {amount!r} must be finite and >= 0")
    meter = _current.get()
    if meter is None:
        log.debug("report_cost(%r, %r) outside a node activity: ignored", unit, amount)
        return
    meter.cost(unit, amount)


# ---------------------------------------------------------------------------- the ledger


class Ledger:
    """Writes attempt records to the store in groups, off the node's critical path."""

    def __init__(
        self,
        store: UsageStore,
        *,
        organizations: OrganizationLookup | None = None,
        wait_s: float = DEFAULT_WAIT_S,
    ) -> None:
        self._store = store
        self._organizations = organizations
        self._wait_s = wait_s
        self._pending: list[tuple[AttemptRecord, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        # Run id -> organization, for records whose task did not carry it.
        self._known: OrderedDict[str, str] = OrderedDict()

    async def record(self, *records: AttemptRecord) -> None:
        """Queue the records and wait (at most `wait_s`) until they are written or dropped."""
        if not records:
            return
        if len(self._pending) + len(records) > MAX_PENDING:
            log.warning(
                "usage ledger: %d records waiting for the store; dropping %d",
                len(self._pending),
                len(records),
            )
            return
        loop = asyncio.get_running_loop()
        futures = []
        for record in records:
            future: asyncio.Future[None] = loop.create_future()
            self._pending.append((record, future))
            futures.append(future)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain())
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*futures)), self._wait_s)
        except TimeoutError:
            log.warning(
                "usage ledger: the store took over %.1f s; the node carries on, the write "
                "continues in the background",
                self._wait_s,
            )

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (a worker shutting down), for at most `timeout`."""
        writer = self._writer
        if writer is not None and not writer.done():
            try:
                await asyncio.wait_for(asyncio.shield(writer), timeout)
            except TimeoutError:
                log.warning("usage ledger: %d records not written at shutdown", len(self._pending))

    async def _drain(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            try:
                await self._write([record for record, _ in group])
            finally:
                for _, future in group:
                    if not future.done():
                        future.set_result(None)

    async def _write(self, records: list[AttemptRecord]) -> None:
        records = [r for r in [await self._with_organization(r) for r in records] if r]
        try:
            await self._store.record(records)
            return
        except Exception as err:  # noqa: BLE001 - the ledger never fails the node
            if len(records) == 1:
                log.warning("usage ledger: a record was not written (%r)", err)
                return
            first_error = err
        # One bad record must not lose the others: each on its own.
        lost = 0
        for record in records:
            try:
                await self._store.record([record])
            except Exception:  # noqa: BLE001
                lost += 1
        if lost:
            log.warning(
                "usage ledger: %d of %d records not written (%r)", lost, len(records), first_error
            )

    async def _with_organization(self, record: AttemptRecord) -> AttemptRecord | None:
        ref = record.ref
        if ref.organization_id:
            return record
        organization = self._known.get(ref.run_id)
        if organization is None and self._organizations is not None:
            try:
                organization = await self._organizations(ref.run_id)
            except Exception as err:  # noqa: BLE001
                log.warning("usage ledger: run %s not found (%r)", ref.run_id, err)
            if organization:
                self._known[ref.run_id] = organization
                while len(self._known) > _CACHED_ORGANIZATIONS:
                    self._known.popitem(last=False)
        if not organization:
            # Counted for the run still; only the organization's totals miss it.
            return record
        record.ref = dataclasses.replace(ref, organization_id=organization)
        return record


# ---------------------------------------------------------------------------- activities


def _ref(run_id: str, workflow_id: str, organization_id: str, node_id: str) -> RunRef:
    info = activity.info()
    return RunRef(
        organization_id=organization_id,
        workflow_id=workflow_id,
        run_id=run_id,
        node_id=node_id,
        temporal_workflow_id=info.workflow_id or "",
        temporal_run_id=info.workflow_run_id or "",
        activity_attempt=info.attempt,
    )


def task_meter(task: NodeTaskInput) -> Meter:
    """The meter of a node activity's attempt. A map's item counts for the map's node."""
    node_id = task.node.id
    if task.index is not None:
        node_id = node_id.rsplit("[", 1)[0]
    ref = _ref(task.run_id, task.workflow_id, task.organization_id, node_id)
    record = AttemptRecord(
        ref=ref,
        at=_now(),
        # A node's execution begins with its first attempt; retries are attempts of it.
        executions=1 if ref.activity_attempt == 1 else 0,
    )
    return Meter(record, item_index=task.index)


def metered(fn: Callable[..., Any], ledger: Ledger | None) -> Callable[..., Any]:
    """The node type's activity `fn`, run under a meter whose record goes to `ledger`.
    Activities that are not coroutines (run in a thread) are left as they are: the meter
    lives in the event loop's context."""
    if ledger is None or not inspect.iscoroutinefunction(fn):
        return fn
    definition = getattr(fn, "__temporal_activity_definition", None)
    name = getattr(definition, "name", None)
    if name is None:
        return fn

    @functools.wraps(fn, updated=())
    async def run(*args: Any) -> Any:
        first = args[0] if args else None
        # A node's task, or an input wrapping one (a subworkflow node's preparation).
        task = first if isinstance(first, NodeTaskInput) else getattr(first, "task", None)
        if not isinstance(task, NodeTaskInput):
            return await fn(*args)
        meter = task_meter(task)
        token = _current.set(meter)
        try:
            return await fn(*args)
        finally:
            _current.reset(token)
            await ledger.record(meter.record)

    return activity.defn(name=name)(run)


def chunk_record(task: NodeTaskInput, items: int) -> AttemptRecord:
    """A chunk of a map's pure items, evaluated in one local activity: an execution of the
    map's inline node per item, no activity attempt of their own (like a batch's nodes)."""
    ref = _ref(task.run_id, task.workflow_id, task.organization_id, task.node.id)
    return AttemptRecord(ref=ref, at=_now(), executions=items, activity_attempts=0)


def batch_records(batch: PureBatchInput, outcomes: Iterable[NodeOutcome]) -> list[AttemptRecord]:
    """A batch of pure work: one node execution for each node it evaluated (not those it
    skipped, nor those a reset's batch took back from before the reset). They share the
    batch's local activity, so none counts an activity attempt of its own."""
    at = _now()
    records = []
    for outcome in outcomes:
        if outcome.reused or outcome.status == "skipped":
            continue
        records.append(
            AttemptRecord(
                ref=_ref(batch.run_id, batch.workflow_id, batch.organization_id, outcome.node_id),
                at=at,
                executions=1,
                activity_attempts=0,
            )
        )
    return records
