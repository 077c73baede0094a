"""Pages in creation order, newest first and oldest first, from real Temporal visibility
(runs/listing.py), with no worker.

Executions are started on a task queue nobody polls, with chosen creation times, so the order
a page must have is known exactly: spread over years (some after today, so a first page's
anchor, now, falls inside the population), a burst within one millisecond, ties at one
microsecond, and runs from before the creation-time attribute (ordered by start time).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from runlane import search_attributes
from runlane.errors import InvalidInput
from runlane.paging import Order
from runs import listing
from runs.listing import CreationOrder, Position
from tests.api.helpers import wait_until

BASE = datetime(2024, 1, 1, tzinfo=UTC)


async def _start(client: Client, org: str, created: datetime | None) -> str:
    workflow_id = f"listing-{uuid.uuid4().hex[:12]}"
    pairs = [SearchAttributePair(search_attributes.ORGANIZATION, org)]
    if created is not None:
        pairs.append(
            SearchAttributePair(
                search_attributes.CREATED_AT_US, search_attributes.microseconds(created)
            )
        )
    await client.start_workflow(
        "NobodyRunsThis",
        id=workflow_id,
        task_queue=f"nobody-{uuid.uuid4().hex}",
        search_attributes=TypedSearchAttributes(pairs),
    )
    return workflow_id


@pytest.fixture
async def population(client: Client) -> tuple[str, list[str]]:
    """An organization's runs, and their ids newest-created first."""
    org = f"org_{uuid.uuid4().hex[:8]}"
    created = [BASE + timedelta(days=400 * i) for i in range(6)]  # years apart
    created += [BASE + timedelta(days=100, microseconds=i) for i in range(12)]  # one burst
    created += [BASE + timedelta(days=200)] * 3  # identical creation times
    dated = [(moment, await _start(client, org, moment)) for moment in created]
    expected = [run_id for _, run_id in sorted(dated, reverse=True)]
    # Started before the attribute existed: after every dated run, newest start first.
    legacy = [await _start(client, org, None) for _ in range(4)]
    expected += list(reversed(legacy))

    async def all_visible() -> bool:
        query = f"{search_attributes.ORGANIZATION.name} = '{org}'"
        return (await client.count_workflows(query)).count == len(expected)

    await wait_until(all_visible)
    return org, expected


async def _walk(
    listed: CreationOrder, org: str, limit: int, order: Order = "desc", **bounds: datetime
) -> list[str]:
    seen: list[str] = []
    position: Position | None = None
    for _ in range(100):
        page = await listed.page(
            f"{search_attributes.ORGANIZATION.name} = '{org}'",
            limit=limit,
            position=position,
            order=order,
            **bounds,
        )
        assert len(page.run_ids) <= limit
        seen += page.run_ids
        if page.next_position is None:
            return seen
        assert page.run_ids, "a page with a next cursor holds runs"
        position = Position.decode(page.next_position.encode(), order)
    raise AssertionError("paging did not end")


def _small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small windows, so the widening and the narrowing both happen with a few runs.
    monkeypatch.setattr(listing, "SMALLEST_WINDOW", 1)
    monkeypatch.setattr(listing, "WINDOW_PAGES", 1)
    monkeypatch.setattr(listing, "FIRST_SPAN", timedelta(milliseconds=1))


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("limit", [1, 2, 5, 50])
async def test_pages_follow_creation_order_whatever_the_window(
    client: Client,
    population: tuple[str, list[str]],
    limit: int,
    order: Order,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org, newest_first = population
    _small_windows(monkeypatch)
    expected = newest_first if order == "desc" else list(reversed(newest_first))
    assert await _walk(CreationOrder(client), org, limit, order) == expected


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("days", [-3000, 100, 5000])
async def test_any_now_gives_the_same_order(
    client: Client,
    population: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    order: Order,
    days: int,
) -> None:
    """A first page starts from now: before every run, inside the burst, after every run."""
    org, expected = population
    _small_windows(monkeypatch)
    now = BASE + timedelta(days=days)
    listed = CreationOrder(client, now=lambda: now)
    wanted = expected if order == "desc" else list(reversed(expected))
    assert await _walk(listed, org, 2, order) == wanted


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_the_usual_windows_give_the_same_order(
    client: Client, population: tuple[str, list[str]], order: Order
) -> None:
    org, expected = population
    wanted = expected if order == "desc" else list(reversed(expected))
    assert await _walk(CreationOrder(client), org, 3, order) == wanted


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_creation_bounds_select_dated_runs(
    client: Client,
    population: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    order: Order,
) -> None:
    org, expected = population
    _small_windows(monkeypatch)
    after, before = BASE + timedelta(days=100, microseconds=5), BASE + timedelta(days=400)
    walked = await _walk(
        CreationOrder(client), org, 4, order, created_after=after, created_before=before
    )
    # Three ties at day 200, then the burst from its 6th run on (day 100 + 5..11 µs).
    if order == "asc":
        walked.reverse()
    assert walked == expected[expected.index(walked[0]) :][: len(walked)]
    assert len(walked) == 3 + 7


async def test_a_cursor_goes_on_only_in_its_own_order(
    client: Client, population: tuple[str, list[str]]
) -> None:
    org, expected = population
    query = f"{search_attributes.ORGANIZATION.name} = '{org}'"
    for order, other in (("desc", "asc"), ("asc", "desc")):
        page = await CreationOrder(client).page(query, limit=2, position=None, order=order)
        assert page.next_position is not None
        cursor = page.next_position.encode()
        assert Position.decode(cursor, order) == page.next_position
        with pytest.raises(InvalidInput, match=f"order={order}") as raised:
            Position.decode(cursor, other)
        assert raised.value.code == "invalid_cursor"
