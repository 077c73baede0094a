"""The Runlane worker: executes run workflows and node activities. It only wires."""

from __future__ import annotations

import asyncio
import logging
import signal

import httpx

from activities.metrics import ActivityMetrics
from activities.registry import ActivityDeps, default_registry
from activities.usage import Ledger, temporal_organizations
from bulk.wiring import bulk_work
from runlane.blobs import BlobUrlError
from runlane.bytecode import compiled_for_source
from runlane.logs import configure_logging
from runlane.secret_box import SecretsKeyError
from runlane.settings import get_settings
from runlane.telemetry import WORKER_SERVICE, instrument_http_client, tracer_provider
from runlane.temporal import connect, ensure_search_attributes, metrics_runtime
from store.db import Database
from store.migrate import wait_until_migrated
from store.secrets import SecretRepository
from store.usage import UsageRepository
from triggers.wiring import trigger_work
from workflows import run_workflow
from workflows.worker import create_worker

log = logging.getLogger("runlane.worker")


async def main() -> None:
    settings = get_settings()
    try:
        secret_keys = settings.secret_keys()
    except SecretsKeyError as err:
        log.error("worker not started: %s", err)
        raise SystemExit(2) from None
    try:
        blobs = settings.blob_store()
    except BlobUrlError as err:
        log.error("worker not started: %s", err)
        raise SystemExit(2) from None
    if not compiled_for_source(run_workflow):
        log.warning(
            "%s has no up-to-date bytecode, so the workflow sandbox compiles it for every new "
            "run (about 3 ms of CPU each); precompile with `python -m compileall` (make does)",
            run_workflow.__file__,
        )
    # Tracing is on when an OTEL_* exporter is configured (runlane/telemetry.py).
    provider = tracer_provider(WORKER_SERVICE)
    # RUNLANE_WORKER_METRICS_PORT: the SDK's metrics and Runlane's own (activities/metrics.py).
    runtime = metrics_runtime(settings)
    client = await connect(settings, runtime=runtime, tracer_provider=provider)
    interceptors = [ActivityMetrics(runtime.metric_meter)] if runtime is not None else []
    if runtime is not None:
        log.info(
            "worker metrics at http://%s:%s/metrics",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
        )
    await ensure_search_attributes(client, settings.temporal_namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The API's store: read for secrets' values when a node sends them; written with the
    # effects ledger and usage as nodes work (activities/usage.py). The worker does not
    # migrate it: it waits for the API's start (or `python -m store.migrate`) to.
    await wait_until_migrated(settings.resolved_database_url, stop=stop)
    database = Database(settings.resolved_database_url)
    ledger = Ledger(UsageRepository(database), organizations=temporal_organizations(client))
    try:
        async with httpx.AsyncClient() as http_client:
            # http_request nodes' calls: a client span, and `traceparent` to the peer.
            instrument_http_client(http_client, provider)
            deps = ActivityDeps(
                settings=settings,
                http_client=http_client,
                secrets=SecretRepository(database, secret_keys),
                ledger=ledger,
                blobs=blobs,
            )
            triggers = trigger_work(
                client=client, database=database, settings=settings, http_client=http_client
            )
            bulk = bulk_work(client=client, database=database, settings=settings)
            worker = create_worker(
                client,
                task_queue=settings.task_queue,
                activities=[
                    *default_registry().activities(deps),
                    *triggers.activities,
                    *bulk.activities,
                ],
                workflows=[*triggers.workflows, *bulk.workflows],
                max_cached_workflows=settings.worker_max_cached_workflows,
                map_items_per_execution=settings.map_items_per_execution,
                ledger=ledger,
                interceptors=interceptors,
            )
            async with worker:
                log.info(
                    "worker polling task queue %r at %s",
                    settings.task_queue,
                    settings.temporal_address,
                )
                await stop.wait()
                log.info("worker stopping")
    finally:
        await ledger.close()
        await database.dispose()
        if provider is not None:
            provider.shutdown()  # exports the spans still batched


if __name__ == "__main__":
    # JSON lines (runlane/logging.json). httpx logs every request of every http_request node
    # at INFO: a line per node run, with a URL that may carry a token in its query string;
    # the configuration keeps it at WARNING. Failures surface as node errors.
    configure_logging()
    asyncio.run(main())
