"""What the triggers add to the worker: their workflows and activities, wired the same in
worker.py and the tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.client import Client

from runlane.settings import Settings
from runs.factory import run_service
from store.db import Database
from store.endpoints import EndpointRepository
from store.schedules import ScheduleRepository
from triggers.delivery import EventDeliveryWorkflow
from triggers.delivery_activities import DeliveryActivities
from triggers.schedule_fire import ScheduleFire
from triggers.schedule_workflow import ScheduledRunWorkflow
from triggers.sender import EventSender


@dataclass
class TriggerWork:
    workflows: list[type] = field(default_factory=list)
    activities: list[Callable[..., Any]] = field(default_factory=list)


def trigger_work(
    *, client: Client, database: Database, settings: Settings, http_client: httpx.AsyncClient
) -> TriggerWork:
    """The workflows and activities of schedules and event deliveries, over this process's
    Temporal client, store and HTTP client."""
    # Schedules: the launcher prepares each fire's run through the run service, as a REST
    # start does (triggers/schedule_fire.py).
    fire = ScheduleFire(
        ScheduleRepository(database),
        run_service(client=client, database=database, settings=settings),
    )
    # Event webhooks: the run's hand-over of its events, and each event's delivery
    # (triggers/delivery.py).
    deliveries = DeliveryActivities(
        client=client,
        settings=settings,
        endpoints=EndpointRepository(database, settings.secret_keys()),
        sender=EventSender(http_client, allow_private=settings.http_allow_private),
    )
    return TriggerWork(
        workflows=[ScheduledRunWorkflow, EventDeliveryWorkflow],
        activities=[fire.prepare_run, deliveries.emit_events, deliveries.attempt_delivery],
    )
