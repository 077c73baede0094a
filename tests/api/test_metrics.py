"""`GET /metrics`: what a Prometheus scrape of the API sees after real calls."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from api.deps import get_api_settings
from runlane.settings import Settings
from tests.api.helpers import (
    create_published,
    linear_definition,
    review_definition,
    wait_for_run,
    wait_until,
)

RUN_ROUTE = "/v1/workflows/runs/{run_id}"


async def scrape(app: FastAPI) -> dict[str, list[Sample]]:
    """The app's metrics by family name, read as Prometheus reads them (no API key)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://scraper"
    ) as scraper:
        response = await scraper.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(response.text)}


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    for sample in samples:
        if sample.name == name and sample.labels == labels:
            return sample.value
    return None


async def test_requests_by_route_template_and_status(app: FastAPI, api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, linear_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"json_inputs": {"meta": {"customer_id": "c"}}, "text_inputs": {"note": "n"}},
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    await wait_for_run(api, run_id)
    reads = 3
    for _ in range(reads):
        assert (await api.get(f"/v1/workflows/runs/{run_id}")).status_code == 200
    assert (await api.get("/v1/workflows/runs/run_missing")).status_code == 404
    assert (await api.get("/v1/no/such/path")).status_code == 404
    assert (await api.get("/v1/workflows", headers={"Api-Key": "nope"})).status_code == 401

    metrics = await scrape(app)
    requests = metrics["runlane_api_requests"]
    # wait_for_run read the run too: at least the three reads, all under the route's template.
    ok_reads = value(
        requests, "runlane_api_requests_total", method="GET", route=RUN_ROUTE, status="200"
    )
    assert ok_reads is not None and ok_reads >= reads
    assert (
        value(requests, "runlane_api_requests_total", method="GET", route=RUN_ROUTE, status="404")
        == 1
    )
    assert (
        value(requests, "runlane_api_requests_total", method="GET", route="unmatched", status="404")
        == 1
    )
    assert (
        value(
            requests,
            "runlane_api_requests_total",
            method="GET",
            route="/v1/workflows",
            status="401",
        )
        == 1
    )
    assert (
        value(
            requests,
            "runlane_api_requests_total",
            method="POST",
            route="/v1/workflows/{workflow_id}/run",
            status="202",
        )
        == 1
    )
    # Raw ids never become labels: the series stay bounded.
    assert not any(run_id in str(s.labels) for s in requests)
    latency = metrics["runlane_api_request_duration_seconds"]
    count = value(
        latency,
        "runlane_api_request_duration_seconds_count",
        method="GET",
        route=RUN_ROUTE,
        status="200",
    )
    assert count == ok_reads
    slowest = value(
        latency,
        "runlane_api_request_duration_seconds_bucket",
        method="GET",
        route=RUN_ROUTE,
        status="200",
        le="+Inf",
    )
    assert slowest == ok_reads
    assert value(metrics["runlane_runs_started"], "runlane_runs_started_total", trigger="api") == 1


async def test_reviews_pending_counts_runs_waiting_for_a_decision(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    workflow_id = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 5}}}
    )
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})

    async def pending() -> float:
        found = value((await scrape(app))["runlane_reviews_pending"], "runlane_reviews_pending")
        assert found is not None
        return found

    # All organizations' waiting runs count (earlier tests' too): at least this one, and one
    # fewer once it is decided.
    waiting = await wait_until(pending)
    assert waiting >= 1
    decided = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "approve"}
    )
    assert decided.status_code == 202, decided.text
    await wait_for_run(api, run_id)

    async def one_fewer() -> bool:
        return await pending() <= waiting - 1

    await wait_until(one_fewer)


async def test_metrics_can_be_switched_off(app: FastAPI, settings: Settings) -> None:
    off = settings.model_copy(update={"api_metrics": False})
    app.dependency_overrides[get_api_settings] = lambda: off
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://scraper"
    ) as scraper:
        response = await scraper.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
