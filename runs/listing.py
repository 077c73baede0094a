"""Pages of runs from Temporal visibility, newest first by creation time, at any scale.

Visibility's SQL stores accept no `ORDER BY` (they list open executions first, then the rest by
close time), so a page is found by its creation-time window instead: counting, never fetching
everything. Each page takes the newest window (below the cursor) that holds at least one page
of runs but not many more: windows widen sixteenfold from a minute until they hold enough, and
narrow by halving when a burst packs too many into one. Only that window is listed and sorted.
A page costs a few `count` queries and one listing of at most `WINDOW_PAGES` pages of runs.

Runs carry their creation time as `RunlaneCreatedAtUs`, set at start. Runs started before that
attribute existed lack it; all of them are older than every run that has it, so they come after
them, ordered by their executions' start time (the same moment for a run never retried from
the start). The cursor names the phase and the last run returned.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowExecution

from runlane import search_attributes
from runlane.errors import InvalidInput, invalid

# A window holds at most this many pages of runs (and at least SMALLEST_WINDOW runs) before
# it is narrowed.
WINDOW_PAGES = 4
SMALLEST_WINDOW = 50
FIRST_SPAN = timedelta(minutes=1)
_WIDEST_SPAN = timedelta(days=365 * 200)
_NARROWEST_SPAN_US = 1_000
_CREATED = search_attributes.CREATED_AT_US.name


@dataclass(frozen=True)
class _Phase:
    """How one generation of runs is ordered: a clause that selects it, the column it is
    ordered by (with how a key is written in a query), and the key of a listed execution."""

    selects: str
    column: str
    literal: Callable[[int], str]
    key_of: Callable[[WorkflowExecution], int]

    def key_range(self, low: int | None, high: int | None) -> list[str]:
        clauses = []
        if low is not None:
            clauses.append(f"{self.column} >= {self.literal(low)}")
        if high is not None:
            clauses.append(f"{self.column} <= {self.literal(high)}")
        return clauses


PHASES = (
    _Phase(
        f"{_CREATED} IS NOT NULL",
        _CREATED,
        str,
        lambda e: e.typed_search_attributes.get(search_attributes.CREATED_AT_US) or 0,
    ),
    _Phase(
        f"{_CREATED} IS NULL",
        "StartTime",
        lambda us: f"'{_rfc3339(us)}'",
        lambda e: search_attributes.microseconds(e.start_time),
    ),
)


# Every key a run can have lies between these: creation and start times are datetimes, whose
# years run from 1 to 9999.
EARLIEST_US = search_attributes.microseconds(datetime.min.replace(tzinfo=UTC))
LATEST_US = search_attributes.microseconds(datetime.max.replace(tzinfo=UTC))


def _rfc3339(us: int) -> str:
    # A bound outside the years datetime can hold (a filter of 0001-01-01T00:00:00+14:00 is
    # one in UTC) selects exactly what the nearest representable one does: no run lies beyond.
    moment = datetime.min.replace(tzinfo=UTC) + timedelta(
        microseconds=min(max(us, EARLIEST_US), LATEST_US) - EARLIEST_US
    )
    # isoformat, not strftime: "%Y" writes year 1 as "1", which Temporal cannot parse.
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True)
class Position:
    """Where the next page starts: below run `run_id` created at `key` in `phase`."""

    phase: int
    key: int | None = None
    run_id: str | None = None

    def encode(self) -> str:
        raw = json.dumps({"p": self.phase, "k": self.key, "r": self.run_id}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise _bad_cursor()
        try:
            raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            position = cls(phase=raw["p"], key=raw["k"], run_id=raw["r"])
        except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):
            raise _bad_cursor() from None
        # `type(...) is int`: neither a bool nor a float (1.0 == 1) is a phase or a key.
        valid = (
            type(position.phase) is int
            and position.phase in range(len(PHASES))
            and (
                position.key is None
                or (type(position.key) is int and EARLIEST_US - 1 <= position.key <= LATEST_US)
            )
            and (position.run_id is None or isinstance(position.run_id, str))
        )
        if not valid:
            raise _bad_cursor()
        return position


# The cursors this API writes are well under 200 characters.
MAX_CURSOR_CHARS = 1024


def _bad_cursor() -> InvalidInput:
    message = "cursor is not one this API returned."
    return invalid("invalid_cursor", message, [{"loc": ["query", "cursor"], "message": message}])


@dataclass(frozen=True)
class Listed:
    """One page: the runs' ids newest first, the listed executions of each (a retried run has
    one per attempt), and where the next page starts (None: this was the last)."""

    run_ids: list[str]
    executions: dict[str, set[str]]
    next_position: Position | None


# Sorts after every run id: a position "below everything at this key".
_AFTER_ALL_IDS = "\U0010ffff"


class NewestFirst:
    def __init__(self, client: Client, *, now: Callable[[], datetime] | None = None) -> None:
        self._client = client
        self._now = now or (lambda: datetime.now(UTC))

    async def page(
        self,
        base_query: str,
        *,
        limit: int,
        position: Position | None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Listed:
        """Up to `limit` runs below `position`, newest-created first, created in
        [`created_after`, `created_before`)."""
        after = search_attributes.microseconds(created_after) if created_after else None
        before = search_attributes.microseconds(created_before) - 1 if created_before else None
        position = position or Position(phase=0)
        run_ids: list[str] = []
        executions: dict[str, set[str]] = {}
        while True:
            phase = PHASES[position.phase]
            query = f"{base_query} AND {phase.selects}"
            high = _lowest(position.key, before)
            room = limit - len(run_ids)
            window = await self._window(query, phase, room, after, high)
            below = sorted(
                (
                    e
                    for e in window.executions
                    if position.key is None
                    or (phase.key_of(e), e.id) < (position.key, position.run_id or "")
                ),
                key=lambda e: (phase.key_of(e), e.id),
                reverse=True,
            )
            candidates: list[str] = []
            for execution in below:
                if execution.id not in executions:
                    candidates.append(execution.id)
                    executions[execution.id] = set()
                executions[execution.id].add(execution.run_id or "")
            taken = candidates[:room]
            for dropped in candidates[room:]:
                del executions[dropped]
            run_ids.extend(taken)
            if len(candidates) > room:
                last = next(e for e in below if e.id == taken[-1])
                next_position = Position(position.phase, phase.key_of(last), last.id)
                return Listed(run_ids, executions, next_position)
            if window.low is not None and await self._count(query, phase, after, window.low - 1):
                assert window.low is not None
                position = Position(position.phase, window.low - 1, _AFTER_ALL_IDS)
            elif position.phase + 1 < len(PHASES):
                position = Position(position.phase + 1)
            else:
                return Listed(run_ids, executions, None)
            if len(run_ids) == limit:
                # Full: a next page only when something is left below.
                rest = await self._count_from(base_query, position, after, before)
                return Listed(run_ids, executions, position if rest else None)

    async def _count_from(
        self, base_query: str, position: Position, after: int | None, before: int | None
    ) -> int:
        total = 0
        for index in range(position.phase, len(PHASES)):
            phase = PHASES[index]
            high = _lowest(position.key, before) if index == position.phase else before
            total += await self._count(f"{base_query} AND {phase.selects}", phase, after, high)
        return total

    async def _window(
        self, query: str, phase: _Phase, wanted: int, low_bound: int | None, high: int | None
    ) -> _Window:
        """The newest stretch of `query` at or below `high` holding more than `wanted` runs
        (when there are that many) but not many more than `WINDOW_PAGES` pages."""
        most = max(wanted * WINDOW_PAGES, SMALLEST_WINDOW)
        total = await self._count(query, phase, low_bound, high)
        if total == 0:
            return _Window([], None)
        if total <= most:
            return _Window(await self._list(query, phase, low_bound, high), None)
        top = high if high is not None else search_attributes.microseconds(self._now())
        span = int(FIRST_SPAN.total_seconds() * 1_000_000)
        narrow = 0  # a span known to hold too few
        widest = int(_WIDEST_SPAN.total_seconds() * 1_000_000)
        low: int | None
        while True:
            low = top - span
            if (low_bound is not None and low <= low_bound) or span >= widest:
                # Reaches the bottom; `total` (more than `most`) is known to hold enough.
                low, count = low_bound, total
                break
            count = await self._count(query, phase, low, high)
            if count > wanted:
                break
            narrow, span = span, span * 16
        # Too many in one burst: halve towards the narrow side while enough remain.
        while count > most and span - narrow > _NARROWEST_SPAN_US:
            middle = (span + narrow) // 2
            middle_count = await self._count(query, phase, _highest(top - middle, low_bound), high)
            if middle_count > wanted:
                span, count, low = middle, middle_count, _highest(top - middle, low_bound)
            else:
                narrow = middle
        return _Window(await self._list(query, phase, low, high), low)

    async def _count(self, query: str, phase: _Phase, low: int | None, high: int | None) -> int:
        full = " AND ".join([query, *phase.key_range(low, high)])
        return (await self._client.count_workflows(full)).count

    async def _list(
        self, query: str, phase: _Phase, low: int | None, high: int | None
    ) -> list[WorkflowExecution]:
        full = " AND ".join([query, *phase.key_range(low, high)])
        return [e async for e in self._client.list_workflows(full, page_size=1000)]


@dataclass(frozen=True)
class _Window:
    executions: list[WorkflowExecution]
    # The window's lower key bound; None when it reaches the oldest run.
    low: int | None


def _highest(value: int, bound: int | None) -> int:
    return value if bound is None else max(value, bound)


def _lowest(*bounds: int | None) -> int | None:
    given = [b for b in bounds if b is not None]
    return min(given) if given else None
