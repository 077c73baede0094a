"""`make run` as a user runs it: the real supervisor, Temporal dev server, worker and API.

The stack is started twice on one data dir, which is what proves that a stop leaves no stale
SQLite lock behind.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from store.migrate import head_revision
from tests.e2e.stack import (
    MakeRun,
    Ports,
    check_stop,
    free_port,
    http_get,
    http_json,
    make_run,
    port_open,
    processes_with_env,
    stack_env,
    wait_healthy,
)
from tests.peer import Peer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]
# The first restart comes after 0.5 s; the rest is the child starting and a run completing.
RESTART_DEADLINE = 90.0
HEALTHY = {"status": "ok", "temporal": "ok"}


def secret_workflow(base: str, key: str, peer_url: str) -> str:
    definition = {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {
                "id": "call",
                "type": "http_request",
                "config": {
                    "url": f"{peer_url}/secret",
                    "headers": {"Authorization": "Bearer {{$secrets.token}}"},
                },
            },
            {"id": "out", "type": "end", "config": {"outputs": {"status": "{{call.status}}"}}},
        ],
        "edges": [{"source": "in", "target": "call"}, {"source": "call", "target": "out"}],
    }
    headers = {"Api-Key": key}
    status, created = http_json(
        "POST", f"{base}/workflows", {"name": "secret", "definition": definition}, headers
    )
    assert status == 201, created
    workflow_id = str(created["id"])
    assert http_json("POST", f"{base}/workflows/{workflow_id}/publish", None, headers)[0] == 201
    return workflow_id


def run_sends(base: str, key: str, workflow_id: str, peer: Peer) -> str:
    """Runs the workflow to its end; the Authorization header the peer received."""
    headers = {"Api-Key": key}
    before = len(peer.calls)
    status, started = http_json(
        "POST", f"{base}/workflows/{workflow_id}/run", {"text_inputs": {"in": "x"}}, headers
    )
    assert status == 202, started
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, run = http_json("GET", f"{base}/workflows/runs/{started['id']}", None, headers)
        if status == 200 and run["status"] in ("completed", "error", "cancelled"):
            break
        time.sleep(0.2)
    assert run["status"] == "completed", run
    [call] = peer.calls[before:]
    return call.headers["Authorization"]


def test_make_run_starts_prints_and_stops_cleanly_twice(tmp_path: Path, peer: Peer) -> None:
    data_dir = tmp_path / "data"
    ports = Ports(temporal=free_port(), ui=free_port(), api=free_port())
    env = stack_env(data_dir, ports)
    marker = f"RUNLANE_DATA_DIR={data_dir}"

    with make_run(env, marker, tmp_path, "first") as run:
        wait_healthy(ports.api)
        banner = run.wait_for_banner()
        key = (data_dir / "dev-api-key").read_text().strip()
        assert banner["key"] == key
        assert banner["base"] == f"http://127.0.0.1:{ports.api}/v1"
        assert banner["docs"] == f"http://127.0.0.1:{ports.api}/docs"
        assert banner["ui"] == f"http://127.0.0.1:{ports.ui}"
        assert http_get(f"{banner['base']}/workflows", {"Api-Key": key}) == 200
        assert http_get(f"{banner['base']}/workflows") == 401
        assert http_get(banner["docs"]) == 200
        # The migrations ran before the worker and the API started (store/migrate.py).
        assert f"database at revision {head_revision()} (head)" in run.stderr_path.read_text()
        assert port_open(ports.ui), "the Temporal UI is not served on RUNLANE_TEMPORAL_UI_URL"
        # The UI decodes compressed payloads through the API's codec endpoint.
        with urllib.request.urlopen(f"{banner['ui']}/api/v1/settings", timeout=5) as response:
            codec = json.load(response)["Codec"]
        assert codec["Endpoint"] == f"http://127.0.0.1:{ports.api}/codec"
        # `make run` generated the secrets key into the data dir and gave it to the API and the
        # worker: a secret stored through the API reaches a peer through the worker.
        secrets_key = data_dir / "secrets-key"
        assert stat.S_IMODE(secrets_key.stat().st_mode) == 0o600
        assert f"Secrets key:  generated, stored in {secrets_key.resolve()}" in run.output()
        secret = f"canary-{uuid.uuid4()}"
        status, _ = http_json(
            "PUT", f"{banner['base']}/secrets/token", {"value": secret}, {"Api-Key": key}
        )
        assert status == 200
        workflow_id = secret_workflow(banner["base"], key, peer.url)
        assert run_sends(banner["base"], key, workflow_id, peer) == f"Bearer {secret}"
        check_stop(run, ports, marker)

    # Same data dir: the SQLite file Temporal used must open again (no stale lock), and the
    # search attributes already registered in it must not stop the dev server from starting.
    with make_run(env, marker, tmp_path, "second") as run:
        wait_healthy(ports.api)
        banner = run.wait_for_banner()
        assert banner["key"] == key, "the dev key must survive restarts"
        # So does the secrets key: the secret stored before the restart still decrypts.
        assert run_sends(banner["base"], key, workflow_id, peer) == f"Bearer {secret}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports.api}/healthz", headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["temporal"] == "ok"
        check_stop(run, ports, marker)


def child_pid(marker: str, command: str) -> int | None:
    """The pid of the stack's process whose command line contains `command`."""
    found = [pid for pid, line in processes_with_env(marker).items() if command in line]
    assert len(found) <= 1, f"more than one {command!r}: {found}"
    return found[0] if found else None


def kill_and_wait_for_replacement(run: MakeRun, marker: str, command: str) -> int:
    """SIGKILL the child running `command`; the pid of the one the supervisor starts instead."""
    old = child_pid(marker, command)
    assert old is not None, f"no {command!r} running\n{run.diagnostics()}"
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + RESTART_DEADLINE
    while (new := child_pid(marker, command)) in (None, old):
        assert run.process.poll() is None, f"make run exited\n{run.diagnostics()}"
        assert time.monotonic() < deadline, f"{command!r} not restarted\n{run.diagnostics()}"
        time.sleep(0.1)
    assert new is not None
    return new


def request_until_answered(
    method: str, url: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """The first answer that is not 503 or no answer: a child just restarted is reconnecting."""
    deadline = time.monotonic() + RESTART_DEADLINE
    while (answer := http_json(method, url, body, headers))[0] in (0, 503):
        assert time.monotonic() < deadline, f"{method} {url}: still {answer}"
        time.sleep(0.2)
    return answer


def run_completes(base: str, key: str) -> None:
    """A run started through the API completes: a worker executes its workflow."""
    headers = {"Api-Key": key}
    definition = {
        "nodes": [{"id": "in", "type": "start_text"}, {"id": "out", "type": "end"}],
        "edges": [{"source": "in", "target": "out"}],
    }
    status, created = request_until_answered(
        "POST", f"{base}/workflows", {"name": "survivor", "definition": definition}, headers
    )
    assert status == 201, created
    workflow = created["id"]
    published = request_until_answered(
        "POST", f"{base}/workflows/{workflow}/publish", None, headers
    )
    assert published[0] == 201, published
    status, started = request_until_answered(
        "POST", f"{base}/workflows/{workflow}/run", {"text_inputs": {"in": "x"}}, headers
    )
    assert status == 202, started
    deadline = time.monotonic() + RESTART_DEADLINE
    while True:
        status, state = http_json("GET", f"{base}/workflows/runs/{started['id']}", None, headers)
        if status == 200 and state["status"] == "completed":
            return
        assert time.monotonic() < deadline, f"run not completed: {status} {state}"
        time.sleep(0.2)


def test_make_run_restarts_a_killed_worker_api_and_temporal(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = Ports(temporal=free_port(), ui=free_port(), api=free_port())
    env = stack_env(data_dir, ports)
    marker = f"RUNLANE_DATA_DIR={data_dir}"

    with make_run(env, marker, tmp_path, "restarts") as run:
        wait_healthy(ports.api)
        banner = run.wait_for_banner()
        base, key = banner["base"], banner["key"]

        kill_and_wait_for_replacement(run, marker, "worker.py")
        run_completes(base, key)

        kill_and_wait_for_replacement(run, marker, "uvicorn api.main:app")
        wait_healthy(ports.api)
        run_completes(base, key)

        # The supervisor started this Temporal, so it restarts it too, on the same data file.
        kill_and_wait_for_replacement(run, marker, "server start-dev")
        deadline = time.monotonic() + RESTART_DEADLINE
        while http_json("GET", f"http://127.0.0.1:{ports.api}/healthz")[1] != HEALTHY:
            assert time.monotonic() < deadline, f"Temporal not back\n{run.diagnostics()}"
            time.sleep(0.2)
        run_completes(base, key)

        log = run.stderr_path.read_text(errors="replace")
        for name in ("worker", "api", "temporal"):
            assert f"restarted {name} (pid" in log, run.diagnostics()
        check_stop(run, ports, marker)
