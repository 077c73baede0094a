"""What a run emits (workflows/events.py), seen from the hand-over activity: which events,
in which order, with which run snapshot; nothing for a run whose organization subscribes to
nothing; and histories with events replay. Delivery itself: tests/triggers/."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.registry import ActivityDeps, default_registry
from api.deps import get_run_service
from runlane.settings import Settings
from runs.factory import run_service
from store.db import Database
from store.secrets import SecretRepository
from tests.api.helpers import (
    assert_replays,
    create_published,
    review_definition,
    wait_for_run,
    wait_until,
)
from tests.peer import Peer
from tests.recovery.support import RUNS, chain, http_node
from workflows.events import EMIT_EVENTS, EVENT_TYPES, EmittedEvents, RunEvent
from workflows.worker import create_worker


class Subscribed:
    """An organization subscribed to every event type (the store's answer, in one line)."""

    def __init__(self, types: tuple[str, ...] = EVENT_TYPES) -> None:
        self.types = list(types)

    async def subscribed_event_types(self, organization_id: str) -> list[str]:
        return self.types


class HandedOver:
    """Registered as the hand-over activity: keeps what the runs emitted."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    @activity.defn(name=EMIT_EVENTS)
    async def emit(self, emitted: EmittedEvents) -> None:
        self.events.extend(emitted.events)

    def of(self, run_id: str) -> list[RunEvent]:
        """The run's events, each once (a retry hands over its reset task's events again,
        under the same id for run.started: deliveries are by id)."""
        unique = {event.id: event for event in self.events if event.run_id == run_id}
        return list(unique.values())

    async def last_is(self, run_id: str, event_type: str) -> bool:
        events = self.of(run_id)
        return bool(events) and events[-1].type == event_type


@pytest.fixture
def handed_over() -> HandedOver:
    return HandedOver()


@pytest.fixture
async def events_api(
    app: FastAPI,
    client: Client,
    settings: Settings,
    database: Database,
    http_client: httpx.AsyncClient,
    handed_over: HandedOver,
) -> AsyncIterator[tuple[httpx.AsyncClient, Subscribed]]:
    subscribed = Subscribed()
    service = run_service(client=client, database=database, settings=settings)
    service._subscriptions = subscribed  # noqa: SLF001 - the seam the factory fills in
    app.dependency_overrides[get_run_service] = lambda: service
    deps = ActivityDeps(
        settings=settings,
        http_client=http_client,
        secrets=SecretRepository(database, settings.secret_keys()),
    )
    worker: Worker = create_worker(
        client,
        task_queue=settings.task_queue,
        activities=[*default_registry().activities(deps), handed_over.emit],
    )
    async with worker:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://runlane.test", headers={"Api-Key": "key_org_a"}
        ) as http:
            yield http, subscribed


async def test_a_reviewed_run_emits_its_lifecycle_in_order(
    events_api: tuple[httpx.AsyncClient, Subscribed], handed_over: HandedOver, client: Client
) -> None:
    api, _ = events_api
    workflow_id = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 7}}}
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, {"waiting_for_human"})
    await wait_until(lambda: handed_over.last_is(run_id, "run.waiting_for_human"))
    decided = await api.post(
        f"{RUNS}/{run_id}/reviews/review",
        json={"decision": "approve", "reviewer": "ann"},
    )
    assert decided.status_code == 202, decided.text
    run = await wait_for_run(api, run_id)
    assert run["status"] == "completed"

    events = handed_over.of(run_id)
    assert [(e.type, e.node_id) for e in events] == [
        ("run.started", None),
        ("review.requested", "review"),
        ("run.waiting_for_human", "review"),
        ("review.decided", "review"),
        ("run.completed", None),
    ]
    assert len({e.id for e in events}) == len(events)
    assert all(
        e.id.startswith("evt_") and e.organization_id == run["organization_id"] for e in events
    )
    # Each carries the run as it was then, without steps.
    by_type = {e.type: e for e in events}
    assert by_type["run.waiting_for_human"].run.status == "waiting_for_human"
    assert by_type["run.waiting_for_human"].run.waiting_for_node_ids == ["review"]
    assert by_type["run.completed"].run.status == "completed"
    assert by_type["run.completed"].run.final_outputs == {"approved": {"amount": 7}}
    assert all(e.run.steps == [] and e.run.pending_reviews == [] for e in events)
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    await assert_replays(client, run_id)


async def test_a_failed_run_retried_emits_failed_retried_completed(
    events_api: tuple[httpx.AsyncClient, Subscribed],
    handed_over: HandedOver,
    client: Client,
    peer: Peer,
) -> None:
    api, _ = events_api
    definition = {
        "nodes": [
            {"id": "note", "type": "start_text"},
            http_node(peer.url, "call", body={"note": "{{note.text}}"}, once=True),
            {"id": "out", "type": "end", "config": {"outputs": {"status": "{{call.status}}"}}},
        ],
        "edges": chain("note", "call", "out"),
    }
    workflow_id = await create_published(api, definition)
    peer.fail("/call", 1, 503)
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"note": "x"}}
    )
    run_id = started.json()["id"]
    failed = await wait_for_run(api, run_id)
    assert failed["status"] == "error", failed
    retried = await api.post(f"{RUNS}/{run_id}/retry", json={})
    assert retried.status_code == 202, retried.text
    await wait_until(lambda: handed_over.last_is(run_id, "run.completed"))
    events = handed_over.of(run_id)
    assert [e.type for e in events] == ["run.started", "run.failed", "run.retried", "run.completed"]
    assert events[1].run.error is not None and events[1].run.error.node_id == "call"
    assert events[2].run.attempt == 2 and events[3].run.attempt == 2
    # A new id after the reset, not one of the execution it replaced.
    assert len({e.id for e in events}) == 4
    await assert_replays(client, run_id)


async def test_a_run_emits_only_what_its_organization_subscribed(
    events_api: tuple[httpx.AsyncClient, Subscribed], handed_over: HandedOver, client: Client
) -> None:
    api, subscribed = events_api
    subscribed.types = ["run.completed"]
    workflow_id = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 1}}}
    )
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, {"waiting_for_human"})
    subscribed.types = []  # frozen at start: the run keeps what it had
    await api.post(f"{RUNS}/{run_id}/reviews/review", json={"decision": "approve"})
    await wait_for_run(api, run_id)
    await wait_until(lambda: handed_over.last_is(run_id, "run.completed"))
    assert [e.type for e in handed_over.of(run_id)] == ["run.completed"]

    # Nothing subscribed: nothing handed over, and no local activity in the history.
    quiet = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 2}}}
    )
    quiet_id = quiet.json()["id"]
    await wait_for_run(api, quiet_id, {"waiting_for_human"})
    await api.post(f"{RUNS}/{quiet_id}/reviews/review", json={"decision": "approve"})
    await wait_for_run(api, quiet_id)
    assert handed_over.of(quiet_id) == []
    history = await client.get_workflow_handle(quiet_id).fetch_history()
    assert EMIT_EVENTS not in history.to_json()
