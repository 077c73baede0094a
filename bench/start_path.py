"""Where a REST start spends its time beyond a raw `client.start_workflow` (issue 12).

    .venv/bin/python -m bench.start_path [--serial 100] [--seconds 15]

Starts the bench stack with its API as `python -m bench.start_path serve`: the same app
(`api.main:app`) under uvicorn, with span probes wrapped around the functions a start passes
through. FastAPI's and Temporal's are named below by module; the project's are found by name in
whichever module defines them (api/ is being reorganized), and a name found nowhere is listed in
the report, its time left in the phase around it. A phase's time is its own: the phases inside
it are subtracted. Then, on that stack:

1. serial: one start at a time, alternating REST, REST with a `command_id` (the idempotency
   rows) and raw `client.start_workflow` of the same RunWorkflow input, `--serial` of each:
   wall and CPU ms per start in each phase, with nothing else in flight;
2. load: 32 clients start runs over REST for `--seconds` while py-spy samples the API; each
   sample goes to the innermost phase on its stack and the API's CPU seconds over the window
   are shared out by samples (CPU ms per start per phase); the spans give the wall ms a start
   spends in each phase under that load. The same 32 clients then start raw for `--seconds`.

Writes bench/results/profile-start.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.profile import record
from bench.stack import REPO, Stack, cpu_seconds

OUT = REPO / "bench" / "results" / "profile-start.txt"
CLIENTS = 32
TAG_HEADER = "x-bench-tag"
# Modules searched for the project's functions: every package of the project's own.
PROJECT_PACKAGES = ("api", "runs", "store", "runlane", "workflows", "activities")

# Third-party functions on the path, as (phase, module, qualified name in it). The module's
# attribute is replaced, so only callers that look it up there at call time are timed: FastAPI's
# request handler does, for each of these.
LIBRARY_PROBES = [
    ("HTTP body read", "starlette.requests", "Request.body"),
    ("JSON parse of the body", "starlette.requests", "Request.json"),
    ("FastAPI dependency solving (own time)", "fastapi.routing", "solve_dependencies"),
    ("request validation (RunCreate)", "fastapi.dependencies.utils", "request_body_to_args"),
    ("handler glue (endpoint, Command, launch)", "fastapi.routing", "run_endpoint_function"),
    ("response serialization (RunOut to JSON)", "fastapi.routing", "serialize_response"),
    ("response send", "starlette.responses", "Response.__call__"),
    ("Temporal client: request building", "temporalio.client", "Client.start_workflow"),
    ("Temporal client: RunInput payload encoding", "temporalio.converter", "DataConverter.encode"),
    ("Temporal RPC StartWorkflowExecution", "temporalio.service", "_BridgeServiceClient._rpc_call"),
    # Every SQLite statement, cursor step, commit or rollback is a hop to the connection's
    # thread and back to the event loop; a new connection starts a thread of its own.
    ("SQLite round trips (aiosqlite thread hand-offs)", "aiosqlite.core", "Connection._execute"),
    ("SQLite connections opened", "aiosqlite.core", "Connection._connect"),
]
# The project's functions, as (phase, qualified names): whichever exist are timed.
PROJECT_PROBES = [
    ("auth (API key)", ["current_organization"]),
    (
        "store: definition load",
        [
            "WorkflowRepository.get_with_published",
            "WorkflowRepository.get",
            "WorkflowRepository.get_snapshot",
        ],
    ),
    ("definition re-check", ["checked_definition"]),
    ("input resolution", ["RunStarter.resolve_inputs", "InputResolver.resolve"]),
    (
        "idempotency rows",
        [
            "previous_result",
            "claim",
            "CommandLog._previous",
            "CommandLog._claim",
            "IdempotencyRepository.get",
            "IdempotencyRepository.claim",
        ],
    ),
    ("RunInput build (plans, model)", ["RunStarter.run_input"]),
    ("start arguments (search attributes, summary)", ["RunStarter.start"]),
    ("response building (initial state, RunOut)", ["initial_state", "record_of", "run_record"]),
    (
        "handler glue (endpoint, Command, launch)",
        ["RunStarter.launch", "RunService.start", "RunService._launch", "CommandLog.execute"],
    ),
]
OTHER_DEPS = "dependency providers (settings, repositories, starter)"
ENVELOPE = "server (routing, middleware, unprobed)"
# Where a start's time is also spent by a raw start (the Temporal client and the server).
IN_RAW_START = {
    "Temporal client: request building",
    "Temporal client: RunInput payload encoding",
    "Temporal RPC StartWorkflowExecution",
}


# ------------------------------------------------------------------ probes (the API process)


@dataclass(eq=False)
class _Frame:
    phase: str
    wall0: float
    cpu0: float
    child_wall: float = 0.0
    child_cpu: float = 0.0


@dataclass(eq=False)
class _Trace:
    tag: str
    # CPU time of the thread, for serial starts only: under concurrency the thread's CPU in a
    # span is other requests' work too (and the clock is a system call, ~0.4 us here).
    cpu_clock: bool
    wall: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    cpu: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: Counter[str] = field(default_factory=Counter)
    stack: list[_Frame] = field(default_factory=list)


_CURRENT: ContextVar[_Trace | None] = ContextVar("bench_start_trace", default=None)
# One wrapper per wrapped function (by id of the original).
_WRAPPERS: dict[int, Callable[..., Any]] = {}
_TRACES: defaultdict[str, list[_Trace]] = defaultdict(list)


def _enter(phase: str) -> _Frame | None:
    trace = _CURRENT.get()
    if trace is None:
        return None
    frame = _Frame(phase, time.perf_counter(), time.thread_time() if trace.cpu_clock else 0.0)
    trace.stack.append(frame)
    trace.calls[phase] += 1
    return frame


def _leave(frame: _Frame | None) -> None:
    trace = _CURRENT.get()
    if frame is None or trace is None or frame not in trace.stack:
        return
    wall = time.perf_counter() - frame.wall0
    cpu = time.thread_time() - frame.cpu0 if trace.cpu_clock else 0.0
    trace.stack.remove(frame)
    trace.wall[frame.phase] += wall - frame.child_wall
    trace.cpu[frame.phase] += cpu - frame.child_cpu
    if trace.stack:
        trace.stack[-1].child_wall += wall
        trace.stack[-1].child_cpu += cpu


def _probe(phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            frame = _enter(phase)
            try:
                return await fn(*args, **kwargs)
            finally:
                _leave(frame)

        return timed_async

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        frame = _enter(phase)
        try:
            return fn(*args, **kwargs)
        finally:
            _leave(frame)

    return timed


def _project_functions() -> Iterator[tuple[str, Any, str, Callable[..., Any]]]:
    """(qualified name, owner, attribute, function) of each function the project defines."""
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in PROJECT_PACKAGES:
            continue
        for attribute, value in list(vars(module).items()):
            if inspect.isfunction(value) and value.__module__ == name:
                yield value.__qualname__, module, attribute, value
            elif inspect.isclass(value) and value.__module__ == name:
                for method, member in list(vars(value).items()):
                    if inspect.isfunction(member):
                        yield member.__qualname__, value, method, member


def _replace_everywhere(original: Callable[..., Any], wrapped: Callable[..., Any]) -> None:
    """Rebind every module-level name of `original` (`from x import f` copies the reference)."""
    for module in list(sys.modules.values()):
        if module is None:
            continue
        for attribute, value in list(vars(module).items()):
            if value is original:
                setattr(module, attribute, wrapped)


def install() -> dict[str, Any]:
    """Wrap the probes around the start path; returns what was probed, by phase, what was not
    found, and the functions (qualified names) py-spy's frames are matched against."""
    probed: dict[str, list[str]] = defaultdict(list)
    missing: list[str] = []
    frames: dict[str, str] = {}
    for phase, module_name, qualname in LIBRARY_PROBES:
        owner: Any = importlib.import_module(module_name)
        *path, attribute = qualname.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, attribute)
        setattr(owner, attribute, _probe(phase, original))
        probed[phase].append(f"{module_name}.{qualname}")
        frames[qualname] = phase
    found: defaultdict[str, list[tuple[Any, str, Callable[..., Any]]]] = defaultdict(list)
    for qualname, owner, attribute, fn in _project_functions():
        found[qualname].append((owner, attribute, fn))
    for phase, names in PROJECT_PROBES:
        for qualname in names:
            if qualname not in found:
                missing.append(qualname)
                continue
            for owner, attribute, original in found[qualname]:
                wrapped = _WRAPPERS.setdefault(id(original), _probe(phase, original))
                if inspect.isclass(owner):
                    setattr(owner, attribute, wrapped)
                else:
                    _replace_everywhere(original, wrapped)
                probed[phase].append(f"{original.__module__}.{qualname}")
            frames[qualname] = phase
    probed[OTHER_DEPS] = sorted(_PROVIDERS.values())
    frames.update(dict.fromkeys(_PROVIDERS, OTHER_DEPS))
    return {"probed": dict(probed), "missing": missing, "frames": frames}


# The dependency providers wrapped: qualified name -> module and qualified name.
_PROVIDERS: dict[str, str] = {}


def wrap_dependencies() -> None:
    """Wrap the project's dependency providers in their `Depends` markers (the `Annotated`
    aliases of api/deps.py), before the routes that use them are built: a route holds the
    function itself, so rebinding its name later would not reach it. One wrapper per function,
    so FastAPI's per-request dependency cache still hits."""
    from fastapi import params

    auth_phase, auth_names = PROJECT_PROBES[0]
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in PROJECT_PACKAGES:
            continue
        for value in list(vars(module).values()):
            for marker in getattr(value, "__metadata__", ()):
                call = getattr(marker, "dependency", None)
                if not isinstance(marker, params.Depends) or not inspect.isfunction(call):
                    continue
                if call.__module__.split(".")[0] not in PROJECT_PACKAGES:
                    continue
                if id(call) not in _WRAPPERS:
                    phase = auth_phase if call.__qualname__ in auth_names else OTHER_DEPS
                    _WRAPPERS[id(call)] = _probe(phase, call)
                    if phase == OTHER_DEPS:
                        _PROVIDERS[call.__qualname__] = f"{call.__module__}.{call.__qualname__}"
                object.__setattr__(marker, "dependency", _WRAPPERS[id(call)])


class Envelope:
    """The app, with a trace per `POST .../run` (tagged by the client's header) and
    `GET /_bench/spans` (the traces so far, summarized) / `POST /_bench/reset`."""

    def __init__(self, app: Any, installed: dict[str, Any]) -> None:
        self.app = app
        self.installed = installed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith("/_bench/"):
            if path == "/_bench/reset":
                _TRACES.clear()
            body = {"spans": summarize_traces(), **self.installed}
            await _send_json(send, body)
            return
        if not (scope["method"] == "POST" and path.endswith("/run")):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        tag = headers.get(TAG_HEADER.encode(), b"untagged").decode()
        trace = _Trace(tag=tag, cpu_clock=tag.startswith("serial"))
        token = _CURRENT.set(trace)
        frame = _enter(ENVELOPE)
        try:
            await self.app(scope, receive, send)
        finally:
            _leave(frame)
            _CURRENT.reset(token)
            _TRACES[trace.tag].append(trace)


async def _send_json(send: Any, body: Any) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def summarize_traces() -> dict[str, Any]:
    """Per tag: starts, and mean own wall and CPU ms per start in each phase."""
    summary: dict[str, Any] = {}
    for tag, traces in _TRACES.items():
        phases = sorted({phase for t in traces for phase in t.wall})
        totals = [sum(t.wall.values()) * 1000 for t in traces]
        summary[tag] = {
            "starts": len(traces),
            "in_server_wall_ms_mean": round(statistics.fmean(totals), 3),
            "in_server_wall_ms_p50": round(statistics.median(totals), 3),
            "wall_ms": {
                p: round(sum(t.wall[p] for t in traces) * 1000 / len(traces), 3) for p in phases
            },
            "cpu_ms": {
                p: round(sum(t.cpu[p] for t in traces) * 1000 / len(traces), 3) for p in phases
            },
            "calls": {p: round(sum(t.calls[p] for t in traces) / len(traces), 2) for p in phases},
        }
    return summary


def serve() -> None:
    """The API as `uvicorn api.main:app` runs it, under the probes (the stack's API command)."""
    import uvicorn

    importlib.import_module("api.deps")  # the dependency aliases, before the routes use them
    wrap_dependencies()
    from api.main import app

    installed = install()
    uvicorn.run(
        Envelope(app, installed),
        host="127.0.0.1",
        port=int(os.environ["RUNLANE_API_PORT"]),
        log_level="warning",
    )


# ------------------------------------------------------------------ the measurement (bench)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


IDLE_LEAVES = (
    "_connection_worker_thread (aiosqlite/core.py:59)",  # waits for the next statement
    "EpollSelector.select",
    "Condition.wait",
)


def attribute_samples(collapsed: str, frames: dict[str, str]) -> tuple[Counter[str], int]:
    """py-spy's collapsed stacks -> samples per phase (the innermost probed function on the
    stack), and the samples that were only waiting (dropped)."""
    phases: Counter[str] = Counter()
    idle = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        names = stack.split(";")
        if any(names[-1].startswith(leaf) for leaf in IDLE_LEAVES):
            idle += n
            continue
        phase = None
        for name in reversed(names):
            phase = frames.get(name.split(" (")[0])
            if phase is not None:
                break
        if phase is None:
            if names == [""]:
                # A thread with no Python frame: Temporal core's (Rust) threads hold a thread
                # state while they hand results to Python.
                phase = "Temporal core threads (no Python frame)"
            elif any("_connection_worker_thread" in name for name in names):
                phase = "SQLite statements (aiosqlite thread)"
            elif any(name.startswith("Thread._bootstrap") for name in names):
                phase = "other threads"
            elif any(name.startswith("Envelope.__call__") for name in names):
                phase = ENVELOPE
            elif any("uvicorn/protocols" in name for name in names):
                phase = "uvicorn HTTP (parsing, transport)"
            else:
                phase = "event loop and callbacks (outside any request)"
        phases[phase] += n
    return phases, idle


@dataclass
class Sides:
    api: httpx.AsyncClient
    workflow_id: str
    raw: Callable[[], Awaitable[str]]

    async def rest(self, tag: str, command_id: str | None = None) -> str:
        body: dict[str, Any] = {"json_inputs": {"in": {"n": 1}}}
        if command_id is not None:
            body["command_id"] = command_id
        response = await self.api.post(
            f"/v1/workflows/{self.workflow_id}/run", json=body, headers={TAG_HEADER: tag}
        )
        response.raise_for_status()
        return str(response.json()["id"])


async def drain(client: Any, run_ids: list[str]) -> None:
    """Wait for the runs started so far (untimed), so the next step starts on a quiet system."""
    from temporalio.client import WorkflowFailureError

    for run_id in run_ids:
        try:
            await client.get_workflow_handle(run_id).result()
        except WorkflowFailureError:
            pass
    run_ids.clear()


async def measure(stack: Stack, serial: int, seconds: float) -> dict[str, Any]:
    from temporalio.client import Client

    from bench import scenarios
    from runlane.converter import data_converter

    client = await Client.connect(stack.temporal_address, data_converter=data_converter())
    async with stack.api_client() as api:
        ctx = scenarios.Context(stack, client, api, "", None, True)  # type: ignore[arg-type]
        workflow_id = await scenarios.publish(ctx, scenarios.transform_chain(10))
        first = await scenarios.start_run(ctx, workflow_id)
        await scenarios.run_result(ctx, first)
        template = await scenarios.started_with(client, first)
        sides = Sides(api, workflow_id, scenarios.raw_start(client, stack.task_queue, *template))

        # 1. serial, alternating; 10 of each first as warm-up.
        latencies: dict[str, list[float]] = defaultdict(list)
        run_ids: list[str] = []
        steps: dict[str, Callable[[int], Awaitable[str]]] = {
            "rest": lambda i: sides.rest("serial-rest"),
            "rest_command_id": lambda i: sides.rest(
                "serial-command", f"bench-{time.time_ns()}-{i}"
            ),
            "raw": lambda i: sides.raw(),
        }
        for index in range(-10, serial):
            for side, step in steps.items():
                started = time.perf_counter()
                run_ids.append(await step(index))
                if index >= 0:
                    latencies[side].append((time.perf_counter() - started) * 1000)
            if len(run_ids) >= 60:
                await drain(client, run_ids)
        await drain(client, run_ids)
        serial_spans = (await api.get("/_bench/spans")).json()
        await api.post("/_bench/reset")

        # 2. load: REST under py-spy, then raw, 32 clients each for `seconds`.
        async def load(one: Callable[[], Awaitable[str]]) -> tuple[int, list[float]]:
            deadline = time.monotonic() + seconds
            timings: list[float] = []

            async def client_loop() -> None:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    run_ids.append(await one())
                    timings.append((time.perf_counter() - started) * 1000)

            await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))
            return len(timings), timings

        collapsed = stack.workdir / "api-start.collapsed"
        spy = record(stack.pid("api"), int(seconds) + 1, collapsed)
        time.sleep(0.5)  # py-spy attaches
        cpu_before = cpu_seconds(stack.pid("api"))
        rest_count, rest_timings = await load(lambda: sides.rest("load"))
        api_cpu = cpu_seconds(stack.pid("api")) - cpu_before
        spy.wait(timeout=120)
        load_spans = (await api.get("/_bench/spans")).json()
        await drain(client, run_ids)
        raw_count, raw_timings = await load(sides.raw)
        await drain(client, run_ids)
    return {
        "serial": serial,
        "seconds": seconds,
        "serial_latency": {side: values for side, values in latencies.items()},
        "serial_spans": serial_spans,
        "load_spans": load_spans,
        "rest_starts": rest_count,
        "rest_timings": rest_timings,
        "raw_starts": raw_count,
        "raw_timings": raw_timings,
        "api_cpu_s": api_cpu,
        "collapsed": collapsed.read_text() if collapsed.exists() else "",
    }


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def report(result: dict[str, Any], code: str) -> str:
    spans = result["serial_spans"]
    frames: dict[str, str] = spans["frames"]
    lat = result["serial_latency"]
    p50 = {side: percentile(values, 50) for side, values in lat.items()}
    rest = spans["spans"]["serial-rest"]
    command = spans["spans"]["serial-command"]
    lines = [
        "REST start path against a raw client.start_workflow of the same RunWorkflow input "
        "(python -m bench.start_path)",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}, code {code}, {os.cpu_count()} cores; the "
        "bench stack (dev server on SQLite WAL, worker, API); a 10-transform run "
        "(scenarios.transform_chain(10)) started with one start_json input, no documents.",
        "",
        f"1. Serial: one start at a time, {result['serial']} of each, alternating "
        "(REST, REST with a command_id, raw).",
        "",
        *_table(
            ["client-side latency", "p50 ms", "p95 ms"],
            [
                [side, f"{percentile(values, 50):.1f}", f"{percentile(values, 95):.1f}"]
                for side, values in lat.items()
            ],
        ),
        "",
        f"REST beyond raw at p50: {p50['rest'] - p50['raw']:.1f} ms; with a command_id "
        f"{p50['rest_command_id'] - p50['raw']:.1f} ms. In the server (mean): "
        f"{rest['in_server_wall_ms_mean']:.1f} ms and {command['in_server_wall_ms_mean']:.1f} ms.",
        "",
        "Own time per start in each phase (a phase excludes the phases inside it), mean: wall ms, "
        "CPU ms of the API's event-loop thread, calls per start. `raw too`: a raw start spends "
        "this as well (in the bench process).",
        "",
    ]
    phases = sorted(
        set(rest["wall_ms"]) | set(command["wall_ms"]),
        key=lambda p: -max(rest["wall_ms"].get(p, 0), command["wall_ms"].get(p, 0)),
    )
    rows = [
        [
            phase,
            *(
                value
                for side in (rest, command)
                for value in (
                    f"{side['wall_ms'].get(phase, 0):.2f}",
                    f"{side['cpu_ms'].get(phase, 0):.2f}",
                    f"{side['calls'].get(phase, 0):g}",
                )
            ),
            "yes" if phase in IN_RAW_START else "",
        ]
        for phase in phases
    ]
    rows.append(
        [
            "**in the server, total**",
            f"{rest['in_server_wall_ms_mean']:.2f}",
            f"{sum(rest['cpu_ms'].values()):.2f}",
            "",
            f"{command['in_server_wall_ms_mean']:.2f}",
            f"{sum(command['cpu_ms'].values()):.2f}",
            "",
            "",
        ]
    )
    lines += _table(
        ["phase", "REST wall", "CPU", "calls", "command_id wall", "CPU", "calls", "raw too"], rows
    )
    rest_rate = result["rest_starts"] / result["seconds"]
    raw_rate = result["raw_starts"] / result["seconds"]
    samples, idle = attribute_samples(result["collapsed"], frames)
    total = sum(samples.values())
    starts = result["rest_starts"]
    cpu_per_start = result["api_cpu_s"] * 1000 / max(starts, 1)
    load = result["load_spans"]["spans"].get("load", {"wall_ms": {}, "calls": {}})
    lines += [
        "",
        f"2. Load: {CLIENTS} clients for {result['seconds']:g} s each, REST (the API under "
        "py-spy) then raw; one after the other, not alternated (`make bench` start_throughput "
        "gives the ratio).",
        "",
        *_table(
            ["side", "starts/s", "p50 ms", "p95 ms"],
            [
                [
                    name,
                    f"{rate:.1f}",
                    f"{percentile(timings, 50):.1f}",
                    f"{percentile(timings, 95):.1f}",
                ]
                for name, rate, timings in (
                    ("REST", rest_rate, result["rest_timings"]),
                    ("raw", raw_rate, result["raw_timings"]),
                )
            ],
        ),
        "",
        f"API CPU: {result['api_cpu_s']:.2f} s over the REST window, {cpu_per_start:.2f} ms per "
        f"start ({starts} starts), shared out by py-spy's {total} busy samples ({idle} samples "
        "only waiting dropped). Wall: own time per start in each phase under this load, mean, "
        f"from the spans (in the server in all: {load.get('in_server_wall_ms_mean', 0):.1f} ms).",
        "",
    ]
    phases = sorted(
        set(samples) | set(load["wall_ms"]),
        key=lambda p: -(load["wall_ms"].get(p, 0) + samples.get(p, 0) / max(total, 1)),
    )
    lines += _table(
        ["phase", "wall ms/start", "calls", "CPU ms/start", "CPU share"],
        [
            [
                phase,
                f"{load['wall_ms'].get(phase, 0):.2f}",
                f"{load['calls'].get(phase, 0):g}",
                f"{samples.get(phase, 0) / max(total, 1) * cpu_per_start:.2f}",
                f"{100 * samples.get(phase, 0) / max(total, 1):.1f}%",
            ]
            for phase in phases
        ],
    )
    lines += ["", "Probed, by phase:"]
    lines += [f"- {phase}: {', '.join(names)}" for phase, names in spans["probed"].items()]
    if spans["missing"]:
        lines.append(
            "- not found in this code (their time stays in the phase around them): "
            + ", ".join(spans["missing"])
        )
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in result["collapsed"].splitlines():
        stack, _, count = line.rpartition(" ")
        names = stack.split(";")
        if not count.isdigit() or any(names[-1].startswith(leaf) for leaf in IDLE_LEAVES):
            continue
        own[names[-1]] += int(count)
        # Inclusive: frames inside the app, where a start's own work is.
        if "Envelope.__call__" in stack:
            inside = names[next(i for i, n in enumerate(names) if n.startswith("Envelope.")) :]
            for name in set(inside):
                inclusive[name] += int(count)

    def ms(n: int) -> str:
        return f"{n / max(total, 1) * cpu_per_start:5.2f} ms {100 * n / max(total, 1):5.1f}%"

    uuid4 = sum(n for frame, n in own.items() if frame.startswith("uuid4 "))
    lines += [
        "",
        "py-spy counts a thread that sits in a system call, or was descheduled at one, as busy: "
        "on a loaded machine it over-weights lines that make system calls (the aiosqlite queue "
        "hand-off, socket writes, getrandom). Here uuid4, about 1.3 us a call in isolation and "
        f"2 calls per start, is charged {uuid4 / max(total, 1) * cpu_per_start:.2f} ms per start "
        f"({100 * uuid4 / max(total, 1):.1f}% of the busy samples). Take CPU costs from the "
        "serial table (the thread's CPU clock) and the load table for where the wall time goes.",
    ]
    lines += ["", "Top own time under load (py-spy, busy samples of the API; CPU ms per start):"]
    lines += [f"{ms(n)}  {frame}" for frame, n in own.most_common(25)]
    lines += ["", "Top inclusive time inside the app under load (CPU ms per start):"]
    lines += [
        f"{ms(n)}  {frame}"
        for frame, n in inclusive.most_common(60)
        if not frame.startswith(("_probe.", "Envelope."))
    ][:40]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", nargs="?", choices=["serve"], help=argparse.SUPPRESS)
    parser.add_argument("--serial", type=int, default=100, help="serial starts of each kind")
    parser.add_argument("--seconds", type=float, default=15, help="seconds of load per side")
    parser.add_argument("--code", help="what code is measured (default: git describe)")
    args = parser.parse_args()
    if args.command == "serve":
        serve()
        return
    stack = Stack(api_command=[sys.executable, "-m", "bench.start_path", "serve"])
    stack.start()
    try:
        result = asyncio.run(measure(stack, args.serial, args.seconds))
    finally:
        stack.stop()
    code = args.code or (
        subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        or "unknown"
    )
    text = report(result, code)
    OUT.write_text(text + "\n")
    sys.stdout.write(text + f"\n\nwrote {OUT}\n")


if __name__ == "__main__":
    main()
