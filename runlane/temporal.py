"""Connecting to Temporal the same way in the API, worker.py and the tests (workers of the run
workflow are built by workflows/worker.py)."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from runlane import search_attributes
from runlane.converter import data_converter
from runlane.settings import Settings
from runlane.telemetry import temporal_interceptors

ACTIVITY_DURATION_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 60_000)


async def connect(
    settings: Settings,
    *,
    lazy: bool = False,
    runtime: Runtime | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Client:
    """`lazy` lets the API start while Temporal is down (its /healthz then says so).
    A malformed RUNLANE_PAYLOAD_KEY stops the caller here, before anything is written.
    `runtime`: the SDK runtime of the client and its workers (None: the SDK's default).
    With `tracer_provider` (runlane/telemetry.py) calls and a worker of this client trace."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings.payload_keys()),
        lazy=lazy,
        runtime=runtime,
        interceptors=temporal_interceptors(tracer_provider),
    )


def metrics_runtime(settings: Settings) -> Runtime | None:
    """With `RUNLANE_WORKER_METRICS_PORT` set: an SDK runtime serving Prometheus metrics (the
    SDK's own `temporal_*` and what Runlane records through its meter) at
    `RUNLANE_WORKER_METRICS_HOST:PORT`/metrics; the port is bound here (in use: an error)."""
    if settings.worker_metrics_port is None:
        return None
    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    prometheus = PrometheusConfig(
        bind_address=address,
        # The SDK's default buckets start at 50 ms; node activities often take less.
        histogram_bucket_overrides={"runlane_activity_duration": ACTIVITY_DURATION_BUCKETS_MS},
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register Runlane's search attributes on clusters that lack them (idempotent)."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in search_attributes.ALL
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
