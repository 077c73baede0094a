"""`make run` as a user runs it: the real supervisor, Temporal dev server, worker and API.

The stack is started twice on one data dir, which is what proves that a stop leaves no stale
SQLite lock behind.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.stack import (
    Ports,
    check_stop,
    free_port,
    http_get,
    make_run,
    port_open,
    stack_env,
    wait_healthy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def test_make_run_starts_prints_and_stops_cleanly_twice(tmp_path: Path) -> None:
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
        assert port_open(ports.ui), "the Temporal UI is not served on RUNLANE_TEMPORAL_UI_URL"
        # The UI decodes compressed payloads through the API's codec endpoint.
        with urllib.request.urlopen(f"{banner['ui']}/api/v1/settings", timeout=5) as response:
            codec = json.load(response)["Codec"]
        assert codec["Endpoint"] == f"http://127.0.0.1:{ports.api}/codec"
        check_stop(run, ports, marker)

    # Same data dir: the SQLite file Temporal used must open again (no stale lock), and the
    # search attributes already registered in it must not stop the dev server from starting.
    with make_run(env, marker, tmp_path, "second") as run:
        wait_healthy(ports.api)
        banner = run.wait_for_banner()
        assert banner["key"] == key, "the dev key must survive restarts"
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports.api}/healthz", headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["temporal"] == "ok"
        check_stop(run, ports, marker)
