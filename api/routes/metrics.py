"""Prometheus metrics of the API (`GET /metrics`, no API key; API.md "Observability").

- `runlane_api_requests_total{method, route, status}` and
  `runlane_api_request_duration_seconds{method, route, status}` (a histogram): every request,
  labelled by its route's TEMPLATE (`/v1/workflows/runs/{run_id}`), never the raw path, so the
  series stay bounded whatever callers send; a path no route matches is `route="unmatched"`.
  The duration runs until the response has been sent (an event stream's: until it closes).
- `runlane_runs_started_total{trigger}`: runs this API process started (`api`, `restart`,
  `rerun`, `webhook`); schedules' runs are started by the worker (its own metrics).
- `runlane_reviews_pending`: runs waiting for a review decision, all organizations; one
  visibility count query per scrape, refreshed when `/metrics` is read.

Each app has its own registry (tests build many apps in one process); nothing is global.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import SettingsDep, TemporalDep
from api.errors import ApiError
from runs.gauges import runs_waiting_for_review

log = logging.getLogger("runlane.api")

# REST calls take milliseconds to a few seconds (a run's start waits on Temporal).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# A scrape never waits long on Temporal: the gauge keeps its last value instead.
GAUGE_TIMEOUT_S = 2.0
UNMATCHED = "unmatched"


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.requests = Counter(
            "runlane_api_requests",
            "API requests by route template and response status",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "runlane_api_request_duration_seconds",
            "API request latency, from the first byte in to the last byte out",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.runs_started = Counter(
            "runlane_runs_started",
            "Runs this API process started, by trigger type",
            ("trigger",),
            registry=self.registry,
        )
        self.reviews_pending = Gauge(
            "runlane_reviews_pending",
            "Runs waiting for a review decision (all organizations), read at scrape time",
            registry=self.registry,
        )

    def run_started(self, trigger: str) -> None:
        self.runs_started.labels(trigger).inc()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED


class RequestMetrics:
    """Counts and times every HTTP request (outermost middleware: refusals by the size limit
    are counted too, as `unmatched`, since they are answered before routing)."""

    def __init__(
        self, app: ASGIApp, metrics: ApiMetrics, enabled: Callable[[], bool] = lambda: True
    ) -> None:
        self._app = app
        self._metrics = metrics
        self._enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._enabled():
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_status)
        finally:
            # An exception escaping here is answered 500 by the server error middleware.
            self._metrics.observe(
                scope["method"], _route_template(scope), status, time.perf_counter() - started
            )


router = APIRouter(tags=["metrics"], include_in_schema=False)


@router.get("/metrics")
async def metrics_endpoint(
    request: Request, settings: SettingsDep, client: TemporalDep
) -> Response:
    """Prometheus metrics (text exposition format; no API key)."""
    if not settings.api_metrics:
        raise ApiError(404, "not_found", "Metrics are off (RUNLANE_API_METRICS=false).")
    metrics: ApiMetrics = request.app.state.metrics
    try:
        pending = await asyncio.wait_for(runs_waiting_for_review(client), GAUGE_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - Temporal unreachable: keep the last value
        log.warning("reviews pending not refreshed: %s", error)
    else:
        metrics.reviews_pending.set(pending)
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
