"""`api_overhead`: what the API's metrics and the rate limiter cost, side by side in one run.

Three more API processes (uvicorn, as the stack's) serve the same store and Temporal, each with
one variant of the settings:

- `plain`: `RUNLANE_API_METRICS=false`, `RUNLANE_RATE_LIMIT_PER_S=0` (neither);
- `metrics`: metrics on, no limiter;
- `limiter`: no metrics, the limiter on at a rate never reached, as shipped (tokens leased a
  few at a time: one store write per up to 64 requests);
- `limiter_unleased`: the same with `RUNLANE_RATE_LIMIT_LEASE_S=0` (one store write per
  request).

Rounds alternate the variants (the order rotates each round), so a slow spell of the shared
machine weighs on all of them. Each round measures, per variant:

- reads/s: `GET /v1/workflows/{id}` (a store read; the API's own cost dominates, where an
  overhead shows most) by 16 concurrent clients;
- starts/s: `POST /v1/workflows/{id}/run` of a 1-transform run by 16 concurrent clients (the runs
  are drained untimed before the next measure);
- REST p50/p95: one client reading a run (`GET /v1/workflows/runs/{run_id}`), one at a time;
- API CPU ms per request.

Figures: each variant's totals and its ratios to `plain` (`<variant>_vs_plain_*`;
throughput: >1 faster; latency and CPU: >1 slower).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.scenarios import (
    Context,
    percentile,
    publish,
    run_result,
    start_run,
    transform_chain,
)
from bench.stack import REPO, cpu_seconds, free_port, uvicorn_command

VARIANTS: dict[str, dict[str, str]] = {
    "plain": {"RUNLANE_API_METRICS": "false", "RUNLANE_RATE_LIMIT_PER_S": "0"},
    "metrics": {"RUNLANE_API_METRICS": "true", "RUNLANE_RATE_LIMIT_PER_S": "0"},
    "limiter": {"RUNLANE_API_METRICS": "false", "RUNLANE_RATE_LIMIT_PER_S": "1000000"},
    "limiter_unleased": {
        "RUNLANE_API_METRICS": "false",
        "RUNLANE_RATE_LIMIT_PER_S": "1000000",
        "RUNLANE_RATE_LIMIT_LEASE_S": "0",
    },
}
CLIENTS = 16


class Api:
    def __init__(self, ctx: Context, name: str, settings: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        env = {**ctx.stack.env(), **settings, "RUNLANE_API_PORT": str(self.port)}
        log = (ctx.stack.workdir / f"api-{name}.log").open("wb")
        self.process = subprocess.Popen(
            uvicorn_command(self.port),
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Api-Key": ctx.stack.api_key},
            timeout=120,
            limits=httpx.Limits(keepalive_expiry=2),
        )

    async def ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (await self.http.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"API {self.name} did not come up")
            await asyncio.sleep(0.2)

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    async def stop(self) -> None:
        await self.http.aclose()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def concurrently(count: int, one: Callable[[], Awaitable[None]]) -> float:
    """Wall seconds of `count` calls of `one` by CLIENTS concurrent clients."""
    per_client = count // CLIENTS

    async def client() -> None:
        for _ in range(per_client):
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return time.perf_counter() - started


async def api_overhead(ctx: Context) -> dict[str, Any]:
    rounds = 3 if ctx.quick else 6
    reads, starts, sequential = (320, 64, 100) if ctx.quick else (960, 128, 200)
    workflow_id = await publish(ctx, transform_chain(1))
    first = await start_run(ctx, workflow_id)
    await run_result(ctx, first)
    apis = [Api(ctx, name, settings) for name, settings in VARIANTS.items()]
    totals: dict[str, dict[str, Any]] = {
        api.name: {"reads": 0, "read_s": 0.0, "starts": 0, "start_s": 0.0, "cpu_s": 0.0}
        for api in apis
    }
    latencies: dict[str, list[float]] = {api.name: [] for api in apis}
    requests: dict[str, int] = dict.fromkeys(totals, 0)
    try:
        await asyncio.gather(*(api.ready() for api in apis))
        for api in apis:  # warm each process (imports, connections, caches) untimed
            for _ in range(20):
                (await api.http.get(f"/v1/workflows/{workflow_id}")).raise_for_status()
                (await api.http.get(f"/v1/workflows/runs/{first}")).raise_for_status()
        for index in range(rounds):
            order = apis[index % len(apis) :] + apis[: index % len(apis)]
            for api in order:
                figures = totals[api.name]
                run_ids: list[str] = []

                async def read(api: Api = api) -> None:
                    (await api.http.get(f"/v1/workflows/{workflow_id}")).raise_for_status()

                async def start(api: Api = api, run_ids: list[str] = run_ids) -> None:
                    response = await api.http.post(
                        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"in": {"n": 1}}}
                    )
                    response.raise_for_status()
                    run_ids.append(response.json()["id"])

                cpu_before = api.cpu()
                figures["read_s"] += await concurrently(reads, read)
                figures["reads"] += reads
                figures["start_s"] += await concurrently(starts, start)
                figures["starts"] += starts
                for _ in range(sequential):
                    began = time.perf_counter()
                    (await api.http.get(f"/v1/workflows/runs/{first}")).raise_for_status()
                    latencies[api.name].append((time.perf_counter() - began) * 1000)
                figures["cpu_s"] += api.cpu() - cpu_before
                requests[api.name] += reads + starts + sequential
                for run_id in run_ids:  # drained untimed: the next measure starts quiet
                    await run_result(ctx, run_id)
    finally:
        await asyncio.gather(*(api.stop() for api in apis))

    result: dict[str, Any] = {"rounds": rounds, "clients": CLIENTS}
    for name, figures in totals.items():
        result[f"{name}_reads_per_s"] = round(figures["reads"] / figures["read_s"], 1)
        result[f"{name}_starts_per_s"] = round(figures["starts"] / figures["start_s"], 1)
        result[f"{name}_get_p50_ms"] = round(percentile(latencies[name], 50), 2)
        result[f"{name}_get_p95_ms"] = round(percentile(latencies[name], 95), 2)
        result[f"{name}_api_cpu_ms_per_request"] = round(
            figures["cpu_s"] * 1000 / requests[name], 3
        )
    for variant in ("metrics", "limiter", "limiter_unleased"):
        for figure in ("reads_per_s", "starts_per_s", "get_p50_ms", "api_cpu_ms_per_request"):
            result[f"{variant}_vs_plain_{figure}"] = round(
                result[f"{variant}_{figure}"] / result[f"plain_{figure}"], 3
            )
    return result
