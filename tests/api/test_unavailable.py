"""Temporal going away under a running API: every endpoint that needs it answers `503
temporal_unavailable` within a second (not after the SDK's seconds of retries), calls caught
in flight included, and answers again once Temporal is back.

A Temporal dev server of the test's own (the session's is shared) is started, stopped and
started again on the same port and database file; the API runs its real lifespan against it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from runlane import search_attributes
from runlane.converter import data_converter
from runlane.settings import get_settings
from tests.api.helpers import create_published, linear_definition
from tests.conftest import DEV_SERVER_STARTUP_TIMEOUT, ORG_A_KEY, SECRETS_KEY, TEMPORAL_BIN

RUN = "run_" + "0" * 32
START_BODY = {"json_inputs": {"meta": {}}, "text_inputs": {"note": "n"}}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OwnTemporal:
    """A dev server on a fixed port and database file, so that it can be stopped and started
    again as the same Temporal."""

    def __init__(self, db_file: Path) -> None:
        self.port = _free_port()
        self._db_file = db_file
        self._env: WorkflowEnvironment | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(TEMPORAL_BIN),
            port=self.port,
            dev_server_database_filename=str(self._db_file),
            data_converter=data_converter(),
            search_attributes=search_attributes.ALL,
            dev_server_log_level="error",
            dev_server_startup_timeout=DEV_SERVER_STARTUP_TIMEOUT,
        )

    async def stop(self) -> None:
        if self._env is not None:
            await self._env.shutdown()
            self._env = None


async def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# CI once saw a fresh dev server die at start (a Go panic while it bound its internal ports on
# a loaded machine). Its start is this test's set-up, not its subject: a new port and database
# file get another go before the test gives up.
START_ATTEMPTS = 3


@pytest.fixture
async def own_temporal(tmp_path: Path) -> AsyncIterator[OwnTemporal]:
    for attempt in range(1, START_ATTEMPTS + 1):
        temporal = OwnTemporal(tmp_path / f"temporal-{attempt}.db")
        try:
            await temporal.start()
            break
        except RuntimeError:
            if attempt == START_ATTEMPTS:
                raise
    try:
        yield temporal
    finally:
        await temporal.stop()


@pytest.fixture
async def live_app(
    own_temporal: OwnTemporal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FastAPI]:
    """The app as `uvicorn api.main:app` runs it: its own lifespan, settings from the
    environment."""
    monkeypatch.setenv("RUNLANE_TEMPORAL_ADDRESS", own_temporal.address)
    monkeypatch.setenv("RUNLANE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RUNLANE_API_KEYS", f"{ORG_A_KEY}:org_a")
    monkeypatch.setenv("RUNLANE_SECRETS_KEY", SECRETS_KEY)
    get_settings.cache_clear()
    app = create_app()
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        get_settings.cache_clear()


async def test_every_temporal_endpoint_answers_503_within_a_second_while_it_is_gone(
    live_app: FastAPI, own_temporal: OwnTemporal
) -> None:
    transport = httpx.ASGITransport(app=live_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runlane.test", headers={"Api-Key": ORG_A_KEY}
    ) as api:
        workflow_id = await create_published(api, linear_definition())
        started = await api.post(f"/v1/workflows/{workflow_id}/run", json=START_BODY)
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        calls: list[tuple[str, str, dict | None]] = [
            ("GET", "/v1/workflows/runs", None),
            ("GET", f"/v1/workflows/runs/{run_id}", None),
            ("GET", f"/v1/workflows/runs/{run_id}/steps", None),
            ("GET", f"/v1/workflows/runs/{run_id}/steps/meta", None),
            ("GET", f"/v1/workflows/runs/{run_id}/events", None),
            ("GET", f"/v1/workflows/runs/{run_id}/retry-plan", None),
            ("GET", "/v1/reviews", None),
            ("POST", f"/v1/workflows/{workflow_id}/run", START_BODY),
            ("POST", f"/v1/workflows/runs/{RUN}/cancel", None),
            ("POST", f"/v1/workflows/runs/{RUN}/restart", None),
            ("POST", f"/v1/workflows/runs/{RUN}/rerun", None),
            ("POST", f"/v1/workflows/runs/{RUN}/retry", None),
            ("POST", f"/v1/workflows/runs/{RUN}/reviews/review", {"decision": "approve"}),
        ]
        watch = live_app.state.temporal_reachability
        await _wait_for(lambda: watch.reachable)
        assert (await api.get(f"/v1/workflows/runs/{run_id}")).status_code == 200

        async def timed(method: str, path: str, body: dict | None) -> tuple[float, int, dict]:
            began = time.monotonic()
            response = await api.request(method, path, json=body)
            return time.monotonic() - began, response.status_code, response.json()

        # A read that is still trying to reach Temporal when it is found gone is answered
        # then, not after the SDK's own retries.
        await own_temporal.stop()
        caught: asyncio.Task = asyncio.create_task(
            timed("GET", f"/v1/workflows/runs/{run_id}", None)
        )
        await _wait_for(lambda: not watch.reachable)
        _, status, body = await asyncio.wait_for(caught, timeout=1.0)
        assert status == 503 and body["error"]["code"] == "temporal_unavailable", body

        for method, path, request_body in calls:
            took, status, body = await timed(method, path, request_body)
            assert status == 503, (method, path, body)
            assert body["error"] == {
                "type": "server_error",
                "code": "temporal_unavailable",
                "message": "Temporal cannot be reached right now.",
                "details": {},
            }
            assert took < 1.0, (method, path, took)

        # Back: the same client answers again, with the run it knew.
        await own_temporal.start()
        await _wait_for(lambda: watch.reachable)
        for method, path, expected in (
            ("GET", f"/v1/workflows/runs/{run_id}", 200),
            ("GET", f"/v1/workflows/runs/{run_id}/steps", 200),
            ("GET", "/v1/reviews", 200),
            ("POST", f"/v1/workflows/{workflow_id}/run", 202),
        ):
            response = await api.request(method, path, json=START_BODY if expected == 202 else None)
            assert response.status_code == expected, (method, path, response.text)


async def test_a_call_in_flight_is_not_cut_while_temporal_answers(
    live_app: FastAPI,
) -> None:
    """The monitor only answers for Temporal being gone: while it answers, calls take as long
    as they take (no timeout is put on them)."""
    transport = httpx.ASGITransport(app=live_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runlane.test", headers={"Api-Key": ORG_A_KEY}
    ) as api:
        watch = live_app.state.temporal_reachability
        await _wait_for(lambda: watch.reachable)
        responses: list[Awaitable[httpx.Response]] = [
            api.get("/v1/workflows/runs", params={"limit": "200"}) for _ in range(20)
        ]
        for response in await asyncio.gather(*responses):
            assert response.status_code == 200, response.text
