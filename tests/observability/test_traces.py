"""One trace from the REST call through the workflow and its activities to the outbound HTTP
request (API.md "Observability"), exported over OTLP to a real collector on 127.0.0.1 with
each protocol, configured only by the standard OTEL_* variables.

The API and the worker run in this process, each with the tracer provider its process would
build (runlane/telemetry.py: services runlane-api and runlane-worker), a Temporal client of its
own, and the HTTP client the worker instruments."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from activities.registry import ActivityDeps, default_registry
from api.deps import get_api_settings, get_database, get_temporal_client
from api.main import create_app
from runlane.settings import Settings
from runlane.telemetry import (
    API_SERVICE,
    WORKER_SERVICE,
    TelemetryConfigError,
    instrument_http_client,
    tracer_provider,
    tracing_enabled,
)
from runlane.temporal import connect
from store.db import Database
from store.secrets import SecretRepository
from tests.api.helpers import create_published, wait_for_run, wait_until
from tests.conftest import ORG_A_KEY
from tests.observability.conftest import JsonLines
from tests.otlp import Collector, ReceivedSpan
from tests.peer import Peer
from workflows.worker import create_worker

SERVER, CLIENT = SpanKind.SERVER.value + 1, SpanKind.CLIENT.value + 1  # OTLP's enum is 1-based


@pytest.fixture(params=["grpc", "http/protobuf"])
def collector(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Collector]:
    server = Collector(request.param)
    server.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", request.param)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def traced(
    collector: Collector, settings: Settings, database: Database
) -> AsyncIterator[tuple[httpx.AsyncClient, list[TracerProvider]]]:
    """An API client of org_a against a traced app, with a traced worker running."""
    api_provider = tracer_provider(API_SERVICE)
    worker_provider = tracer_provider(WORKER_SERVICE)
    assert api_provider is not None and worker_provider is not None
    api_client = await connect(settings, tracer_provider=api_provider)
    worker_client = await connect(settings, tracer_provider=worker_provider)
    app: FastAPI = create_app(tracer_provider=api_provider)
    app.dependency_overrides[get_api_settings] = lambda: settings
    app.dependency_overrides[get_temporal_client] = lambda: api_client
    app.dependency_overrides[get_database] = lambda: database
    async with httpx.AsyncClient() as http_client:
        instrument_http_client(http_client, worker_provider)
        deps = ActivityDeps(
            settings=settings,
            http_client=http_client,
            secrets=SecretRepository(database, settings.secret_keys()),
        )
        worker = create_worker(
            worker_client,
            task_queue=settings.task_queue,
            activities=default_registry().activities(deps),
        )
        async with (
            worker,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://runlane.test",
                headers={"Api-Key": ORG_A_KEY},
            ) as api,
        ):
            try:
                yield api, [api_provider, worker_provider]
            finally:
                for provider in (api_provider, worker_provider):
                    provider.shutdown()


def calling(url: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {
                "id": "call",
                "type": "http_request",
                "config": {"method": "POST", "url": url, "body": {"customer": "{{meta.id}}"}},
            },
            {"id": "out", "type": "end", "config": {"outputs": {"answer": "{{call.status}}"}}},
        ],
        "edges": [{"source": "meta", "target": "call"}, {"source": "call", "target": "out"}],
    }


async def test_one_trace_spans_the_api_the_workflow_the_activity_and_the_call(
    traced: tuple[httpx.AsyncClient, list[TracerProvider]],
    collector: Collector,
    peer: Peer,
    json_lines: JsonLines,
) -> None:
    api, providers = traced
    secret = f"canary-{uuid.uuid4()}"
    assert (await api.put("/v1/secrets/token", json={"value": secret})).status_code == 200
    workflow_id = await create_published(
        api, calling(f"{peer.url}/hook?key={{{{$secrets.token}}}}")
    )
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"id": "c1"}}}
    )
    assert started.status_code == 202, started.text
    run = await wait_for_run(api, started.json()["id"], timeout=60)
    assert run["status"] == "completed", run

    # The peer got the W3C header: version 00, the trace id, the calling span, sampled.
    [call] = peer.calls_to(f"/hook?key={secret}")
    headers = {name.lower(): value for name, value in call.headers.items()}
    version, trace_id, parent_id, flags = headers["traceparent"].split("-")
    assert version == "00"
    assert int(flags, 16) & 1, flags

    for provider in providers:
        provider.force_flush()

    def trace_spans() -> list[ReceivedSpan]:
        return [span for span in collector.received() if span.trace_id == trace_id]

    async def complete() -> list[ReceivedSpan] | None:
        spans = trace_spans()
        services = {span.service for span in spans}
        return spans if {API_SERVICE, WORKER_SERVICE} <= services else None

    spans = await wait_until(complete, timeout=30)
    # The API's server span of the start request is the trace's root.
    [root] = [
        s for s in spans if s.service == API_SERVICE and s.kind == SERVER and "/run" in s.name
    ]
    assert root.parent_span_id == ""
    # The Temporal client span that started the workflow, in the API.
    assert any(s.service == API_SERVICE and s.name == "StartWorkflow:RunWorkflow" for s in spans)
    worker_names = {s.name for s in spans if s.service == WORKER_SERVICE}
    assert "RunWorkflow:RunWorkflow" in worker_names, worker_names
    assert "StartActivity:http_request" in worker_names, worker_names
    assert "RunActivity:http_request" in worker_names, worker_names
    # The httpx client span is the parent the peer was told about, a child of the activity's.
    [http_span] = [s for s in spans if "httpx" in s.scope]
    assert (http_span.service, http_span.kind) == (WORKER_SERVICE, CLIENT)
    assert http_span.span_id == parent_id
    by_id = {s.span_id: s for s in spans}
    assert by_id[http_span.parent_span_id].name == "RunActivity:http_request"
    assert http_span.attributes["http.status_code"] == 200
    # The URL the node sent holds the secret: the span's is masked, as log lines are.
    assert http_span.attributes["http.url"].endswith("/hook?key=***")
    assert not [s for s in collector.received() if secret in repr(s)]
    # The node's log lines carry the run's and the node's ids; those written while its span
    # is current (the HTTP call's, by httpcore) the trace's id too.
    node_lines = [line for line in json_lines() if line.get("node_id") == "call"]
    assert {line["run_id"] for line in node_lines} == {run["id"]}
    assert {line.get("trace_id") for line in node_lines} <= {trace_id, None}
    in_call = [line for line in node_lines if line["logger"].startswith("httpcore")]
    assert in_call and all(line["trace_id"] == trace_id for line in in_call)


def test_off_unless_an_exporter_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SDK_DISABLED",
    ):
        monkeypatch.delenv(name, raising=False)
    assert not tracing_enabled()
    assert tracer_provider(API_SERVICE) is None
    app = create_app(tracer_provider=None)
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    assert tracing_enabled()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing_enabled()
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing_enabled()


def test_an_unusable_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(TelemetryConfigError, match="http/json"):
        tracer_provider(API_SERVICE)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(TelemetryConfigError, match="zipkin"):
        tracer_provider(API_SERVICE)


def test_the_service_name_comes_from_otel_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = tracer_provider(WORKER_SERVICE)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == WORKER_SERVICE
    provider.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-worker")
    provider = tracer_provider(WORKER_SERVICE)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "billing-worker"
    provider.shutdown()
