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
from store.schedules import ScheduleRepository
from triggers.schedule_fire import ScheduleFire
from triggers.schedule_workflow import ScheduledRunWorkflow


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
    return TriggerWork(workflows=[ScheduledRunWorkflow], activities=[fire.prepare_run])
