"""`tracing_cost`: what tracing costs. Two stacks of their own, side by side on this machine:
one as configured by default (no OTEL_* exporter: nothing is instrumented), one exporting
every span over OTLP/HTTP to a collector on 127.0.0.1 in this process (tests/otlp.py). Each
runs the same workflow (start_json -> http_request to a local peer -> end), so a traced run has
the API's server span, the Temporal client, workflow and activity spans and the httpx span.

Rounds alternate the stacks (ABBA); in each, a stack takes `starts` REST starts at 16
concurrent clients (API throughput, starts/s, and the POST's p50 under that load; the runs are
drained, untimed, before the next round) and then runs `sequential` runs one at a time, start
to result (the REST end-to-end p50). Ratios are on / off: throughput below 1 and latency above 1
is what tracing costs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio.client import Client

from bench import scenarios
from bench.stack import Stack
from runlane.converter import data_converter
from tests.otlp import Collector
from tests.peer import Peer

CONCURRENCY = 16


class _Side:
    def __init__(self, name: str, stack: Stack, peer: Peer) -> None:
        self.name = name
        self.stack = stack
        self.peer = peer
        self.starts_per_s: list[float] = []
        self.post_ms: list[float] = []
        self.run_ms: list[float] = []
        self.ctx: scenarios.Context | None = None
        self.workflow_id = ""

    async def open(self, quick: bool) -> None:
        client = await Client.connect(self.stack.temporal_address, data_converter=data_converter())
        api = self.stack.api_client()
        self.ctx = scenarios.Context(self.stack, client, api, "unused", self.peer, quick)
        definition = scenarios.http_chain(1, f"{self.peer.url}/traced")
        self.workflow_id = await scenarios.publish(self.ctx, definition)

    async def close(self) -> None:
        if self.ctx is not None:
            await self.ctx.api.aclose()

    async def round(self, starts: int, sequential: int) -> None:
        ctx = self.ctx
        assert ctx is not None
        gate = asyncio.Semaphore(CONCURRENCY)
        run_ids: list[str] = []

        async def start_one() -> None:
            async with gate:
                began = time.perf_counter()
                run_ids.append(await scenarios.start_run(ctx, self.workflow_id))
                self.post_ms.append((time.perf_counter() - began) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(start_one() for _ in range(starts)))
        self.starts_per_s.append(starts / (time.perf_counter() - began))
        for run_id in run_ids:  # drained, untimed: the next round starts on a quiet system
            await scenarios.run_result(ctx, run_id)
        for _ in range(sequential):
            began = time.perf_counter()
            await scenarios.run_result(ctx, await scenarios.start_run(ctx, self.workflow_id))
            self.run_ms.append((time.perf_counter() - began) * 1000)


async def tracing_cost(quick: bool) -> dict[str, Any]:
    rounds, starts, sequential = (2, 100, 10) if quick else (4, 300, 30)
    collector = Collector("http/protobuf")
    collector.start()
    peer = Peer()
    peer.start()
    off = _Side("off", Stack(), peer)
    traced = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    on = _Side("on", Stack(settings=traced), peer)
    try:
        for side in (off, on):
            side.stack.start()
            await side.open(quick)
        for index in range(rounds):
            order = (off, on) if index % 4 in (0, 3) else (on, off)
            for side in order:
                await side.round(starts, sequential)
    finally:
        for side in (off, on):
            await side.close()
            side.stack.stop()  # the processes export what they still hold as they stop
        spans = collector.received()
        peer.stop()
        collector.stop()

    def total_rate(side: _Side) -> float:
        # The runs of every round over the time they took: rounds weigh by their length.
        return len(side.starts_per_s) * starts / sum(starts / r for r in side.starts_per_s)

    figures: dict[str, Any] = {"rounds": rounds, "starts_per_round": starts}
    for side in (off, on):
        figures[f"{side.name}_starts_per_s"] = round(total_rate(side), 1)
        figures[f"{side.name}_post_p50_ms"] = round(scenarios.percentile(side.post_ms, 50), 1)
        figures[f"{side.name}_run_p50_ms"] = round(scenarios.percentile(side.run_ms, 50), 1)
    figures["throughput_ratio"] = round(total_rate(on) / total_rate(off), 3)
    figures["post_p50_ratio"] = round(figures["on_post_p50_ms"] / figures["off_post_p50_ms"], 3)
    figures["run_p50_ratio"] = round(figures["on_run_p50_ms"] / figures["off_run_p50_ms"], 3)
    figures["round_throughput_ratios"] = [
        round(a / b, 3) for a, b in zip(on.starts_per_s, off.starts_per_s, strict=True)
    ]
    # What the collector got from the traced stack: evidence that it traced what it ran.
    figures["spans_exported"] = len(spans)
    figures["services_exported"] = sorted({span.service for span in spans})
    return figures
