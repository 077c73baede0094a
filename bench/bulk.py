"""`bulk_retry`: a bulk retry of 500 failed runs (quick: 100), and what it costs everyone else.

The runs fail at an http_request node the peer answers 500 once each; the bulk retry
(`POST /v1/workflows/runs/bulk`, default RUNLANE_BULK_* pace) retries them all. Figures:

* `retried_per_s`: runs retried per second of the operation (POST to `completed`);
* the REST p95 latency of other requests (`GET` of a run the operation does not touch, from
  `READERS` clients in a closed loop) while no operation runs (10 s before it and 10 s after
  it, pooled), and while it runs (from the POST's answer to its completion), in one bench run
  on one stack, and their ratio (`latency_ratio_p95`, target ≤ 1.5).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import scenarios

READERS = 4
BASELINE_S = 10.0
# Starts of the failing runs in flight at once.
_STARTS = 16


def failing(url: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {
                "id": "call",
                "type": "http_request",
                "config": {"method": "POST", "url": url},
                "retry": {"max_attempts": 1},
            },
            {"id": "out", "type": "end"},
        ],
        "edges": scenarios.chain_edges(["in", "call", "out"]),
    }


async def _reads(ctx: scenarios.Context, run_id: str, until: asyncio.Event) -> list[float]:
    """Milliseconds of each `GET /v1/workflows/runs/{run_id}` from READERS clients until
    `until` is set."""
    samples: list[float] = []

    async def reader() -> None:
        while not until.is_set():
            began = time.perf_counter()
            response = await ctx.api.get(f"/v1/workflows/runs/{run_id}")
            response.raise_for_status()
            samples.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(reader() for _ in range(READERS)))
    return samples


async def _timed(seconds: float) -> asyncio.Event:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return stop


async def bulk_retry(ctx: scenarios.Context) -> dict[str, Any]:
    count = 100 if ctx.quick else 500
    ctx.peer.fail("/bulk", count, 500)
    workflow_id = await scenarios.publish(ctx, failing(f"{ctx.peer.url}/bulk"))
    other_workflow = await scenarios.publish(ctx, scenarios.transform_chain(3))
    other = await scenarios.start_run(ctx, other_workflow)
    await scenarios.run_result(ctx, other)

    gate = asyncio.Semaphore(_STARTS)

    async def failed_run() -> str:
        async with gate:
            run_id = await scenarios.start_run(ctx, workflow_id)
        await scenarios.run_result(ctx, run_id)
        return run_id

    run_ids = await asyncio.gather(*(failed_run() for _ in range(count)))
    # Visibility lists them all as failed before the operation matches them.
    query = {"workflow_id": workflow_id, "status": "error", "limit": "200"}
    while True:
        listed, cursor = 0, None
        while True:
            params = {**query, **({"cursor": cursor} if cursor else {})}
            page = (await ctx.api.get("/v1/workflows/runs", params=params)).json()
            listed += len(page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        if listed == count:
            break
        await asyncio.sleep(0.5)

    quiet = await _reads(ctx, other, await _timed(BASELINE_S))

    busy_until = asyncio.Event()
    started = time.perf_counter()
    response = await ctx.api.post(
        "/v1/workflows/runs/bulk",
        json={"action": "retry", "filter": {"workflow_id": workflow_id, "status": "error"}},
    )
    response.raise_for_status()
    operation = response.json()
    post_ms = (time.perf_counter() - started) * 1000
    # While the operation runs: from the POST's answer (matching the runs is that request's
    # own work, reported as `post_ms`) to its completion.
    readers = asyncio.create_task(_reads(ctx, other, busy_until))
    while operation["status"] == "running":
        await asyncio.sleep(0.25)
        operation = (await ctx.api.get(f"/v1/workflows/runs/bulk/{operation['id']}")).json()
    wall = time.perf_counter() - started
    busy_until.set()
    busy = await readers
    # Quiet again, once the retried runs are done: the quiet figures pool both windows, so
    # a drift of the machine's load over the scenario weighs on both sides alike.
    while (
        await ctx.api.get(
            "/v1/workflows/runs",
            params={"workflow_id": workflow_id, "status": "running", "limit": "1"},
        )
    ).json()["data"]:
        await asyncio.sleep(0.5)
    quiet += await _reads(ctx, other, await _timed(BASELINE_S))

    # Every retried run ends (completed) on its second attempt.
    completed = 0
    for run_id in run_ids:
        run = (await ctx.api.get(f"/v1/workflows/runs/{run_id}")).json()
        while run["status"] not in ("completed", "error", "cancelled") or run["attempt"] < 2:
            await asyncio.sleep(0.1)
            run = (await ctx.api.get(f"/v1/workflows/runs/{run_id}")).json()
        completed += run["status"] == "completed"
    quiet_p95 = scenarios.percentile(quiet, 95)
    busy_p95 = scenarios.percentile(busy, 95)
    return {
        "runs": count,
        "matched": operation["matched"],
        "status": operation["status"],
        "progress": operation["progress"],
        "runs_completed_after_retry": completed,
        "post_ms": round(post_ms, 1),
        "wall_s": round(wall, 2),
        "retried_per_s": round(operation["progress"]["succeeded"] / wall, 2),
        "get_samples_quiet": len(quiet),
        "get_samples_during": len(busy),
        "get_p50_ms_quiet": round(scenarios.percentile(quiet, 50), 1),
        "get_p50_ms_during": round(scenarios.percentile(busy, 50), 1),
        "get_p95_ms_quiet": round(quiet_p95, 1),
        "get_p95_ms_during": round(busy_p95, 1),
        "latency_ratio_p95": round(busy_p95 / quiet_p95, 2),
    }
