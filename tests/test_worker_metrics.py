"""The worker's Prometheus endpoint (`RUNLANE_WORKER_METRICS_PORT`): the Temporal SDK's metrics
and Runlane's own, served by the worker's SDK runtime, after a real run."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from activities.metrics import ActivityMetrics
from activities.registry import ActivityDeps, default_registry
from api.deps import get_temporal_client
from runlane.settings import Settings
from runlane.temporal import connect, metrics_runtime
from tests.api.helpers import create_published, wait_for_run, wait_until
from tests.conftest import ORG_A_KEY
from tests.peer import Peer
from workflows.worker import create_worker


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def metrics_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"worker_metrics_port": free_port()})


@pytest.fixture
async def metrics_worker(
    metrics_settings: Settings, http_client: httpx.AsyncClient
) -> AsyncIterator[Client]:
    """A worker wired as worker.py wires it with a metrics port: its own SDK runtime, a client
    of that runtime, the activity metrics interceptor."""
    runtime = metrics_runtime(metrics_settings)
    assert runtime is not None
    client = await connect(metrics_settings, runtime=runtime)
    deps = ActivityDeps(settings=metrics_settings, http_client=http_client)
    async with create_worker(
        client,
        task_queue=metrics_settings.task_queue,
        activities=default_registry().activities(deps),
        interceptors=[ActivityMetrics(runtime.metric_meter)],
    ):
        yield client


async def test_worker_serves_sdk_and_runlane_metrics(
    app: FastAPI, metrics_settings: Settings, metrics_worker: Client, peer: Peer
) -> None:
    app.dependency_overrides[get_temporal_client] = lambda: metrics_worker
    peer.fail("/flaky", times=1)
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {
                "id": "call",
                "type": "http_request",
                "config": {"method": "POST", "url": f"{peer.url}/flaky"},
                "retry": {"max_attempts": 3, "initial_interval_s": 0.1},
            },
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "in", "target": "call"}, {"source": "call", "target": "out"}],
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runlane.test",
        headers={"Api-Key": ORG_A_KEY},
    ) as api:
        workflow_id = await create_published(api, definition)
        started = await api.post(
            f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"in": "x"}}
        )
        assert started.status_code == 202, started.text
        run = await wait_for_run(api, started.json()["id"])
    assert run["status"] == "completed"

    url = f"http://127.0.0.1:{metrics_settings.worker_metrics_port}/metrics"

    async def scraped() -> dict[tuple[str, frozenset], float] | None:
        async with httpx.AsyncClient() as scraper:
            text = (await scraper.get(url)).text
        samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        # The SDK exports on its own schedule: wait until the run's activities are in.
        done = [k for k in samples if k[0].startswith("runlane_activities")]
        return samples if done else None

    samples = await wait_until(scraped)
    # The Temporal SDK's own series.
    assert any(name.startswith("temporal_") for name, _ in samples)

    def executions(outcome: str) -> float:
        return sum(
            value
            for (name, labels), value in samples.items()
            if name.startswith("runlane_activities")
            and not name.endswith(("_created",))
            and ("activity_type", "http_request") in labels
            and ("outcome", outcome) in labels
        )

    # The node failed once (the peer's 500), then succeeded.
    assert executions("failed") == 1
    assert executions("completed") == 1
    assert any(name.startswith("runlane_activity_duration") for name, _ in samples)
