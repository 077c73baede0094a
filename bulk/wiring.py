"""What bulk operations add to the worker: their workflow and activity, wired the same in
worker.py and the tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client

from bulk.activities import BulkActivities
from bulk.workflow import BulkOperationWorkflow
from runlane.settings import Settings
from runs.factory import run_service
from store.bulk import BulkRepository
from store.db import Database


@dataclass
class BulkWork:
    workflows: list[type] = field(default_factory=list)
    activities: list[Callable[..., Any]] = field(default_factory=list)


def bulk_work(*, client: Client, database: Database, settings: Settings) -> BulkWork:
    """The operations' workflow, and the activity that applies an action to a batch of runs
    through the run service (built as the API builds it, so each run's rules are the REST
    call's), over this process's Temporal client and store."""
    activities = BulkActivities(
        run_service(client=client, database=database, settings=settings),
        BulkRepository(database),
    )
    return BulkWork(workflows=[BulkOperationWorkflow], activities=[activities.apply_batch])
