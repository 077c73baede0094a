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

from runlane import search_attributes
from runlane.converter import data_converter
from runlane.settings import Settings
from runlane.telemetry import temporal_interceptors


async def connect(
    settings: Settings, *, lazy: bool = False, tracer_provider: TracerProvider | None = None
) -> Client:
    """`lazy` lets the API start while Temporal is down (its /healthz then says so).
    A malformed RUNLANE_PAYLOAD_KEY stops the caller here, before anything is written.
    With `tracer_provider` (runlane/telemetry.py) calls and a worker of this client trace."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings.payload_keys()),
        lazy=lazy,
        interceptors=temporal_interceptors(tracer_provider),
    )


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
