"""One way to build a run service from a process's parts: the API (per request, api/deps.py)
and the worker (schedules fire runs through it, triggers/) wire it the same."""

from __future__ import annotations

from collections.abc import Callable

from temporalio.client import Client

from activities.registry import NodeRegistry, default_registry
from runlane.settings import Settings
from runs.service import RunService
from runs.starter import PublishedDefinitions
from runs.temporal_errors import Reachability
from store.db import Database
from store.decisions import DecisionRepository
from store.endpoints import EndpointRepository
from store.files import FileRepository
from store.idempotency import IdempotencyRepository
from store.secrets import SecretRepository
from store.usage import UsageRepository
from store.workflows import WorkflowRepository


def run_service(
    *,
    client: Client,
    database: Database,
    settings: Settings,
    registry: NodeRegistry | None = None,
    published: PublishedDefinitions | None = None,
    reachability: Reachability | None = None,
    run_started: Callable[[str], None] | None = None,
) -> RunService:
    """A run service over `database`; `published` and `reachability` are per process (share
    one of each). Needs a valid RUNLANE_SECRETS_KEY (checked when the process started)."""
    return RunService(
        client=client,
        registry=registry or default_registry(),
        workflows=WorkflowRepository(database),
        files=FileRepository(database, settings.blob_store()),
        idempotency=IdempotencyRepository(database),
        decisions=DecisionRepository(database),
        secrets=SecretRepository(database, settings.secret_keys()),
        task_queue=settings.task_queue,
        max_upload_bytes=settings.max_upload_bytes,
        published=published,
        reachability=reachability,
        # What new runs emit: the event types the organization's endpoints subscribe to.
        subscriptions=EndpointRepository(database, settings.secret_keys()),
        # The effects ledger and usage the worker's node activities write.
        usage=UsageRepository(database),
        run_started=run_started,
    )
