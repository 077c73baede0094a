"""OpenTelemetry traces for a Runlane process, configured only by the standard `OTEL_*` variables.

Tracing is on when an exporter is configured: `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, or `OTEL_TRACES_EXPORTER` names one (`otlp`,
`console`). `OTEL_TRACES_EXPORTER=none` and `OTEL_SDK_DISABLED=true` turn it off. Off, nothing
is instrumented at all: no provider, no middleware, no interceptor, so no cost.

On, `tracer_provider()` builds the process's provider; the callers hand it to what they
instrument (the API's app, the Temporal client's interceptor, the worker's HTTP client), never
through OpenTelemetry's global provider: the tests run the API and a worker in one process, each
with a provider of its own service name, and tests that trace nothing stay untouched.

The OTLP exporter's protocol is `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or
`OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or `http/protobuf` (the specification's default). The
exporters and the batch processor read everything else (endpoint, headers, timeout, TLS,
compression, batching) from the environment themselves; the sampler comes from
`OTEL_TRACES_SAMPLER`, the resource from `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, with
`runlane-api` / `runlane-worker` as the service name when neither sets one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_SDK_DISABLED,
)
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from runlane.redaction import current_redactor

API_SERVICE = "runlane-api"
WORKER_SERVICE = "runlane-worker"
PROTOCOLS = ("grpc", "http/protobuf")
EXPORTERS = ("otlp", "console", "none")


class TelemetryConfigError(ValueError):
    """An `OTEL_*` variable names something this process cannot export with."""


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The trace exporters asked for; none unless one is configured (off by default)."""
    if environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
        return []
    named = environ.get(OTEL_TRACES_EXPORTER, "").strip().lower()
    if named:
        names = [name.strip() for name in named.split(",") if name.strip()]
        unknown = [name for name in names if name not in EXPORTERS]
        if unknown:
            raise TelemetryConfigError(
                f"{OTEL_TRACES_EXPORTER}={named!r}: supported are {', '.join(EXPORTERS)}"
            )
        return [] if "none" in names else names
    if environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or environ.get(OTEL_EXPORTER_OTLP_ENDPOINT):
        return ["otlp"]
    return []


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    return bool(_exporter_names(os.environ if environ is None else environ))


def otlp_protocol(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    protocol = (
        env.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) or env.get(OTEL_EXPORTER_OTLP_PROTOCOL) or ""
    ).strip() or "http/protobuf"
    if protocol not in PROTOCOLS:
        raise TelemetryConfigError(
            f"OTLP protocol {protocol!r} is not supported for traces: use grpc or http/protobuf"
        )
    return protocol


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # Imported when used: a process that does not trace loads neither gRPC nor the protobufs.
    if otlp_protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpOTLPSpanExporter,
    )

    return HttpOTLPSpanExporter()


def tracer_provider(default_service_name: str) -> TracerProvider | None:
    """This process's tracer provider when tracing is on, else None (instrument nothing).
    Raises TelemetryConfigError for an exporter or protocol it cannot use: a process told to
    export traces does not start silently without them."""
    names = _exporter_names(os.environ)
    if not names:
        return None
    attributes: dict[str, Any] = {}
    if SERVICE_NAME not in OTELResourceDetector().detect().attributes:
        attributes[SERVICE_NAME] = default_service_name
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return provider


def temporal_interceptors(provider: TracerProvider | None) -> list[Any]:
    """The Temporal client's interceptors: with a provider, Temporal's tracing interceptor,
    which carries the caller's context into the workflow (a header) and gives the worker's
    workflow and activity spans (a worker inherits its client's interceptors)."""
    if provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(provider.get_tracer("temporalio"))]


async def _mask_url(span: Any, request: Any) -> None:
    """An http_request node's URL may carry a secret (a token in its query): the span's URL is
    masked as the HTTP libraries' log lines are (runlane/redaction.py), in the same context."""
    redactor = current_redactor()
    attributes = getattr(span, "attributes", None)
    if not redactor or not attributes:
        return
    for key in ("url.full", "http.url"):
        value = attributes.get(key)
        if isinstance(value, str) and redactor.found_in(value):
            span.set_attribute(key, redactor.text(value))


def instrument_http_client(client: httpx.AsyncClient, provider: TracerProvider | None) -> None:
    """With a provider, `client`'s requests get a client span and carry its W3C `traceparent`
    (and `tracestate`) header to the peer; without one the client is left as it is."""
    if provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(
        client, tracer_provider=provider, request_hook=_mask_url
    )
