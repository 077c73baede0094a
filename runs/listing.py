"""Pages of runs from Temporal visibility in creation order, newest or oldest first, at any
scale.

Visibility's SQL stores accept no `ORDER BY` (they list open executions first, then the rest by
close time), so a page is found by its creation-time window instead: counting, never fetching
everything. Each page takes the window at the start of what is left (its newest end when newest
first, its oldest end when oldest first) that holds at least one page of runs but not many more:
from an anchor (the cursor's key, a creation bound, or else now) windows widen sixteenfold from
a minute until they hold enough, and narrow by halving when a burst packs too many into one.
Only that window is listed and sorted. A page costs a few `count` queries and one listing of at
most `WINDOW_PAGES` pages of runs.

Runs carry their creation time as `RunlaneCreatedAtUs`, set at start. Runs started before that
attribute existed lack it; all of them are older than every run that has it, so they come after
them newest first and before them oldest first, ordered by their executions' start time (the
same moment for a run never retried from the start). The cursor names the order, the phase and
the last run returned.
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
from runlane.paging import Order

# A window holds at most this many pages of runs (and at least SMALLEST_WINDOW runs) before
# it is narrowed.
WINDOW_PAGES = 4
SMALLEST_WINDOW = 50
FIRST_SPAN = timedelta(minutes=1)
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


# Sort after and before every run id: positions "past everything at this key".
_AFTER_ALL_IDS = "\U0010ffff"
_BEFORE_ALL_IDS = ""


@dataclass(frozen=True)
class _Direction:
    """Everything newest first and oldest first differ in. Keys are compared as the list
    goes: `ahead(a, b)` when a comes before b in the list."""

    order: Order
    # PHASES in the order they are listed.
    phases: tuple[int, ...]
    # A key before every key (holding nothing) and the last key of all, in listing order.
    before_all: int
    last_key: int
    # Past every run at a key: the position that continues with the next key.
    past_ids: str

    @property
    def ascending(self) -> bool:
        return self.order == "asc"

    def ahead(self, a: int, b: int) -> bool:
        return a < b if self.ascending else a > b

    def further(self, key: int, by: int) -> int:
        return key + by if self.ascending else key - by

    def comes_after(self, listed: tuple[int, str], last: tuple[int, str]) -> bool:
        return listed > last if self.ascending else listed < last

    def next_phase(self, phase: int) -> int | None:
        index = self.phases.index(phase) + 1
        return self.phases[index] if index < len(self.phases) else None

    def remaining(
        self, key: int | None, after: int | None, before: int | None
    ) -> tuple[int | None, int | None]:
        """The keys [low, high] left from `key` (the last listed) within the bounds."""
        if self.ascending:
            return _highest(key, after), before
        return after, _lowest(key, before)

    def start_and_end(self, low: int | None, high: int | None) -> tuple[int | None, int | None]:
        return (low, high) if self.ascending else (high, low)

    def up_to(self, edge: int, low: int | None, high: int | None) -> tuple[int | None, int | None]:
        """[low, high] from its start up to `edge`."""
        return (low, _lowest(edge, high)) if self.ascending else (_highest(edge, low), high)

    def beyond(self, edge: int, low: int | None, high: int | None) -> tuple[int | None, int | None]:
        """[low, high] after `edge`."""
        return (edge + 1, high) if self.ascending else (low, edge - 1)

    def past(self, phase: int, edge: int) -> Position:
        """Where the list goes on after every run up to `edge`."""
        return Position(phase, self.further(edge, 1), self.past_ids, self.order)


_DIRECTIONS: dict[Order, _Direction] = {
    "desc": _Direction("desc", (0, 1), LATEST_US + 1, EARLIEST_US, _AFTER_ALL_IDS),
    "asc": _Direction("asc", (1, 0), EARLIEST_US - 1, LATEST_US, _BEFORE_ALL_IDS),
}


@dataclass(frozen=True)
class Position:
    """Where the next page starts: after run `run_id` created at `key` in `phase`, in `order`
    (below it newest first, above it oldest first)."""

    phase: int
    key: int | None = None
    run_id: str | None = None
    order: Order = "desc"

    def encode(self) -> str:
        raw: dict = {"p": self.phase, "k": self.key, "r": self.run_id}
        if self.order != "desc":  # newest-first cursors stay what they always were
            raw["o"] = self.order
        text = json.dumps(raw, separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, order: Order = "desc") -> Position:
        """The position in `cursor`; 422 when it is not one this API wrote, or was written for
        the other order."""
        if len(cursor) > MAX_CURSOR_CHARS:
            raise _bad_cursor()
        try:
            raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if not isinstance(raw, dict):
                raise _bad_cursor()
            position = cls(
                phase=raw["p"], key=raw["k"], run_id=raw["r"], order=raw.get("o", "desc")
            )
        except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):
            raise _bad_cursor() from None
        # `type(...) is int`: neither a bool nor a float (1.0 == 1) is a phase or a key.
        valid = (
            type(position.phase) is int
            and position.phase in range(len(PHASES))
            and (
                position.key is None
                or (type(position.key) is int and EARLIEST_US - 1 <= position.key <= LATEST_US + 1)
            )
            and (position.run_id is None or isinstance(position.run_id, str))
            and isinstance(position.order, str)
            and position.order in _DIRECTIONS
        )
        if not valid:
            raise _bad_cursor()
        if position.order != order:
            message = (
                f"cursor was returned for order={position.order}; list with that order to go "
                "on from it."
            )
            raise invalid(
                "invalid_cursor", message, [{"loc": ["query", "cursor"], "message": message}]
            )
        return position


# The cursors this API writes are well under 200 characters.
MAX_CURSOR_CHARS = 1024


def _bad_cursor() -> InvalidInput:
    message = "cursor is not one this API returned."
    return invalid("invalid_cursor", message, [{"loc": ["query", "cursor"], "message": message}])


@dataclass(frozen=True)
class Listed:
    """One page: the runs' ids in the page's order, the listed executions of each (a retried
    run has one per attempt), and where the next page starts (None: this was the last)."""

    run_ids: list[str]
    executions: dict[str, set[str]]
    next_position: Position | None


class CreationOrder:
    """Pages of runs by creation time, newest first (`desc`) or oldest first (`asc`)."""

    def __init__(self, client: Client, *, now: Callable[[], datetime] | None = None) -> None:
        self._client = client
        self._now = now or (lambda: datetime.now(UTC))

    async def page(
        self,
        base_query: str,
        *,
        limit: int,
        position: Position | None,
        order: Order = "desc",
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Listed:
        """Up to `limit` runs after `position` in `order`, created in
        [`created_after`, `created_before`)."""
        way = _DIRECTIONS[order]
        after = search_attributes.microseconds(created_after) if created_after else None
        before = search_attributes.microseconds(created_before) - 1 if created_before else None
        position = position or Position(phase=way.phases[0], order=order)
        if position.order != order:
            raise _bad_cursor()
        run_ids: list[str] = []
        executions: dict[str, set[str]] = {}
        while True:
            phase = PHASES[position.phase]
            query = f"{base_query} AND {phase.selects}"
            low, high = way.remaining(position.key, after, before)
            room = limit - len(run_ids)
            window = await self._window(query, phase, way, room, low, high)
            listed = sorted(
                (
                    e
                    for e in window.executions
                    if position.key is None
                    or way.comes_after(
                        (phase.key_of(e), e.id), (position.key, position.run_id or "")
                    )
                ),
                key=lambda e: (phase.key_of(e), e.id),
                reverse=not way.ascending,
            )
            candidates: list[str] = []
            for execution in listed:
                if execution.id not in executions:
                    candidates.append(execution.id)
                    executions[execution.id] = set()
                executions[execution.id].add(execution.run_id or "")
            taken = candidates[:room]
            for dropped in candidates[room:]:
                del executions[dropped]
            run_ids.extend(taken)
            if len(candidates) > room:
                last = next(e for e in listed if e.id == taken[-1])
                next_position = Position(position.phase, phase.key_of(last), last.id, order)
                return Listed(run_ids, executions, next_position)
            following = way.next_phase(position.phase)
            if window.edge is not None and await self._count(
                query, phase, *way.beyond(window.edge, low, high)
            ):
                position = way.past(position.phase, window.edge)
            elif following is not None:
                position = Position(following, order=order)
            else:
                return Listed(run_ids, executions, None)
            if len(run_ids) == limit:
                # Full: a next page only when something is left after it.
                more = await self._any_from(base_query, way, position, after, before)
                return Listed(run_ids, executions, position if more else None)

    async def _any_from(
        self,
        base_query: str,
        way: _Direction,
        position: Position,
        after: int | None,
        before: int | None,
    ) -> bool:
        phase_index: int | None = position.phase
        while phase_index is not None:
            phase = PHASES[phase_index]
            low, high = after, before
            if phase_index == position.phase:
                low, high = way.remaining(position.key, after, before)
            if await self._count(f"{base_query} AND {phase.selects}", phase, low, high):
                return True
            phase_index = way.next_phase(phase_index)
        return False

    async def _window(
        self,
        query: str,
        phase: _Phase,
        way: _Direction,
        wanted: int,
        low: int | None,
        high: int | None,
    ) -> _Window:
        """The stretch at the start of `query`'s keys [low, high] (in `way`'s order) holding
        more than `wanted` runs (when there are that many) but not many more than
        `WINDOW_PAGES` pages."""
        most = max(wanted * WINDOW_PAGES, SMALLEST_WINDOW)
        total = await self._count(query, phase, low, high)
        if total == 0:
            return _Window([], None)
        if total <= most:
            return _Window(await self._list(query, phase, low, high), None)

        async def holding(edge: int) -> int:
            return await self._count(query, phase, *way.up_to(edge, low, high))

        # A window runs from the start of [low, high] to an edge. `far` is an edge known to
        # hold more than `wanted` runs (at first: the end, which holds them all), `near` one
        # known (or, at the start, taken) to hold no more.
        start, end = way.start_and_end(low, high)
        last = end if end is not None else way.last_key
        far, far_count = last, total
        first_span = int(FIRST_SPAN.total_seconds() * 1_000_000)
        bracketed = False
        if start is not None:
            near = start
        else:
            # Nothing to start from (a first page): from now, where runs are usually created.
            anchor = search_attributes.microseconds(self._now())
            if way.ahead(last, anchor):
                anchor = last
            anchor_count = await holding(anchor)
            if anchor_count <= wanted:
                near = anchor
            else:
                # Enough already: back towards the start until an edge holds few.
                bracketed = True
                far, far_count = anchor, anchor_count
                span = first_span
                while True:
                    edge = way.further(anchor, -span)
                    if not way.ahead(way.before_all, edge):
                        near = way.before_all
                        break
                    count = await holding(edge)
                    if count <= wanted:
                        near = edge
                        break
                    far, far_count, span = edge, count, span * 16
        if not bracketed:
            # Onwards from `near`, sixteen times wider each time, until an edge holds enough.
            origin, span = near, first_span
            while way.ahead(edge := way.further(origin, span), last):
                count = await holding(edge)
                if count > wanted:
                    far, far_count = edge, count
                    break
                near, span = edge, span * 16
        # Too many in one burst: halve towards the near side while enough remain.
        while far_count > most and abs(far - near) > _NARROWEST_SPAN_US:
            middle = (near + far) // 2
            count = await holding(middle)
            if count > wanted:
                far, far_count = middle, count
            else:
                near = middle
        if far == last:
            return _Window(await self._list(query, phase, low, high), None)
        return _Window(await self._list(query, phase, *way.up_to(far, low, high)), far)

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
    # Where the window stops (its last key in the listing order); None when it reaches the
    # end of what is left.
    edge: int | None


def _highest(*bounds: int | None) -> int | None:
    given = [b for b in bounds if b is not None]
    return max(given) if given else None


def _lowest(*bounds: int | None) -> int | None:
    given = [b for b in bounds if b is not None]
    return min(given) if given else None
