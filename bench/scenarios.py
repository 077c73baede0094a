"""Each scenario runs Runlane and a raw-temporalio baseline of the same shape, side by side
on the same server in the same run, and returns figures (ratios are Runlane / raw)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.converter import decode_typed_search_attributes

from activities.models import PureBatchResult
from activities.recorded import LOCAL_ACTIVITY_MARKER
from bench.raw import (
    RawChainWorkflow,
    RawFanoutWorkflow,
    RawLongChainWorkflow,
    RawMapWorkflow,
    RawMidCallChainWorkflow,
    RawReviewWorkflow,
)
from bench.stack import Stack, cpu_seconds, rss_bytes
from runlane import ids
from tests.peer import Peer
from workflows.models import RunInput, RunState
from workflows.run_workflow import RunWorkflow


@dataclass
class Context:
    stack: Stack
    client: Client
    api: httpx.AsyncClient
    raw_queue: str
    peer: Peer
    quick: bool


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def latency_figures(runlane: list[float], raw: list[float]) -> dict[str, Any]:
    """p50/p95 in ms of paired samples, Runlane and raw, and their p50 ratio."""
    return {
        "samples": len(runlane),
        "runlane_p50_ms": round(percentile(runlane, 50), 1),
        "runlane_p95_ms": round(percentile(runlane, 95), 1),
        "raw_p50_ms": round(percentile(raw, 50), 1),
        "raw_p95_ms": round(percentile(raw, 95), 1),
        "ratio_p50": round(percentile(runlane, 50) / percentile(raw, 50), 2),
    }


def chain_edges(ids: list[str]) -> list[dict[str, str]]:
    return [{"source": a, "target": b} for a, b in zip(ids, ids[1:], strict=False)]


def transform_chain(length: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "in", "type": "start_json"}]
    previous = "in"
    for index in range(length):
        node_id = f"t{index}"
        nodes.append(
            {"id": node_id, "type": "transform", "config": {"output": f"{{{{{previous}}}}}"}}
        )
        previous = node_id
    nodes.append({"id": "out", "type": "end", "config": {"outputs": f"{{{{{previous}}}}}"}})
    return {"nodes": nodes, "edges": chain_edges([n["id"] for n in nodes])}


def http_chain(length: int, url: str) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "in", "type": "start_json"}]
    for index in range(length):
        nodes.append(
            {"id": f"h{index}", "type": "http_request", "config": {"method": "POST", "url": url}}
        )
    nodes.append({"id": "out", "type": "end"})
    return {"nodes": nodes, "edges": chain_edges([n["id"] for n in nodes])}


def fanout(width: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"id": "in", "type": "start_json"},
        {"id": "first", "type": "transform", "config": {"output": 1}},
    ]
    edges = [{"source": "in", "target": "first"}]
    for index in range(width):
        nodes.append({"id": f"m{index}", "type": "transform", "config": {"output": "{{first}}"}})
        edges += [
            {"source": "first", "target": f"m{index}"},
            {"source": f"m{index}", "target": "join"},
        ]
    nodes += [
        {"id": "join", "type": "transform", "config": {"output": 2}},
        {"id": "out", "type": "end"},
    ]
    edges.append({"source": "join", "target": "out"})
    return {"nodes": nodes, "edges": edges}


async def publish(ctx: Context, definition: dict[str, Any]) -> str:
    created = await ctx.api.post("/v1/workflows", json={"name": "bench", "definition": definition})
    created.raise_for_status()
    workflow_id = created.json()["id"]
    (await ctx.api.post(f"/v1/workflows/{workflow_id}/publish")).raise_for_status()
    return workflow_id


async def start_run(ctx: Context, workflow_id: str, body: dict[str, Any] | None = None) -> str:
    response = await ctx.api.post(
        f"/v1/workflows/{workflow_id}/run", json=body or {"json_inputs": {"in": {"n": 1}}}
    )
    response.raise_for_status()
    return str(response.json()["id"])


async def run_result(ctx: Context, run_id: str) -> None:
    try:
        await ctx.client.get_workflow_handle(run_id).result()
    except WorkflowFailureError:
        pass


def cpu_snapshot(ctx: Context) -> dict[str, float]:
    """CPU seconds so far of each process. `bench` is this process: the clients of both sides,
    the HTTP peer and the raw baseline's worker (which has no process of its own)."""
    snapshot = {name: cpu_seconds(ctx.stack.pid(name)) for name in ("worker", "api", "temporal")}
    snapshot["bench"] = cpu_seconds(os.getpid())
    return snapshot


async def timed_batch(
    ctx: Context, count: int, one: Callable[[], Awaitable[None]], concurrency: int = 16
) -> tuple[float, dict[str, float]]:
    """Wall seconds and CPU seconds per run per process for `count` runs."""
    gate = asyncio.Semaphore(concurrency)

    async def bounded() -> None:
        async with gate:
            await one()

    before = cpu_snapshot(ctx)
    started = time.perf_counter()
    await asyncio.gather(*(bounded() for _ in range(count)))
    wall = time.perf_counter() - started
    after = cpu_snapshot(ctx)
    return wall, {name: round((after[name] - before[name]) / count, 4) for name in after}


@dataclass(frozen=True)
class Side:
    wall_s: float
    cpu_s_per_run: dict[str, float]


async def alternating_batches(
    ctx: Context,
    count: int,
    sides: dict[str, Callable[[], Awaitable[None]]],
    rounds: int = 4,
) -> dict[str, Side]:
    """`count` runs of each side in alternating rounds, so a slow spell of this noisy
    machine weighs on every side alike; walls are summed, CPU per run averaged."""
    size = count // rounds
    walls = dict.fromkeys(sides, 0.0)
    cpus: dict[str, dict[str, float]] = {side: {} for side in sides}
    for _ in range(rounds):
        for side, one in sides.items():
            wall, cpu = await timed_batch(ctx, size, one)
            walls[side] += wall
            for name, seconds in cpu.items():
                cpus[side][name] = cpus[side].get(name, 0.0) + seconds / rounds
    # Walls scaled to `count` runs (rounds * size may fall short of it).
    scale = count / (size * rounds)
    return {
        side: Side(walls[side] * scale, {k: round(v, 4) for k, v in cpus[side].items()})
        for side in sides
    }


async def started_with(
    client: Client, run_id: str
) -> tuple[RunInput, TypedSearchAttributes, str | None]:
    """What the API passed to `start_workflow` for `run_id`, read back from its first event:
    the RunWorkflow input, the search attributes and the summary."""
    history = await client.get_workflow_handle(run_id).fetch_history()
    event = history.events[0]
    attributes = event.workflow_execution_started_event_attributes
    [run_input] = await client.data_converter.decode(attributes.input.payloads, [RunInput])
    assert isinstance(run_input, RunInput)
    summary = None
    if event.user_metadata.HasField("summary"):
        [summary] = await client.data_converter.decode([event.user_metadata.summary], [str])
    return run_input, decode_typed_search_attributes(attributes.search_attributes), summary


def raw_start(
    client: Client,
    task_queue: str,
    template: RunInput,
    search: TypedSearchAttributes,
    summary: str | None,
) -> Callable[[], Awaitable[str]]:
    """`client.start_workflow` of `template` under a new run id, with the arguments the API's
    start passes (id policies, search attributes, summary): a start without REST."""

    async def start() -> str:
        run_input = template.model_copy(update={"run_id": ids.new_id(ids.RUN)})
        await client.start_workflow(
            RunWorkflow.run,
            run_input,
            id=run_input.run_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=search,
            static_summary=summary,
        )
        return run_input.run_id

    return start


async def direct_starter(
    ctx: Context, run_id: str, *, unrecorded: bool = False
) -> Callable[[], Awaitable[None]]:
    """Runs of the same input as `run_id`, started with the Temporal client instead of REST:
    what the workflow and worker cost without the API in front. `unrecorded`: with the pure
    nodes planned as before outcomes were recorded (evaluated in the workflow, nothing in
    history), the engine runs started then still use: what recording costs."""
    template, search_attributes, _ = await started_with(ctx.client, run_id)
    if unrecorded:
        plans = {
            node_id: plan.model_copy(update={"execution": "workflow"})
            if plan.execution == "batch"
            else plan
            for node_id, plan in template.plans.items()
        }
        template = template.model_copy(update={"plans": plans})

    async def start() -> None:
        run_input = template.model_copy(update={"run_id": ids.new_id(ids.RUN)})
        await ctx.client.execute_workflow(
            RunWorkflow.run,
            run_input,
            id=run_input.run_id,
            task_queue=ctx.stack.task_queue,
            search_attributes=search_attributes,
        )

    return start


async def raw_chain(ctx: Context, length: int, http: bool) -> None:
    await ctx.client.execute_workflow(
        RawChainWorkflow.run,
        args=[length, http],
        id=f"raw-{uuid.uuid4().hex}",
        task_queue=ctx.raw_queue,
    )


# ------------------------------------------------------------------ scenarios


async def throughput(ctx: Context, kind: str) -> dict[str, Any]:
    count = 30 if ctx.quick else 200
    if kind == "pure":
        workflow_id = await publish(ctx, transform_chain(10))
    else:
        workflow_id = await publish(ctx, http_chain(10, f"{ctx.peer.url}/io"))

    async def runlane() -> None:
        await run_result(ctx, await start_run(ctx, workflow_id))

    async def raw() -> None:
        await raw_chain(ctx, 10, http=kind == "io")

    first = await start_run(ctx, workflow_id)
    await run_result(ctx, first)
    compared = {
        "runlane": runlane,
        "raw": raw,
        "runlane_without_rest": await direct_starter(ctx, first),
    }
    compared["unrecorded_without_rest"] = await direct_starter(ctx, first, unrecorded=True)
    sides = await alternating_batches(ctx, count, compared)
    rate = {side: count / figures.wall_s for side, figures in sides.items()}
    # The same runs on the engine of runs started before recording (pure nodes in the workflow,
    # no marker): recording's cost, both without the REST facade.
    recording = {
        "unrecorded_without_rest_runs_per_s": round(rate["unrecorded_without_rest"], 2),
        "recorded_vs_unrecorded": round(
            rate["runlane_without_rest"] / rate["unrecorded_without_rest"], 2
        ),
        "unrecorded_cpu_s_per_run": sides["unrecorded_without_rest"].cpu_s_per_run,
        "runlane_without_rest_cpu_s_per_run": sides["runlane_without_rest"].cpu_s_per_run,
    }
    return {
        "runs": count,
        "runlane_runs_per_s": round(rate["runlane"], 2),
        "raw_runs_per_s": round(rate["raw"], 2),
        "ratio": round(rate["runlane"] / rate["raw"], 2),
        "runlane_cpu_s_per_run": sides["runlane"].cpu_s_per_run,
        "raw_cpu_s_per_run": sides["raw"].cpu_s_per_run,
        # The same runs started with the Temporal client: the REST facade's share of the cost.
        "runlane_without_rest_runs_per_s": round(rate["runlane_without_rest"], 2),
        "ratio_without_rest": round(rate["runlane_without_rest"] / rate["raw"], 2),
        **recording,
    }


async def fan_out(ctx: Context) -> dict[str, Any]:
    count = 20 if ctx.quick else 100
    workflow_id = await publish(ctx, fanout(8))

    async def runlane() -> None:
        await run_result(ctx, await start_run(ctx, workflow_id))

    async def raw() -> None:
        await ctx.client.execute_workflow(
            RawFanoutWorkflow.run, 8, id=f"raw-{uuid.uuid4().hex}", task_queue=ctx.raw_queue
        )

    sides = await alternating_batches(ctx, count, {"runlane": runlane, "raw": raw})
    runlane_wall, raw_wall = sides["runlane"].wall_s, sides["raw"].wall_s
    return {
        "runs": count,
        "runlane_runs_per_s": round(count / runlane_wall, 2),
        "raw_runs_per_s": round(count / raw_wall, 2),
        "ratio": round(raw_wall / runlane_wall, 2),
    }


async def latency(ctx: Context) -> dict[str, Any]:
    samples = 30
    workflow_id = await publish(ctx, transform_chain(10))
    runlane: list[float] = []
    raw: list[float] = []
    run_id = ""
    for _ in range(samples):
        started = time.perf_counter()
        run_id = await start_run(ctx, workflow_id)
        await run_result(ctx, run_id)
        runlane.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await raw_chain(ctx, 10, http=False)
        raw.append((time.perf_counter() - started) * 1000)
    history = await ctx.client.get_workflow_handle(run_id).fetch_history()
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    return {
        **latency_figures(runlane, raw),
        # The run of 12 nodes (input, 10 transforms, end): what it writes to history.
        "history_events_10_pure_nodes": len(history.events),
        "batch_markers_10_pure_nodes": len(markers),
    }


async def post_latency(ctx: Context) -> dict[str, Any]:
    clients, per_client = 32, (4 if ctx.quick else 10)
    workflow_id = await publish(ctx, transform_chain(10))
    timings: list[float] = []
    started_runs: list[str] = []

    async def client_loop() -> None:
        for _ in range(per_client):
            started = time.perf_counter()
            started_runs.append(await start_run(ctx, workflow_id))
            timings.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client_loop() for _ in range(clients)))
    # Drain what was started so later scenarios measure a quiet system.
    for run_id in started_runs:
        await run_result(ctx, run_id)
    return {
        "clients": clients,
        "requests": len(timings),
        "p50_ms": round(percentile(timings, 50), 1),
        "p95_ms": round(percentile(timings, 95), 1),
        "p99_ms": round(percentile(timings, 99), 1),
    }


async def start_throughput(ctx: Context) -> dict[str, Any]:
    """Starts per second at 32 concurrent clients: `POST /v1/workflows/{id}/run` against
    `client.start_workflow` of the same RunWorkflow input (the API's own arguments, read back
    from a run it started) on the same server and task queue. Rounds alternate the sides
    (ABBA); each side's runs are drained, untimed, before the next round, so both start on a
    quiet system and a slow spell of the machine weighs on both alike. `round_ratios`: the
    ratio of each round, to show the noise. Each round is measured twice: with the worker
    running (the runs execute as they start, within the window: the judged `ratio`) and with
    it paused (`*_worker_paused`: the start paths alone, since a slower side otherwise also
    pays for more of its runs' execution inside its longer window)."""
    # Eight short rounds rather than four long ones: a slow spell of this shared machine
    # (seconds long) then falls on both sides more evenly.
    clients, per_client, rounds = 32, (2 if ctx.quick else 4), (4 if ctx.quick else 8)
    workflow_id = await publish(ctx, transform_chain(10))
    first = await start_run(ctx, workflow_id)
    await run_result(ctx, first)

    async def rest() -> str:
        return await start_run(ctx, workflow_id)

    sides = {
        "rest": rest,
        "raw": raw_start(ctx.client, ctx.stack.task_queue, *await started_with(ctx.client, first)),
    }
    modes = ("worker_running", "worker_paused")
    latencies: dict[str, list[float]] = {f"{side}/{mode}": [] for side in sides for mode in modes}
    walls = dict.fromkeys(latencies, 0.0)
    cpus: dict[str, dict[str, float]] = {key: {} for key in latencies}
    round_ratios: dict[str, list[float]] = {mode: [] for mode in modes}

    async def burst(side: str, count: int, mode: str | None) -> tuple[float, dict[str, float]]:
        """Wall seconds and CPU seconds per process of `count` starts by each client (timed
        unless `mode` is None); the runs are drained afterwards, untimed, so the next burst
        starts on a quiet system. `worker_paused`: the worker is stopped (SIGSTOP) while the
        starts are timed, so no run executes inside the window, on either side."""
        one = sides[side]
        run_ids: list[str] = []
        key = f"{side}/{mode}"

        async def client_loop() -> None:
            for _ in range(count):
                started = time.perf_counter()
                run_ids.append(await one())
                if mode is not None:
                    latencies[key].append((time.perf_counter() - started) * 1000)

        worker = ctx.stack.pid("worker")
        if mode == "worker_paused":
            os.kill(worker, signal.SIGSTOP)
        try:
            before = cpu_snapshot(ctx)
            started = time.perf_counter()
            await asyncio.gather(*(client_loop() for _ in range(clients)))
            wall = time.perf_counter() - started
            after = cpu_snapshot(ctx)
        finally:
            if mode == "worker_paused":
                os.kill(worker, signal.SIGCONT)
        for run_id in run_ids:
            await run_result(ctx, run_id)
        return wall, {name: after[name] - before[name] for name in after}

    for side in sides:  # warm-up: 32 open HTTP connections, the API's and server's caches
        await burst(side, 1, None)
    for index in range(rounds):
        for mode in modes:
            order = list(sides) if index % 2 == 0 else list(reversed(sides))
            round_walls: dict[str, float] = {}
            for side in order:
                round_walls[side], cpu = await burst(side, per_client, mode)
                walls[f"{side}/{mode}"] += round_walls[side]
                for name, seconds in cpu.items():
                    per_start = seconds / (clients * per_client * rounds)
                    spent = cpus[f"{side}/{mode}"]
                    spent[name] = spent.get(name, 0.0) + per_start
            # Wall per start is wall per round (same count on both sides): raw / rest.
            round_ratios[mode].append(round(round_walls["raw"] / round_walls["rest"], 2))
    starts = clients * per_client * rounds
    rate = {key: starts / wall for key, wall in walls.items()}

    def figures(mode: str, suffix: str) -> dict[str, Any]:
        rest, raw = f"rest/{mode}", f"raw/{mode}"
        return {
            f"rest_starts_per_s{suffix}": round(rate[rest], 1),
            f"raw_starts_per_s{suffix}": round(rate[raw], 1),
            f"ratio{suffix}": round(rate[rest] / rate[raw], 2),
            f"round_ratios{suffix}": round_ratios[mode],
            f"rest_p50_ms{suffix}": round(percentile(latencies[rest], 50), 1),
            f"rest_p95_ms{suffix}": round(percentile(latencies[rest], 95), 1),
            f"raw_p50_ms{suffix}": round(percentile(latencies[raw], 50), 1),
            f"raw_p95_ms{suffix}": round(percentile(latencies[raw], 95), 1),
            # CPU while the starts ran (with the worker running it runs the runs as they
            # start, on both sides; what they need after the last start is drained outside).
            f"rest_cpu_s_per_start{suffix}": {k: round(v, 4) for k, v in cpus[rest].items()},
            f"raw_cpu_s_per_start{suffix}": {k: round(v, 4) for k, v in cpus[raw].items()},
        }

    return {
        "clients": clients,
        "starts_per_side": starts,
        **figures("worker_running", ""),
        **figures("worker_paused", "_worker_paused"),
    }


REVIEW = {
    "nodes": [
        {"id": "in", "type": "start_json"},
        {"id": "review", "type": "human_review", "config": {"payload": "{{in}}"}},
        {"id": "out", "type": "end"},
    ],
    "edges": [{"source": "in", "target": "review"}, {"source": "review", "target": "out"}],
}


async def wait_waiting(ctx: Context, run_id: str) -> None:
    handle = ctx.client.get_workflow_handle(run_id)
    while "review" not in (await handle.query(RunWorkflow.state)).waiting_for_node_ids:
        await asyncio.sleep(0.02)


async def review_resume(ctx: Context) -> dict[str, Any]:
    samples = 10 if ctx.quick else 30
    workflow_id = await publish(ctx, REVIEW)
    runlane: list[float] = []
    raw: list[float] = []
    for _ in range(samples):
        run_id = await start_run(ctx, workflow_id)
        await wait_waiting(ctx, run_id)
        started = time.perf_counter()
        decided = await ctx.api.post(
            f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "approve"}
        )
        decided.raise_for_status()
        await run_result(ctx, run_id)
        runlane.append((time.perf_counter() - started) * 1000)

        handle = await ctx.client.start_workflow(
            RawReviewWorkflow.run, id=f"raw-{uuid.uuid4().hex}", task_queue=ctx.raw_queue
        )
        started = time.perf_counter()
        await handle.signal(RawReviewWorkflow.decide)
        await handle.result()
        raw.append((time.perf_counter() - started) * 1000)
    return latency_figures(runlane, raw)


async def history_size(client: Client, run_id: str) -> tuple[int, int]:
    history = await client.get_workflow_handle(run_id).fetch_history()
    return len(history.events), sum(e.ByteSize() for e in history.events)


async def big_run(ctx: Context, nodes: int, shape: str = "chain") -> dict[str, Any]:
    """One run of `nodes` pure nodes: a chain, or a fan-out (all but 4 in parallel)."""
    definition = transform_chain(nodes - 2) if shape == "chain" else fanout(nodes - 4)
    workflow_id = await publish(ctx, definition)
    started = time.perf_counter()
    run_id = await start_run(ctx, workflow_id)
    await run_result(ctx, run_id)
    wall = time.perf_counter() - started
    status = (await ctx.api.get(f"/v1/workflows/runs/{run_id}")).json().get("status")
    events, size = await history_size(ctx.client, run_id)
    return {
        "nodes": nodes,
        "status": status,
        "wall_s": round(wall, 2),
        "history_events": events,
        "history_bytes": size,
    }


def pure_chain_with_requests(nodes: int, url: str, requests: int = 3) -> dict[str, Any]:
    """`nodes` nodes: an input, a chain of transforms with `requests` http_request nodes spread
    along it, an end. Each transform carries the chain's `root` on; the requests read only the
    input, so a change at the root changes every transform's output and none of theirs."""
    transforms = nodes - 2 - requests
    every = transforms // (requests + 1)
    chain: list[dict[str, Any]] = [{"id": "in", "type": "start_json"}]
    previous_transform = None
    for index in range(transforms):
        root = "{{in.n}}" if previous_transform is None else f"{{{{{previous_transform}.root}}}}"
        chain.append(
            {
                "id": f"t{index}",
                "type": "transform",
                "config": {"output": {"i": index, "root": root}},
            }
        )
        previous_transform = f"t{index}"
        if index and index % every == 0 and index // every <= requests:
            body = {"n": "{{in.n}}"}
            chain.append(
                {
                    "id": f"h{index // every}",
                    "type": "http_request",
                    "config": {"method": "POST", "url": url, "body": body},
                }
            )
    chain.append(
        {"id": "out", "type": "end", "config": {"outputs": f"{{{{{previous_transform}}}}}"}}
    )
    return {"nodes": chain, "edges": chain_edges([n["id"] for n in chain])}


async def dry_run(ctx: Context) -> dict[str, Any]:
    """A dry run of a recorded 1,000-node run (a chain of transforms with 3 http_request
    nodes to the loopback peer) against a draft that changed the chain's first transform:
    every transform is evaluated again, the requests are reused. Wall time per dry run, and
    how long a request the API answers without Temporal or the store (a malformed run id's
    404) took while dry runs were running, against the same without them: the checking and
    evaluation run in a thread, so the API's event loop keeps answering."""
    nodes, samples = 1000, (3 if ctx.quick else 7)
    definition = pure_chain_with_requests(nodes, f"{ctx.peer.url}/dry")
    workflow_id = await publish(ctx, definition)
    run_id = await start_run(ctx, workflow_id)
    await run_result(ctx, run_id)
    status = (await ctx.api.get(f"/v1/workflows/runs/{run_id}")).json().get("status")
    draft = json.loads(json.dumps(definition))
    draft["nodes"][1]["config"]["output"]["root"] = "{{in.n}}-changed"
    (
        await ctx.api.put(f"/v1/workflows/{workflow_id}/draft", json={"definition": draft})
    ).raise_for_status()
    calls_before = len(ctx.peer.calls)
    walls: list[float] = []
    pings: list[float] = []
    answer: dict[str, Any] = {}

    async def probe() -> float:
        started = time.perf_counter()
        answer = await ctx.api.get("/v1/workflows/runs/run_probe")
        assert answer.status_code == 404, answer.text
        return (time.perf_counter() - started) * 1000

    async def ping(done: asyncio.Event) -> None:
        while not done.is_set():
            pings.append(await probe())
            await asyncio.sleep(0.01)

    idle = [await probe() for _ in range(50)]
    for _ in range(samples):
        done = asyncio.Event()
        pinger = asyncio.create_task(ping(done))
        started = time.perf_counter()
        response = await ctx.api.post(
            f"/v1/workflows/{workflow_id}/dry-run", json={"run_id": run_id}
        )
        walls.append(time.perf_counter() - started)
        done.set()
        await pinger
        response.raise_for_status()
        answer = response.json()
    statuses = [node["status"] for node in answer["nodes"]]
    return {
        "nodes": len(answer["nodes"]),
        "recorded_run_status": status,
        "samples": samples,
        "wall_p50_ms": round(percentile(walls, 50) * 1000, 1),
        "wall_min_ms": round(min(walls) * 1000, 1),
        "wall_max_ms": round(max(walls) * 1000, 1),
        "evaluated_differing": sum(node["differs_from_recorded"] for node in answer["nodes"]),
        "reused": sum(node.get("reused", False) for node in answer["nodes"]),
        "would_call": statuses.count("would_call"),
        "errors": statuses.count("error"),
        "peer_requests_during_dry_runs": len(ctx.peer.calls) - calls_before,
        "probe_idle_p50_ms": round(percentile(idle, 50), 1),
        "probe_idle_max_ms": round(max(idle), 1),
        "probe_during_p50_ms": round(percentile(pings, 50), 1) if pings else None,
        "probe_during_max_ms": round(max(pings), 1) if pings else None,
    }


async def map_io(ctx: Context) -> dict[str, Any]:
    """A map of 1,000 http_request items at concurrency 50 against raw Temporal running the
    same 1,000 activities from one workflow (a semaphore of 50), alternately, twice each."""
    count, concurrency = (200 if ctx.quick else 1000), 50
    item = {
        "type": "http_request",
        "config": {"method": "POST", "url": f"{ctx.peer.url}/map", "body": {"v": "{{$item}}"}},
    }
    definition = {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {
                "id": "fan",
                "type": "map",
                "config": {"items": "{{in.values}}", "node": item, "concurrency": concurrency},
            },
            {"id": "out", "type": "end", "config": {"outputs": {"errors": "{{fan.errors}}"}}},
        ],
        "edges": [{"source": "in", "target": "fan"}, {"source": "fan", "target": "out"}],
    }
    workflow_id = await publish(ctx, definition)
    body = {"json_inputs": {"in": {"values": list(range(count))}}}
    walls: dict[str, list[float]] = {"runlane": [], "raw": []}
    status = None
    for _ in range(2):
        started = time.perf_counter()
        run_id = await start_run(ctx, workflow_id, body)
        await run_result(ctx, run_id)
        walls["runlane"].append(time.perf_counter() - started)
        status = (await ctx.api.get(f"/v1/workflows/runs/{run_id}")).json().get("status")
        started = time.perf_counter()
        await ctx.client.execute_workflow(
            RawMapWorkflow.run,
            args=[count, concurrency],
            id=f"raw-{uuid.uuid4().hex}",
            task_queue=ctx.raw_queue,
        )
        walls["raw"].append(time.perf_counter() - started)
    runlane_wall, raw_wall = min(walls["runlane"]), min(walls["raw"])
    return {
        "items": count,
        "concurrency": concurrency,
        "status": status,
        "runlane_items_per_s": round(count / runlane_wall, 1),
        "raw_items_per_s": round(count / raw_wall, 1),
        "ratio": round(raw_wall / runlane_wall, 2),
    }


async def map_pure(ctx: Context, count: int = 10_000) -> dict[str, Any]:
    """One run whose map evaluates `count` pure items (a transform per item): wall time, the
    run's history, the map child's executions and events (it continues as new every
    RUNLANE_MAP_ITEMS_PER_EXECUTION items), and the worker's peak memory meanwhile."""
    count = min(count, 1000) if ctx.quick else count
    item = {"type": "transform", "config": {"output": {"n": "{{$item}}", "at": "{{$index}}"}}}
    definition = {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {"id": "fan", "type": "map", "config": {"items": "{{in.values}}", "node": item}},
            {"id": "out", "type": "end", "config": {"outputs": {"errors": "{{fan.errors}}"}}},
        ],
        "edges": [{"source": "in", "target": "fan"}, {"source": "fan", "target": "out"}],
    }
    workflow_id = await publish(ctx, definition)
    worker = ctx.stack.pid("worker")
    peak = rss_bytes(worker)
    started = time.perf_counter()
    run_id = await start_run(
        ctx, workflow_id, {"json_inputs": {"in": {"values": list(range(count))}}}
    )
    result = asyncio.ensure_future(run_result(ctx, run_id))
    while not result.done():
        peak = max(peak, rss_bytes(worker))
        await asyncio.sleep(0.2)
    wall = time.perf_counter() - started
    status = (await ctx.api.get(f"/v1/workflows/runs/{run_id}")).json().get("status")
    events, size = await history_size(ctx.client, run_id)
    child_ids = [
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        async for event in ctx.client.get_workflow_handle(run_id).fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    executions, child_events, largest = 0, 0, 0
    run: str | None = None
    while child_ids:
        history = await ctx.client.get_workflow_handle(child_ids[0], run_id=run).fetch_history()
        executions += 1
        child_events += len(history.events)
        largest = max(largest, len(history.events))
        started_attributes = history.events[0].workflow_execution_started_event_attributes
        run = started_attributes.continued_execution_run_id or None
        if run is None:
            break
    return {
        "items": count,
        "status": status,
        "wall_s": round(wall, 2),
        "items_per_s": round(count / wall, 1),
        "run_history_events": events,
        "run_history_bytes": size,
        "map_executions": executions,
        "map_history_events": child_events,
        "map_largest_history_events": largest,
        "worker_peak_rss_mb": round(peak / 1024 / 1024, 1),
    }


async def raw_reset_wall(ctx: Context, raw_id: str) -> float:
    """Seconds for a raw workflow reset to the task that scheduled its first regular
    activity to run to its end again."""
    history = await ctx.client.get_workflow_handle(raw_id).fetch_history()
    scheduled = next(
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    task_started = max(
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and e.event_id < scheduled
    )
    started = time.perf_counter()
    reset = await ctx.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=ctx.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=raw_id),
            reason="bench",
            workflow_task_finish_event_id=task_started,
            request_id=uuid.uuid4().hex,
        )
    )
    await ctx.client.get_workflow_handle(raw_id, run_id=reset.run_id).result()
    return time.perf_counter() - started


async def retry_long(ctx: Context) -> dict[str, Any]:
    length = 200 if ctx.quick else 1000
    definition = transform_chain(length - 3)
    definition["nodes"].insert(
        -1,
        {
            "id": "last",
            "type": "http_request",
            "config": {"method": "POST", "url": f"{ctx.peer.url}/last"},
            "retry": {"max_attempts": 1},
        },
    )
    definition["edges"][-1]["target"] = "last"
    definition["edges"].append({"source": "last", "target": "out"})
    workflow_id = await publish(ctx, definition)
    ctx.peer.fail("/last", 1, 500)
    run_id = await start_run(ctx, workflow_id)
    await run_result(ctx, run_id)
    ran_before = {
        s["node_id"]
        for s in (await ctx.api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
        if s["started_at"] is not None
    }
    started = time.perf_counter()
    (await ctx.api.post(f"/v1/workflows/runs/{run_id}/retry")).raise_for_status()
    while (await ctx.api.get(f"/v1/workflows/runs/{run_id}")).json()["status"] not in (
        "completed",
        "error",
    ) or (await ctx.api.get(f"/v1/workflows/runs/{run_id}")).json()["attempt"] < 2:
        await asyncio.sleep(0.05)
    runlane_wall = time.perf_counter() - started
    attempts = (await ctx.api.get(f"/v1/workflows/runs/{run_id}")).json()["attempts"]
    steps = (await ctx.api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    # Steps the API shows run again: the new attempt's, among those that had run before.
    rerun = [s["node_id"] for s in steps if s["attempt"] == 2 and s["node_id"] in ran_before]
    # Executions repeated after the reset, of nodes that had run before: activity tasks the
    # new execution scheduled, and outcomes its batches evaluated rather than took back from
    # the failed execution's history (the reset task's batch runs again, reusing them).
    history = await ctx.client.get_workflow_handle(run_id).fetch_history()
    reset_at = next(
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    )
    after_reset = [e for e in history.events if e.event_id > reset_at]
    activities = [
        e.activity_task_scheduled_event_attributes.activity_id
        for e in after_reset
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    outcomes = [
        outcome
        for e in after_reset
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        # (Batches' markers; a reset to the first task also records a patch marker.)
        and e.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
        for outcome in (
            await ctx.client.data_converter.decode(
                e.marker_recorded_event_attributes.details["result"].payloads,
                [PureBatchResult],
            )
        )[0].outcomes
    ]
    evaluated_again = [o.node_id for o in outcomes if not o.reused and o.node_id in ran_before]
    repeated = len([a for a in activities if a in ran_before]) + len(evaluated_again)

    raw_id = f"rawlong-{uuid.uuid4().hex}"
    handle = await ctx.client.start_workflow(
        RawLongChainWorkflow.run, length, id=raw_id, task_queue=ctx.raw_queue
    )
    try:
        await handle.result()
    except WorkflowFailureError:
        pass
    raw_wall = await raw_reset_wall(ctx, raw_id)
    return {
        "nodes": length,
        "runlane_activities_reexecuted": repeated,
        "runlane_steps_run_again": len(rerun),
        "run_again_sample": rerun[:5],
        "runlane_outcomes_taken_from_history": sum(1 for o in outcomes if o.reused),
        "runlane_wall_s": round(runlane_wall, 3),
        "attempts": [(a["attempt"], a["resumed_from_node_id"]) for a in attempts],
        "raw_reset_wall_s": round(raw_wall, 3),
        "ratio": round(runlane_wall / raw_wall, 2),
    }


async def retry_from_node(ctx: Context) -> dict[str, Any]:
    """A completed 1,000-node chain with one HTTP call in the middle, retried from that call:
    the call and everything downstream of it run again, everything before it keeps its outputs.
    Beside it, a raw workflow of the same shape (local activities, one regular activity in the
    middle) reset to the workflow task that scheduled that activity."""
    length = 200 if ctx.quick else 1000
    mid = length // 2
    definition = transform_chain(length - 2)  # + in and out: `length` nodes
    ids = [n["id"] for n in definition["nodes"]]
    definition["nodes"][mid] = {
        "id": "mid",
        "type": "http_request",
        "config": {"method": "POST", "url": f"{ctx.peer.url}/mid"},
    }
    # The node after the call reads the call's answer rather than the node before it.
    definition["nodes"][mid + 1]["config"] = {"output": "{{mid.status}}"}
    ids[mid] = "mid"
    definition["edges"] = chain_edges(ids)
    workflow_id = await publish(ctx, definition)
    run_id = await start_run(ctx, workflow_id, {"json_inputs": {"in": {"v": 1}}})
    await run_result(ctx, run_id)
    plan = (
        await ctx.api.get(
            f"/v1/workflows/runs/{run_id}/retry-plan", params={"from": "node", "node_id": "mid"}
        )
    ).json()
    calls_before = ctx.peer.count("/mid")
    started = time.perf_counter()
    (
        await ctx.api.post(f"/v1/workflows/runs/{run_id}/retry", json={"plan_id": plan["plan_id"]})
    ).raise_for_status()
    while True:
        run = (await ctx.api.get(f"/v1/workflows/runs/{run_id}")).json()
        if run["attempt"] == 2 and run["status"] in ("completed", "error"):
            break
        await asyncio.sleep(0.02)
    runlane_wall = time.perf_counter() - started
    steps = (await ctx.api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    run_again = {s["node_id"] for s in steps if s["attempt"] == 2}
    downstream = set(ids[mid:])

    raw_id = f"rawmid-{uuid.uuid4().hex}"
    handle = await ctx.client.start_workflow(
        RawMidCallChainWorkflow.run, args=[length, mid], id=raw_id, task_queue=ctx.raw_queue
    )
    await handle.result()
    raw_wall = await raw_reset_wall(ctx, raw_id)
    return {
        "nodes": length,
        "status": run["status"],
        "downstream_nodes": len(downstream),
        "steps_run_again": len(run_again),
        "exactly_downstream": run_again == downstream,
        "calls_repeated": ctx.peer.count("/mid") - calls_before,
        "runlane_wall_s": round(runlane_wall, 3),
        "raw_reset_wall_s": round(raw_wall, 3),
        "ratio": round(runlane_wall / raw_wall, 2),
    }


async def waiting_memory(ctx: Context) -> dict[str, Any]:
    count = 200 if ctx.quick else 2000
    workflow_id = await publish(ctx, REVIEW)
    worker_before = rss_bytes(ctx.stack.pid("worker"))
    server_before = rss_bytes(ctx.stack.pid("temporal"))
    gate = asyncio.Semaphore(16)

    async def start_one() -> str:
        async with gate:
            return await start_run(ctx, workflow_id)

    run_ids = await asyncio.gather(*(start_one() for _ in range(count)))

    async def all_waiting() -> int:
        page = await ctx.api.get(
            "/v1/workflows/runs", params={"status": "waiting_for_human", "limit": 1}
        )
        return len(page.json()["data"])

    deadline = time.monotonic() + 300
    for run_id in run_ids:  # every run reached its review
        while time.monotonic() < deadline:
            state = await ctx.client.get_workflow_handle(run_id).query(RunWorkflow.state)
            if state.waiting_for_node_ids:
                break
            await asyncio.sleep(0.05)
    await all_waiting()
    worker_after = rss_bytes(ctx.stack.pid("worker"))
    server_after = rss_bytes(ctx.stack.pid("temporal"))

    async def decide(run_id: str) -> None:
        async with gate:
            (
                await ctx.api.post(
                    f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "approve"}
                )
            ).raise_for_status()

    await asyncio.gather(*(decide(r) for r in run_ids))
    completed = 0
    for run_id in run_ids:
        result = await ctx.client.get_workflow_handle(run_id, result_type=RunState).result()
        completed += result.status == "completed"
    poller_errors = ctx.stack.log_text("api").count("namespace concurrent poller limit exceeded")
    return {
        "waiting_runs": count,
        "worker_kb_per_waiting_run": round((worker_after - worker_before) / count / 1024, 1),
        "server_kb_per_waiting_run": round((server_after - server_before) / count / 1024, 1),
        "completed_after_decisions": completed,
        "poller_limit_errors": poller_errors,
    }
