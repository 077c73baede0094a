"""Workflows as the API sees them: drafts, listing, publishing, snapshots, org isolation."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest

from store.db import Database
from store.migrate import upgrade_to_head
from store.pagination import CursorOrderMismatch, InvalidCursor
from store.workflows import WorkflowRecord, WorkflowRepository

ORG = "org_a"
OTHER_ORG = "org_b"


def definition(label: str) -> dict[str, object]:
    return {
        "nodes": [{"id": "in", "type": "start_text", "label": label}, {"id": "out", "type": "end"}],
        "edges": [{"source": "in", "target": "out"}],
    }


async def create(workflows: WorkflowRepository, name: str = "Invoices") -> WorkflowRecord:
    return await workflows.create(ORG, name=name, description="", definition=definition(name))


async def test_create_then_get_returns_the_same_workflow(workflows: WorkflowRepository) -> None:
    created = await workflows.create(
        ORG, name="Invoices", description="Monthly", definition=definition("v1")
    )

    fetched = await workflows.get(ORG, created.id)

    assert fetched == created
    assert created.id.startswith("wf_")
    assert created.organization_id == ORG
    assert created.description == "Monthly"
    assert created.draft_definition == definition("v1")
    assert created.published_snapshot_id is None
    for moment in (created.created_at, created.updated_at, created.draft_updated_at):
        assert moment.utcoffset() == timedelta(0)


async def test_timestamps_survive_the_round_trip_as_aware_utc(
    workflows: WorkflowRepository,
) -> None:
    created = await create(workflows)

    fetched = await workflows.get(ORG, created.id)

    assert fetched is not None
    assert fetched.created_at.tzinfo is not None
    assert fetched.created_at == created.created_at
    assert fetched.created_at.astimezone(UTC) == created.created_at


async def test_unknown_and_other_organizations_workflows_are_missing(
    workflows: WorkflowRepository,
) -> None:
    created = await create(workflows)

    assert await workflows.get(OTHER_ORG, created.id) is None
    assert await workflows.get(ORG, "wf_doesnotexist") is None
    assert await workflows.replace_draft(OTHER_ORG, created.id, definition("x")) is None
    assert await workflows.publish(OTHER_ORG, created.id) is None
    assert (await workflows.list(OTHER_ORG, limit=50, cursor=None)).items == []


@pytest.mark.parametrize("odd", ["wf_\x00", "wf_" + "0" * 500, "ワークフロー", ""])
async def test_ids_this_store_never_issues_are_missing(
    workflows: WorkflowRepository, odd: str
) -> None:
    # Never reaching the database: PostgreSQL refuses NUL in a query outright.
    assert await workflows.get(ORG, odd) is None
    assert await workflows.published_head(ORG, odd) is None
    assert await workflows.replace_draft(ORG, odd, definition("x")) is None
    assert await workflows.publish(ORG, odd) is None
    assert await workflows.get_snapshot(ORG, odd.replace("wf_", "snap_")) is None


async def test_json_keeps_nul_characters_on_every_backend(workflows: WorkflowRepository) -> None:
    # Text columns cannot hold NUL on PostgreSQL (the API refuses it there); JSON columns can.
    created = await workflows.create(
        ORG, name="n", description="", definition={"nodes": [], "vars": {"a\x00": "b\x00"}}
    )
    fetched = await workflows.get(ORG, created.id)
    assert fetched is not None and fetched.draft_definition["vars"] == {"a\x00": "b\x00"}


async def test_list_pages_newest_first_without_duplicates(workflows: WorkflowRepository) -> None:
    created = [await create(workflows, f"wf {i}") for i in range(7)]

    seen: list[WorkflowRecord] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await workflows.list(ORG, limit=3, cursor=cursor)
        seen.extend(page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert pages == 3
    assert [w.id for w in seen] == [w.id for w in reversed(created)]


async def test_list_pages_oldest_first_with_asc(workflows: WorkflowRepository) -> None:
    created = [await create(workflows, f"wf {i}") for i in range(7)]

    seen: list[WorkflowRecord] = []
    cursor: str | None = None
    while True:
        page = await workflows.list(ORG, limit=3, cursor=cursor, order="asc")
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        await create(workflows, "newer")  # created meanwhile: listed at the end

    assert [w.id for w in seen][:7] == [w.id for w in created]
    assert [w.name for w in seen][7:] == ["newer", "newer"]


async def test_a_cursor_goes_on_only_in_its_own_order(workflows: WorkflowRepository) -> None:
    workflow = await create(workflows)
    await create(workflows, "second")
    for _ in range(2):
        await workflows.publish(ORG, workflow.id)
    for order, other in (("desc", "asc"), ("asc", "desc")):
        listed = await workflows.list(ORG, limit=1, cursor=None, order=order)
        snapshots = await workflows.list_snapshots(
            ORG, workflow.id, limit=1, cursor=None, order=order
        )
        assert listed.next_cursor is not None and snapshots.next_cursor is not None
        with pytest.raises(CursorOrderMismatch, match=f"order={order}"):
            await workflows.list(ORG, limit=1, cursor=listed.next_cursor, order=other)
        with pytest.raises(CursorOrderMismatch, match=f"order={order}"):
            await workflows.list_snapshots(
                ORG, workflow.id, limit=1, cursor=snapshots.next_cursor, order=other
            )


async def test_list_with_an_exact_multiple_of_the_limit_ends_without_a_cursor(
    workflows: WorkflowRepository,
) -> None:
    for i in range(4):
        await create(workflows, f"wf {i}")

    first = await workflows.list(ORG, limit=2, cursor=None)
    second = await workflows.list(ORG, limit=2, cursor=first.next_cursor)

    assert len(first.items) == len(second.items) == 2
    assert second.next_cursor is None


async def test_pages_stay_stable_when_workflows_are_created_meanwhile(
    workflows: WorkflowRepository,
) -> None:
    older = [await create(workflows, f"old {i}") for i in range(4)]
    first = await workflows.list(ORG, limit=2, cursor=None)

    await create(workflows, "newer")
    rest = await workflows.list(ORG, limit=50, cursor=first.next_cursor)

    assert [w.id for w in first.items + rest.items] == [w.id for w in reversed(older)]


@pytest.mark.parametrize(
    "cursor", ["not-a-cursor!", "e30", "WyJ4Il0", "WzEsMl0", "WyJub3QgYSBkYXRlIiwid2ZfMSJd", ""]
)
async def test_an_invalid_cursor_is_rejected(workflows: WorkflowRepository, cursor: str) -> None:
    await create(workflows)

    with pytest.raises(InvalidCursor):
        await workflows.list(ORG, limit=10, cursor=cursor)


async def test_a_snapshot_cursor_is_not_a_workflow_cursor(workflows: WorkflowRepository) -> None:
    workflow = await create(workflows)
    for _ in range(2):
        await workflows.publish(ORG, workflow.id)
    snapshots = await workflows.list_snapshots(ORG, workflow.id, limit=1, cursor=None)
    assert snapshots.next_cursor is not None

    with pytest.raises(InvalidCursor):
        await workflows.list(ORG, limit=10, cursor=snapshots.next_cursor)


async def test_replace_draft_changes_the_draft_and_bumps_updated_at(
    workflows: WorkflowRepository,
) -> None:
    created = await create(workflows)

    replaced = await workflows.replace_draft(ORG, created.id, definition("v2"))

    assert replaced is not None
    assert replaced.draft_definition == definition("v2")
    assert replaced.draft_updated_at >= created.draft_updated_at
    assert replaced.updated_at >= created.updated_at
    assert replaced.created_at == created.created_at
    assert await workflows.get(ORG, created.id) == replaced


async def test_publish_numbers_versions_and_sets_the_published_snapshot(
    workflows: WorkflowRepository,
) -> None:
    workflow = await create(workflows)

    first = await workflows.publish(ORG, workflow.id)
    second = await workflows.publish(ORG, workflow.id)

    assert first is not None and second is not None
    assert (first.version, second.version) == (1, 2)
    assert first.id.startswith("snap_")
    assert first.workflow_id == workflow.id
    assert first.organization_id == ORG
    current = await workflows.get(ORG, workflow.id)
    assert current is not None
    assert current.published_snapshot_id == second.id


async def test_versions_are_numbered_per_workflow(workflows: WorkflowRepository) -> None:
    one = await create(workflows, "one")
    two = await create(workflows, "two")
    await workflows.publish(ORG, one.id)
    await workflows.publish(ORG, one.id)

    snapshot = await workflows.publish(ORG, two.id)

    assert snapshot is not None
    assert snapshot.version == 1


async def test_a_snapshot_keeps_its_definition_when_the_draft_changes(
    workflows: WorkflowRepository,
) -> None:
    workflow = await create(workflows, "v1")
    snapshot = await workflows.publish(ORG, workflow.id)
    assert snapshot is not None

    await workflows.replace_draft(ORG, workflow.id, definition("v2"))

    again = await workflows.get_snapshot(ORG, snapshot.id)
    assert again == snapshot
    assert again.definition == definition("v1")


async def test_the_caller_mutating_its_definition_changes_nothing_stored(
    workflows: WorkflowRepository,
) -> None:
    mine = definition("v1")
    workflow = await workflows.create(ORG, name="n", description="", definition=mine)

    mine["nodes"] = []
    workflow.draft_definition["edges"] = []

    stored = await workflows.get(ORG, workflow.id)
    assert stored is not None
    assert stored.draft_definition == definition("v1")


async def test_snapshots_of_another_organization_are_missing(
    workflows: WorkflowRepository,
) -> None:
    workflow = await create(workflows)
    snapshot = await workflows.publish(ORG, workflow.id)
    assert snapshot is not None

    assert await workflows.get_snapshot(OTHER_ORG, snapshot.id) is None
    assert await workflows.get_snapshot(ORG, "snap_doesnotexist") is None
    other = await workflows.list_snapshots(OTHER_ORG, workflow.id, limit=10, cursor=None)
    assert other.items == []


async def test_snapshots_page_highest_version_first(workflows: WorkflowRepository) -> None:
    workflow = await create(workflows)
    for _ in range(5):
        await workflows.publish(ORG, workflow.id)

    versions: list[int] = []
    cursor: str | None = None
    while True:
        page = await workflows.list_snapshots(ORG, workflow.id, limit=2, cursor=cursor)
        versions.extend(s.version for s in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert versions == [5, 4, 3, 2, 1]

    versions = []
    cursor = None
    while True:
        page = await workflows.list_snapshots(ORG, workflow.id, limit=2, cursor=cursor, order="asc")
        versions.extend(s.version for s in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert versions == [1, 2, 3, 4, 5]


async def test_an_invalid_snapshot_cursor_is_rejected(workflows: WorkflowRepository) -> None:
    workflow = await create(workflows)
    listing = await workflows.list(ORG, limit=1, cursor=None)
    await create(workflows, "second")
    listing = await workflows.list(ORG, limit=1, cursor=None)
    assert listing.next_cursor is not None

    for cursor in ("garbage", listing.next_cursor):
        with pytest.raises(InvalidCursor):
            await workflows.list_snapshots(ORG, workflow.id, limit=10, cursor=cursor)


async def test_concurrent_publishes_get_consecutive_versions(
    workflows: WorkflowRepository,
) -> None:
    workflow = await create(workflows)

    snapshots = await asyncio.gather(*(workflows.publish(ORG, workflow.id) for _ in range(10)))

    versions = sorted(s.version for s in snapshots if s is not None)
    assert versions == list(range(1, 11))
    listed = await workflows.list_snapshots(ORG, workflow.id, limit=50, cursor=None)
    assert [s.version for s in listed.items] == list(range(10, 0, -1))
    current = await workflows.get(ORG, workflow.id)
    assert current is not None
    assert current.published_snapshot_id == listed.items[0].id


async def test_migrating_again_keeps_the_workflows(
    db: Database, workflows: WorkflowRepository
) -> None:
    created = await create(workflows)

    await upgrade_to_head(db.engine.url.render_as_string(hide_password=False), schema=db.schema)

    assert await workflows.get(ORG, created.id) == created
