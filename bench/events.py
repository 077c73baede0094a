"""The event-webhook scenario of `make bench`: what three subscribed endpoints cost the runs,
and how long an event takes from a run's completion to its receipt.

Three receivers (real HTTP servers on 127.0.0.1, answering 204) are subscribed to every event
type. Throughput, in alternating rounds with the endpoints enabled and disabled (a run emits
what was subscribed when it started), each round of the enabled side ending only once every
receiver has every `run.completed` of it, so the delivery work is counted on that side:
- the judged figure: runs of the I/O chain of `throughput_io` (10 http_request nodes to a peer
  answering at once), which keep both cores busy: every CPU millisecond the deliveries take
  is a millisecond the runs lose;
- for comparison, runs that wait on their peer as runs calling real services do (5 nodes, the
  peer answering after 100 ms).
Latency: one run at a time, the receipt time of `run.completed` at each receiver minus the
run's `completed_at` (the run's recorded end).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from typing import Any

from bench import scenarios
from bench.loopback import Answer, LoopbackServer
from workflows.events import EVENT_TYPES

ALL_TYPES = list(EVENT_TYPES)


@dataclass
class Receipt:
    event_type: str
    run_id: str
    completed_at: str | None
    received_at: float


class SlowPeer(LoopbackServer):
    """Answers every request with `{}` after `delay_s`, like a service across a network."""

    def __init__(self, delay_s: float = 0.1) -> None:
        super().__init__(self._answer_late, "/slow")
        self._delay_s = delay_s

    def _answer_late(self, headers: Message, body: bytes) -> Answer:
        time.sleep(self._delay_s)
        return 200, b"{}"


class Receiver(LoopbackServer):
    """Takes every event (204), noting when each arrived."""

    def __init__(self) -> None:
        super().__init__(self._receive, "/events")
        self.receipts: list[Receipt] = []
        self.lock = threading.Lock()

    def _receive(self, headers: Message, raw: bytes) -> Answer:
        received_at = time.time()
        body = json.loads(raw)
        run = body["data"]["run"]
        with self.lock:
            self.receipts.append(
                Receipt(body["type"], run["id"], run.get("completed_at"), received_at)
            )
        return 204, b""

    def completed(self, run_ids: set[str]) -> dict[str, Receipt]:
        with self.lock:
            return {
                r.run_id: r
                for r in self.receipts
                if r.event_type == "run.completed" and r.run_id in run_ids
            }


async def _wait_received(receivers: list[Receiver], run_ids: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(len(r.completed(run_ids)) < len(run_ids) for r in receivers):
        if time.monotonic() > deadline:
            got = [len(r.completed(run_ids)) for r in receivers]
            raise TimeoutError(f"run.completed of {len(run_ids)} runs: receivers got {got}")
        await asyncio.sleep(0.02)


@dataclass
class Compared:
    """Runs per second and CPU seconds per run by process, with and without the endpoints."""

    runs: int
    rate: dict[str, float]
    cpu: dict[str, dict[str, float]]

    def figures(self, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}runs": self.runs,
            f"{prefix}with_endpoints_runs_per_s": round(self.rate["with"], 2),
            f"{prefix}without_endpoints_runs_per_s": round(self.rate["without"], 2),
            f"{prefix}throughput_ratio": round(self.rate["with"] / self.rate["without"], 2),
            # CPU seconds per run by process (`bench` holds the receivers and the peers).
            f"{prefix}with_endpoints_cpu_s_per_run": {
                k: round(v, 4) for k, v in self.cpu["with"].items()
            },
            f"{prefix}without_endpoints_cpu_s_per_run": {
                k: round(v, 4) for k, v in self.cpu["without"].items()
            },
        }


async def _compare(
    ctx: scenarios.Context,
    workflow_id: str,
    receivers: list[Receiver],
    subscribed: Callable[[bool], Awaitable[None]],
    count: int,
    rounds: int = 4,
) -> Compared:
    """`count` runs on each side (16 at a time), in alternating rounds."""
    size = count // rounds
    walls = {"with": 0.0, "without": 0.0}
    cpu: dict[str, dict[str, float]] = {"with": {}, "without": {}}
    gate = asyncio.Semaphore(16)

    async def one(started: set[str]) -> None:
        async with gate:
            run_id = await scenarios.start_run(ctx, workflow_id)
            started.add(run_id)
            await scenarios.run_result(ctx, run_id)

    for _ in range(rounds):
        for side in ("with", "without"):
            await subscribed(side == "with")
            started: set[str] = set()
            before = scenarios.cpu_snapshot(ctx)
            began = time.perf_counter()
            await asyncio.gather(*(one(started) for _ in range(size)))
            if side == "with":
                await _wait_received(receivers, started, timeout=300)
            walls[side] += time.perf_counter() - began
            after = scenarios.cpu_snapshot(ctx)
            for name in after:
                spent = (after[name] - before[name]) / (size * rounds)
                cpu[side][name] = cpu[side].get(name, 0.0) + spent
    runs = size * rounds
    return Compared(runs, {side: runs / wall for side, wall in walls.items()}, cpu)


async def event_delivery(ctx: scenarios.Context) -> dict[str, Any]:
    count = 40 if ctx.quick else 200
    samples = 10 if ctx.quick else 40
    receivers = [Receiver() for _ in range(3)]
    for receiver in receivers:
        receiver.start()
    slow = SlowPeer(delay_s=0.1)
    slow.start()
    endpoint_ids: list[str] = []
    try:
        for receiver in receivers:
            created = await ctx.api.post(
                "/v1/webhook-endpoints",
                json={"url": receiver.url, "events": ALL_TYPES, "description": "bench"},
            )
            created.raise_for_status()
            endpoint_ids.append(created.json()["id"])

        async def subscribed(enabled: bool) -> None:
            for endpoint_id in endpoint_ids:
                changed = await ctx.api.patch(
                    f"/v1/webhook-endpoints/{endpoint_id}", json={"disabled": not enabled}
                )
                changed.raise_for_status()

        workflow_id = await scenarios.publish(ctx, scenarios.http_chain(10, f"{ctx.peer.url}/io"))
        # Latency, one run at a time: completion to receipt, at each of the three receivers.
        await subscribed(True)
        latencies: list[float] = []
        for _ in range(samples):
            run_id = await scenarios.start_run(ctx, workflow_id)
            await scenarios.run_result(ctx, run_id)
            await _wait_received(receivers, {run_id}, timeout=60)
            for receiver in receivers:
                receipt = receiver.completed({run_id})[run_id]
                assert receipt.completed_at is not None
                ended = datetime.fromisoformat(receipt.completed_at).timestamp()
                latencies.append((receipt.received_at - ended) * 1000)

        busy = await _compare(ctx, workflow_id, receivers, subscribed, count)
        waiting_id = await scenarios.publish(ctx, scenarios.http_chain(5, slow.url))
        waiting = await _compare(ctx, waiting_id, receivers, subscribed, count // 2)
        return {
            "endpoints": len(receivers),
            "latency_samples": len(latencies),
            "latency_p50_ms": round(scenarios.percentile(latencies, 50), 1),
            "latency_p95_ms": round(scenarios.percentile(latencies, 95), 1),
            **busy.figures(),
            **waiting.figures("peer_100ms_"),
        }
    finally:
        for endpoint_id in endpoint_ids:
            await ctx.api.delete(f"/v1/webhook-endpoints/{endpoint_id}")
        for receiver in receivers:
            receiver.stop()
        slow.stop()
