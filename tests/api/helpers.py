"""Small helpers for API tests: definitions and waiting on a run (no fixed sleeps)."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Replayer

from runlane.converter import data_converter
from runs.reader import RunReader, RunView
from tests.conftest import TEMPORAL_BIN
from workflows.run_workflow import RunWorkflow

TERMINAL = {"completed", "error", "cancelled"}


def linear_definition() -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "meta", "type": "start_json", "label": "Metadata"},
            {"id": "note", "type": "start_text", "label": "Instructions"},
            {
                "id": "shape",
                "type": "transform",
                "label": "Shape",
                "config": {"output": {"customer": "{{meta.customer_id}}", "note": "{{note.text}}"}},
            },
            {"id": "out", "type": "end", "config": {"outputs": {"customer": "{{shape.customer}}"}}},
        ],
        "edges": [
            {"source": "meta", "target": "shape"},
            {"source": "note", "target": "shape"},
            {"source": "shape", "target": "out"},
        ],
    }


def review_definition(rejected_branch: bool = False) -> dict:
    nodes = [
        {"id": "meta", "type": "start_json"},
        {
            "id": "review",
            "type": "human_review",
            "label": "Approve",
            "config": {
                "instructions": "Check the amount",
                "payload": {"amount": "{{meta.amount}}"},
            },
        },
        {"id": "out", "type": "end", "config": {"outputs": {"approved": "{{review}}"}}},
    ]
    edges = [{"source": "meta", "target": "review"}, {"source": "review", "target": "out"}]
    if rejected_branch:
        nodes.append({"id": "bounce", "type": "end", "config": {"outputs": {"bounced": True}}})
        edges.append({"source": "review", "target": "bounce", "branch": "rejected"})
    return {"nodes": nodes, "edges": edges}


async def create_published(
    api: httpx.AsyncClient, definition: dict[str, Any], name: str = "wf"
) -> str:
    created = await api.post("/v1/workflows", json={"name": name, "definition": definition})
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    published = await api.post(f"/v1/workflows/{workflow_id}/publish")
    assert published.status_code == 201, published.text
    return workflow_id


async def wait_for_run(
    api: httpx.AsyncClient,
    run_id: str,
    until: set[str] | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Poll the run until its status is in `until` (default: ended)."""
    wanted = until or TERMINAL
    deadline = time.monotonic() + timeout
    while True:
        response = await api.get(f"/v1/workflows/runs/{run_id}")
        assert response.status_code == 200, response.text
        run = response.json()
        if run["status"] in wanted:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} stayed {run['status']}, wanted {wanted}")
        await asyncio.sleep(0.1)


async def wait_until(predicate: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
    """Wait for an async predicate to return something truthy (e.g. visibility catching up)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


def hold(
    monkeypatch: Any, module: Any, name: str, when: Any = lambda *args: True
) -> tuple[threading.Event, threading.Event]:
    """Make `module.name` (an evaluator) stop, when `when(*args)` holds, until the test sets
    `release`; `entered` is set once it stops. A batch is then held mid-evaluation on purpose:
    the worker runs in the test's process, and batches evaluate in a thread of their own."""
    entered, release = threading.Event(), threading.Event()
    original = getattr(module, name)

    def held(*args: Any) -> Any:
        if when(*args):
            entered.set()
            release.wait(timeout=30)
        return original(*args)

    monkeypatch.setattr(module, name, held)
    return entered, release


def read_stale_once(monkeypatch: Any, run_id: str, view: RunView) -> None:
    """The next read of `run_id` answers `view`, as a read made just before the run ended
    would: how a command meets a run that ends between its read and its call to Temporal."""
    original = RunReader.get
    stale = [view]

    async def get(self: RunReader, org: str, wanted: str) -> RunView:
        if wanted == run_id and stale:
            return stale.pop()
        return await original(self, org, wanted)

    monkeypatch.setattr(RunReader, "get", get)


def temporal_cli(client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    """The `temporal` CLI against the test's dev server, with JSON output. It blocks: call it
    with asyncio.to_thread from a test whose API runs on the loop."""
    return subprocess.run(
        [
            str(TEMPORAL_BIN),
            *args,
            "--address",
            client.service_client.config.target_host,
            "--namespace",
            client.namespace,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def assert_replays(client: Client, *run_ids: str) -> None:
    """The runs' histories replay with the current code (no nondeterminism): what a worker
    restart or cache eviction does to runs in flight."""
    replayer = Replayer(workflows=[RunWorkflow], data_converter=data_converter())
    for run_id in run_ids:
        history = await client.get_workflow_handle(run_id).fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, (run_id, result.replay_failure)
