"""Helpers for event webhook tests: run events as the run workflow emits them, subscribing
over the API, and handing events to their delivery as the run's EMIT_EVENTS activity does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio.client import Client

from runlane.settings import Settings
from store.db import Database
from store.endpoints import EndpointRepository
from tests.conftest import ORG_A_KEY
from triggers.delivery_activities import DeliveryActivities
from triggers.delivery_models import DeliveryResult
from triggers.sender import EventSender
from workflows.events import EmittedEvents, EventType, RunEvent
from workflows.models import RunInputs, RunState, Timing, Trigger, WorkflowRef


def org_a(settings: Settings) -> str:
    return settings.key_to_organization()[ORG_A_KEY]


def run_event(
    organization_id: str, event_type: EventType = "run.completed", node_id: str | None = None
) -> RunEvent:
    """An event of a completed run, as the run workflow builds one."""
    now = datetime.now(UTC)
    state = RunState(
        run_id=f"run_{uuid.uuid4().hex}",
        organization_id=organization_id,
        workflow=WorkflowRef(
            workflow_id="wf_1", snapshot_id="snap_1", version=1, name_at_run_time="Invoices"
        ),
        trigger=Trigger(),
        inputs=RunInputs(json_data={"meta": {"amount": 3}}),
        status="completed",
        timing=Timing(created_at=now, started_at=now, completed_at=now, duration_ms=0),
        final_outputs={"out": {"ok": True}},
    )
    return RunEvent(
        id=f"evt_{uuid.uuid4().hex}",
        type=event_type,
        timestamp=now,
        organization_id=organization_id,
        run_id=state.run_id,
        node_id=node_id,
        run=state,
    )


def delivery_activities(
    client: Client, settings: Settings, database: Database, http_client: httpx.AsyncClient
) -> DeliveryActivities:
    return DeliveryActivities(
        client=client,
        settings=settings,
        endpoints=EndpointRepository(database, settings.secret_keys()),
        sender=EventSender(http_client, allow_private=settings.http_allow_private),
    )


async def deliver(
    client: Client,
    settings: Settings,
    database: Database,
    http_client: httpx.AsyncClient,
    *events: RunEvent,
) -> list[DeliveryResult]:
    """Emit the events (EMIT_EVENTS' function, as the run calls it) and wait for their
    deliveries to end."""
    activities = delivery_activities(client, settings, database, http_client)
    await activities.emit_events(EmittedEvents(events=list(events)))
    return [
        await client.get_workflow_handle(event.id, result_type=DeliveryResult).result()
        for event in events
    ]


async def subscribe(
    api: httpx.AsyncClient, url: str, events: list[str], **fields: Any
) -> dict[str, Any]:
    answer = await api.post("/v1/webhook-endpoints", json={"url": url, "events": events, **fields})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def deliveries(api: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    answer = await api.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def lower_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}
