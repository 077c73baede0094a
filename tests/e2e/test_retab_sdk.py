"""The official Retab Python SDK of the seeds' era (retab==0.0.130), with nothing changed but
its base URL, against a real `make run` stack (API.md part 2 "Seed compatibility").

The SDK needs Python 3.12, so it gets a virtualenv of its own, cached under
~/.cache/runlane (never the project's .venv), and runs tests/e2e/retab_sdk_session.py there.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import (
    REPO_ROOT,
    Ports,
    check_stop,
    free_port,
    make_run,
    stack_env,
    wait_healthy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SDK = "retab==0.0.130"
SDK_ENV = Path(
    os.environ.get(
        "RUNLANE_RETAB_SDK_ENV", Path.home() / ".cache" / "runlane" / "retab-0.0.130-py312"
    )
)
SESSION = Path(__file__).with_name("retab_sdk_session.py")
# pip gives up on an unreachable index after this many seconds per try instead of hanging.
PIP_TIMEOUT_S = 30
PIP_DEADLINE_S = 600


def find_python312() -> str | None:
    candidates = [os.environ.get("RUNLANE_PYTHON312"), shutil.which("python3.12")]
    candidates += [str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        version = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if version.stdout.strip() == "True":
            return candidate
    return None


def sdk_python() -> Path:
    """The interpreter of a virtualenv holding the SDK, made (once) when missing."""
    python = SDK_ENV / "bin" / "python"
    ready = SDK_ENV / ".runlane-ready"
    if ready.exists() and ready.read_text().strip() == SDK and python.exists():
        return python
    python312 = find_python312()
    if python312 is None:
        pytest.skip(
            f"Python 3.12 not found (python3.12 on PATH, ~/.pyenv/versions/3.12*, or "
            f"RUNLANE_PYTHON312): {SDK} needs it, so the Retab SDK test cannot run here."
        )
    SDK_ENV.parent.mkdir(parents=True, exist_ok=True)
    # One installer at a time: test runs on one machine share the cache.
    with (SDK_ENV.parent / f"{SDK_ENV.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists() and ready.read_text().strip() == SDK and python.exists():
            return python
        subprocess.run([python312, "-m", "venv", "--clear", str(SDK_ENV)], check=True, timeout=120)
        command = [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "--timeout",
            str(PIP_TIMEOUT_S),
            "--retries",
            "2",
            SDK,
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"pip install {SDK} into {SDK_ENV} took over {PIP_DEADLINE_S} s")
        if done.returncode != 0:
            pytest.fail(
                f"pip could not install {SDK} into {SDK_ENV} (is PyPI reachable?):\n"
                f"{done.stderr[-3000:]}"
            )
        subprocess.run([str(python), "-c", "import retab"], check=True, timeout=120)
        ready.write_text(SDK + "\n")
    return python


def api_call(base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{base}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Api-Key": key, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def publish(base: str, key: str, name: str, nodes: list[dict], edges: list[dict]) -> str:
    definition = {"nodes": nodes, "edges": edges}
    created = api_call(base, key, "POST", "/workflows", {"name": name, "definition": definition})
    api_call(base, key, "POST", f"/workflows/{created['id']}/publish")
    return str(created["id"])


def test_the_retab_sdk_drives_runlane(tmp_path: Path) -> None:
    python = sdk_python()
    data_dir = tmp_path / "data"
    ports = Ports(temporal=free_port(), ui=free_port(), api=free_port())
    env = stack_env(data_dir, ports)
    marker = f"RUNLANE_DATA_DIR={data_dir}"
    document = tmp_path / "invoice.txt"
    document.write_text("Invoice #42: 1200 EUR")

    with make_run(env, marker, tmp_path, "retab-sdk") as run:
        wait_healthy(ports.api)
        base = f"http://127.0.0.1:{ports.api}/v1"
        key = (data_dir / "dev-api-key").read_text().strip()
        json_start = {"id": "json-node-1", "type": "start_json", "label": "Metadata"}
        workflow_id = publish(
            base,
            key,
            "Invoice Processing",
            [
                {"id": "start-node-1", "type": "start", "label": "Invoice Input"},
                json_start,
                {
                    "id": "transform-node-1",
                    "type": "transform",
                    "label": "Shape",
                    "config": {
                        "output": {
                            "customer": "{{json-node-1.customer_id}}",
                            "file": "{{start-node-1.filename}}",
                        }
                    },
                },
                {
                    "id": "end-node-1",
                    "type": "end",
                    "config": {"outputs": {"invoice": "{{transform-node-1}}"}},
                },
            ],
            [
                {"source": "start-node-1", "target": "transform-node-1"},
                {"source": "json-node-1", "target": "transform-node-1"},
                {"source": "transform-node-1", "target": "end-node-1"},
            ],
        )
        slow_workflow_id = publish(
            base,
            key,
            "Slow",
            [
                json_start,
                {"id": "wait", "type": "delay", "config": {"seconds": 300}},
                {"id": "end-node-1", "type": "end"},
            ],
            [
                {"source": "json-node-1", "target": "wait"},
                {"source": "wait", "target": "end-node-1"},
            ],
        )
        # A run that ends in error (a JMESPath type error at run time), with no I/O.
        failing_workflow_id = publish(
            base,
            key,
            "Failing",
            [
                json_start,
                {"id": "check", "type": "condition", "config": {"expression": "abs('x')"}},
                {"id": "end-node-1", "type": "end"},
            ],
            [
                {"source": "json-node-1", "target": "check"},
                {"source": "check", "target": "end-node-1", "branch": "true"},
            ],
        )
        given = {
            "base_url": base,
            "api_key": key,
            "workflow_id": workflow_id,
            "slow_workflow_id": slow_workflow_id,
            "failing_workflow_id": failing_workflow_id,
            "document": str(document),
        }
        done = subprocess.run(
            [str(python), str(SESSION), json.dumps(given)],
            capture_output=True,
            text=True,
            timeout=300,
            env={k: v for k, v in os.environ.items() if not k.startswith(("RETAB_", "RUNLANE_"))},
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{run.diagnostics()}"
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        sys.stdout.write(json.dumps(seen, indent=1) + "\n")  # shown with pytest -s

        created = seen["created"]
        run_id = created["id"]
        assert run_id.startswith("run_") and created["status"] in ("pending", "running")
        assert created["workflow_id"] == workflow_id
        assert created["workflow_name"] == "Invoice Processing"
        [(node, file_ref)] = created["input_documents"].items()
        assert node == "start-node-1" and file_ref["id"].startswith("file_")
        assert (file_ref["filename"], file_ref["mime_type"]) == ("invoice.txt", "text/plain")
        assert created["started_at"] >= created["created_at"]

        got = seen["got"]
        assert (got["id"], got["status"], got["waited_status"]) == (
            run_id,
            "completed",
            "completed",
        )
        assert got["final_outputs"] == {"invoice": {"customer": "cust_123", "file": "invoice.txt"}}
        assert got["duration_ms"] is not None and got["completed_at"] is not None
        assert got["updated_at"] >= got["completed_at"]

        restarted = seen["restarted"]
        # One command_id, one new run: the replay answers the run the first call started.
        assert restarted["first"] == restarted["again"] != run_id
        assert restarted["first"].startswith("run_")

        listed = seen["listed"]
        newest_first = [restarted["first"], run_id]
        assert listed["ids"] == newest_first
        assert listed["has_more"] is False and listed["before"] is None
        assert listed["one_by_one"] == newest_first
        assert listed["oldest_first"] == newest_first[::-1]

        assert seen["step"] == {
            "block_id": "transform-node-1",
            "block_type": "transform",
            "block_label": "Shape",
            "status": "completed",
            "error": None,
        }
        assert seen["missing_step"] == {"http_error": 404}

        # Where Runlane keeps its own contract (README "Using the Retab SDK"): steps are
        # {"data": [...]}, not a bare list; cancel answers the run, not {"run": ...}; a run's
        # error is an object, not a string; workflows are sorted by created_at only.
        assert seen["steps_list"] == {"unreadable": [""]}
        assert seen["cancel"] == {"unreadable": ["run"]}
        assert seen["cancelled"] == "cancelled", "the cancel took effect all the same"
        assert seen["failing_created"] in ("pending", "running")
        assert seen["failed_get"] == {"unreadable": ["error"]}
        assert seen["workflows_list"] == {"http_error": 422}

        # The README's snippet, verbatim, against the same stack.
        readme = (REPO_ROOT / "README.md").read_text()
        section = readme[readme.index("## Using the Retab SDK") :]
        snippet = section[section.index("```python\n") + 10 : section.index("```\n", 10)]
        (tmp_path / "readme").mkdir()
        (tmp_path / "readme" / "snippet.py").write_text(snippet)
        shown = subprocess.run(
            [str(python), "snippet.py"],
            cwd=tmp_path / "readme",
            capture_output=True,
            text=True,
            timeout=120,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith(("RETAB_", "RUNLANE_"))},
                "RETAB_API_KEY": key,
                "RETAB_API_BASE_URL": base,
                "WORKFLOW_ID": workflow_id,
            },
        )
        assert shown.returncode == 0, f"{shown.stdout}\n{shown.stderr}"
        assert shown.stdout.split() == ["completed", "Invoice", "Processing"]
        check_stop(run, ports, marker)
