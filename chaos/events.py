"""`make chaos`: event deliveries across a worker SIGKILL and a Temporal restart.

A receiver on 127.0.0.1 (the only subscriber, to every event type) answers 503 while the
faults happen, so every delivery is waiting for its next attempt (a durable timer) when the
worker is killed and when the dev server restarts; then it answers 204. Every event of every
run must arrive, each under one `webhook-id` (its id, stable across attempts).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter, defaultdict
from email.message import Message
from typing import Any

from bench.loopback import Answer, LoopbackServer
from chaos import scenarios

# The delivery retry schedule the chaos stack runs with (chaos/run.py): short, so that a
# refused delivery is attempted again within the scenario.
RETRY_SETTINGS = {
    "RUNLANE_EVENT_RETRY_INITIAL_S": "1",
    "RUNLANE_EVENT_RETRY_MAX_INTERVAL_S": "2",
}
EXPECTED_TYPES = ("run.started", "run.completed")


class Receiver(LoopbackServer):
    """Refuses every event (503) until `accepting`, then takes them (204); notes each request
    by its `webhook-id`."""

    def __init__(self) -> None:
        super().__init__(self._receive, "/chaos-events")
        self.accepting = False
        # webhook-id -> (event type, run id), and every request seen (accepted or not).
        self.events: dict[str, tuple[str, str]] = {}
        self.requests: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _receive(self, headers: Message, raw: bytes) -> Answer:
        webhook_id = headers.get("webhook-id", "")
        body = json.loads(raw)
        with self.lock:
            self.events[webhook_id] = (body["type"], body["data"]["run"]["id"])
            self.requests[webhook_id] += 1
            if not self.accepting:
                return 503, b""
            self.accepted[webhook_id] += 1
        return 204, b""

    def received(self) -> dict[tuple[str, str], list[str]]:
        """(run id, event type) -> the webhook-ids it was accepted under."""
        with self.lock:
            found: dict[tuple[str, str], list[str]] = defaultdict(list)
            for webhook_id in self.accepted:
                event_type, run_id = self.events[webhook_id]
                found[(run_id, event_type)].append(webhook_id)
            return found


async def event_restarts(ctx: scenarios.Context) -> dict[str, Any]:
    count = 10 if ctx.quick else 40
    receiver = Receiver()
    receiver.start()
    endpoint_id = None
    try:
        created = await scenarios.call(
            ctx.api,
            "POST",
            "/v1/webhook-endpoints",
            json={"url": receiver.url, "events": list(EXPECTED_TYPES), "description": "chaos"},
        )
        created.raise_for_status()
        endpoint_id = created.json()["id"]
        workflow_id = await scenarios.publish(ctx, scenarios.pure_definition(), "chaos events")
        run_ids = [await scenarios.start(ctx, workflow_id) for _ in range(count)]
        outcomes = await asyncio.gather(
            *(scenarios.outcome(ctx.client, run_id, 120) for run_id in run_ids)
        )
        expected = {(run_id, t) for run_id in run_ids for t in EXPECTED_TYPES}

        async def refused_once() -> bool:
            with receiver.lock:
                return {(r, t) for t, r in receiver.events.values()} >= expected

        # Every event has been refused at least once: its delivery waits on a timer.
        await scenarios.wait_until(refused_once, 120, "a first, refused attempt of every event")
        await scenarios.restart_worker(ctx)
        scenarios.stop_temporal(ctx)
        ctx.faults.append("Temporal SIGTERM with every event delivery waiting for a retry")
        await scenarios.start_temporal(ctx)
        receiver.accepting = True
        started = time.monotonic()

        async def all_received() -> bool:
            return expected <= set(receiver.received())

        try:
            await scenarios.wait_until(all_received, 180, "every event after the faults")
        except RuntimeError:
            pass
        received = receiver.received()
        return {
            "runs": count,
            "runs_completed": sum(1 for o in outcomes if o == "completed"),
            "events_expected": len(expected),
            "events_received": len(expected & set(received)),
            "events_lost": len(expected - set(received)),
            "events_under_several_ids": sum(1 for ids in received.values() if len(ids) > 1),
            "requests": sum(receiver.requests.values()),
            "duplicate_receipts": sum(n - 1 for n in receiver.accepted.values() if n > 1),
            "received_within_s": round(time.monotonic() - started, 1),
        }
    finally:
        if endpoint_id is not None:
            await scenarios.call(ctx.api, "DELETE", f"/v1/webhook-endpoints/{endpoint_id}")
        receiver.stop()
