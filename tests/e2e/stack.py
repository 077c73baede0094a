"""Running the real `make run` stack from tests: free ports, its own data dir, observed
from the outside (banner, HTTP, TCP ports, the process table), and always cleaned up."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Generous: the first `make run` on a machine may (re)install the virtualenv before starting.
START_DEADLINE = 180.0
STOP_DEADLINE = 60.0


@dataclass
class Ports:
    temporal: int
    ui: int
    api: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_get(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def http_json(
    method: str, url: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One JSON request: (status, decoded body); status 0 when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), json.load(response)
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode(errors="replace")
    except OSError:
        return 0, None


def processes_with_env(marker: str) -> dict[int, str]:
    """Live processes (pid -> command line) whose environment holds `marker`: every process
    that `make run` starts inherits the test's unique RUNLANE_DATA_DIR."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie is already dead, only not reaped by its parent yet
            found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


class MakeRun:
    def __init__(self, env: dict[str, str], out_dir: Path, name: str) -> None:
        self.stdout_path = out_dir / f"{name}.stdout"
        self.stderr_path = out_dir / f"{name}.stderr"
        # Files, not pipes: nobody has to drain them while the stack runs.
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                ["make", "run"],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                # Its own session and process group, like a shell job in a terminal.
                start_new_session=True,
            )

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def diagnostics(self) -> str:
        return (
            f"--- stdout\n{self.output()[-4000:]}\n"
            f"--- stderr\n{self.stderr_path.read_text(errors='replace')[-4000:]}"
        )

    def wait_for_banner(self) -> dict[str, str]:
        deadline = time.monotonic() + START_DEADLINE
        fields = {
            "key": r"API key:\s+(\S+)",
            "base": r"API base URL:\s+(\S+)",
            "docs": r"API docs:\s+(\S+)",
            "ui": r"Temporal UI:\s+(\S+)",
        }
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"make run exited early\n{self.diagnostics()}"
            text = self.output()
            found = {name: re.search(pattern, text) for name, pattern in fields.items()}
            if all(found.values()):
                return {name: match.group(1) for name, match in found.items() if match}
            time.sleep(0.2)
        pytest.fail(f"no start-up banner within {START_DEADLINE} s\n{self.diagnostics()}")

    def interrupt(self) -> int:
        """Ctrl-C in a terminal: SIGINT to the whole foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"make run still running {STOP_DEADLINE} s after SIGINT\n{self.diagnostics()}"
            )

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def wait_healthy(api_port: int) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while http_get(f"http://127.0.0.1:{api_port}/healthz") != 200:
        assert time.monotonic() < deadline, "GET /healthz never answered 200"
        time.sleep(0.2)


def wait_until_gone(marker: str) -> dict[int, str]:
    deadline = time.monotonic() + 10
    while (left := processes_with_env(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@contextmanager
def make_run(env: dict[str, str], marker: str, out_dir: Path, name: str) -> Iterator[MakeRun]:
    run = MakeRun(env, out_dir, name)
    try:
        yield run
    finally:
        # Only does something when the test failed: leave no server behind for the next test.
        run.kill()
        for pid in processes_with_env(marker):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def check_stop(run: MakeRun, ports: Ports, marker: str) -> None:
    code = run.interrupt()
    # The supervisor exits 0 on a requested stop; some make versions re-raise the SIGINT
    # they received themselves once the recipe is done.
    assert code in (0, -signal.SIGINT), f"exit code {code}\n{run.diagnostics()}"
    stderr = run.stderr_path.read_text(errors="replace")
    at = stderr.find("Traceback")
    # The traceback itself, not only the log's tail: it may be long before the stop.
    assert at < 0, f"a traceback in the stack's output:\n{stderr[max(0, at - 2000) : at + 4000]}"
    for port in (ports.api, ports.temporal, ports.ui):
        assert not port_open(port), f"port {port} still open after stop\n{run.diagnostics()}"
    assert wait_until_gone(marker) == {}, run.diagnostics()


def stack_env(data_dir: Path, ports: Ports) -> dict[str, str]:
    """The test's environment without RUNLANE_*/make variables, plus a private stack."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RUNLANE_") and key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }
    return env | {
        "RUNLANE_TEMPORAL_ADDRESS": f"127.0.0.1:{ports.temporal}",
        "RUNLANE_TEMPORAL_UI_URL": f"http://127.0.0.1:{ports.ui}",
        "RUNLANE_API_HOST": "127.0.0.1",
        "RUNLANE_API_PORT": str(ports.api),
        "RUNLANE_DATA_DIR": str(data_dir),
    }
