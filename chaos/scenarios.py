"""The fault scenarios: each does something an unlucky operator or a hostile caller would, to a
real stack under load, and returns what it counted (runs completed and lost, peer calls,
decision signals and resets in Temporal history, answers by status).

Every wait is for a condition with a deadline; a run that does not finish within its deadline
is counted as lost, not waited for any longer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from bench.stack import Stack, wait_for_port
from chaos.peer import CountingPeer
from workflows.models import RunState

ORG_A_KEY = "chaos-key-a"
ORG_B_KEY = "chaos-key-b"
API_KEYS = f"{ORG_A_KEY}:org_a,{ORG_B_KEY}:org_b"
ENDED = {"completed", "error", "cancelled"}
# Answers a client retries: the API is down or restarting (connection refused or reset,
# 502/503/504), as a careful client would.
RETRYABLE_STATUS = {502, 503, 504}
WORKER_READY = "worker polling task queue"


@dataclass
class Context:
    stack: Stack
    client: Client
    api: httpx.AsyncClient
    peer: CountingPeer
    quick: bool
    # What this process did to the stack (kills, restarts), for the log of the run.
    faults: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ definitions


def chain(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "nodes": nodes,
        "edges": [
            {"source": a["id"], "target": b["id"]} for a, b in zip(nodes, nodes[1:], strict=False)
        ],
    }


def pure_definition() -> dict[str, Any]:
    return chain(
        [
            {"id": "in", "type": "start_json"},
            {"id": "shape", "type": "transform", "config": {"output": {"n": "{{in.n}}"}}},
            {"id": "out", "type": "end", "config": {"outputs": "{{shape}}"}},
        ]
    )


def http_definition(url: str, *, max_attempts: int = 10) -> dict[str, Any]:
    """Pure nodes around one call to the peer carrying the run's token. The node's 5 s
    timeout bounds how long a call lost with its worker waits before it is tried again, and
    each SIGKILL costs an in-flight call one attempt: hence 10 attempts, not the default 3."""
    return chain(
        [
            {"id": "in", "type": "start_json"},
            {"id": "shape", "type": "transform", "config": {"output": {"token": "{{in.token}}"}}},
            {
                "id": "call",
                "type": "http_request",
                "config": {
                    "method": "POST",
                    "url": url,
                    "body": {"token": "{{shape.token}}"},
                    "timeout_s": 4,
                },
                "timeout_s": 5,
                "retry": {"max_attempts": max_attempts, "initial_interval_s": 1, "backoff": 1.5},
            },
            {"id": "check", "type": "transform", "config": {"output": "{{call.status}}"}},
            {"id": "out", "type": "end", "config": {"outputs": {"status": "{{check}}"}}},
        ]
    )


def review_definition() -> dict[str, Any]:
    return chain(
        [
            {"id": "in", "type": "start_json"},
            {"id": "review", "type": "human_review", "config": {"payload": "{{in}}"}},
            {"id": "out", "type": "end"},
        ]
    )


def delay_definition(seconds: float) -> dict[str, Any]:
    return chain(
        [
            {"id": "in", "type": "start_json"},
            {"id": "wait", "type": "delay", "config": {"seconds": seconds}},
            {"id": "out", "type": "end"},
        ]
    )


# ------------------------------------------------------------------ REST helpers


async def call(
    api: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    timeout_s: float = 90,
    **kwargs: Any,
) -> httpx.Response:
    """One request, sent again while the API is down or restarting, until `timeout_s`.
    Only for requests that are safe to send twice (reads, or writes with a `command_id`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = await api.request(method, url, **kwargs)
            if response.status_code not in RETRYABLE_STATUS or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def publish(ctx: Context, definition: dict[str, Any], name: str = "chaos") -> str:
    created = await call(
        ctx.api, "POST", "/v1/workflows", json={"name": name, "definition": definition}
    )
    created.raise_for_status()
    workflow_id = str(created.json()["id"])
    (await call(ctx.api, "POST", f"/v1/workflows/{workflow_id}/publish")).raise_for_status()
    return workflow_id


async def start(ctx: Context, workflow_id: str, inputs: dict[str, Any] | None = None) -> str:
    body = {"json_inputs": {"in": inputs or {"n": 1}}, "command_id": f"chaos-{uuid.uuid4().hex}"}
    response = await call(ctx.api, "POST", f"/v1/workflows/{workflow_id}/run", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


async def run_status(ctx: Context, run_id: str) -> str:
    response = await call(ctx.api, "GET", f"/v1/workflows/runs/{run_id}")
    response.raise_for_status()
    return str(response.json()["status"])


async def wait_status(
    ctx: Context, run_id: str, wanted: set[str], timeout_s: float = 60
) -> str | None:
    """The run's status once it is one of `wanted`; None if it is not within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = await run_status(ctx, run_id)
        if status in wanted:
            return status
        await asyncio.sleep(0.2)
    return None


async def outcome(client: Client, run_id: str, timeout_s: float) -> str:
    """How the run's Temporal execution ended: its status, or `lost` at the deadline."""
    handle = client.get_workflow_handle(run_id, result_type=RunState)
    try:
        async with asyncio.timeout(max(timeout_s, 0.1)):
            while True:
                try:
                    state = await handle.result()
                    return str(state.status)
                except WorkflowFailureError:
                    return "error"
                except RPCError:  # the server restarting: ask again
                    await asyncio.sleep(0.5)
    except TimeoutError:
        return "lost"


async def listed_runs(ctx: Context, workflow_id: str, **filters: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    params: dict[str, Any] = {"workflow_id": workflow_id, "limit": 200, **filters}
    while True:
        page = await call(ctx.api, "GET", "/v1/workflows/runs", params=params)
        page.raise_for_status()
        body = page.json()
        runs += body["data"]
        if not body.get("next_cursor"):
            return runs
        params["cursor"] = body["next_cursor"]


async def settled_runs(
    ctx: Context, workflow_id: str, at_least: int, timeout_s: float = 90, **filters: str
) -> list[dict[str, Any]]:
    """The workflow's runs once at least `at_least` are listed and all have ended (the listing
    reads Temporal's visibility, which trails the runs by a moment)."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = await listed_runs(ctx, workflow_id, **filters)
        settled = len(runs) >= at_least and all(r["status"] in ENDED for r in runs)
        if settled or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(0.5)


# ------------------------------------------------------------------ history


async def history_events(ctx: Context, run_id: str) -> list[Any]:
    history = await ctx.client.get_workflow_handle(run_id).fetch_history()
    return list(history.events)


async def review_signals(ctx: Context, run_id: str) -> int:
    """`review` signals the run's current execution received: decisions that reached it."""
    return sum(
        1
        for e in await history_events(ctx, run_id)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.signal_name == "review"
    )


async def resets(ctx: Context, run_id: str) -> int:
    """Resets behind the run's current execution (each leaves a workflow task failed with
    cause RESET_WORKFLOW in the history it copies forward)."""
    cause = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
    return sum(
        1
        for e in await history_events(ctx, run_id)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        and e.workflow_task_failed_event_attributes.cause == cause
    )


async def cancel_requests(ctx: Context, run_id: str) -> int:
    return sum(
        1
        for e in await history_events(ctx, run_id)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
    )


async def timer_started(ctx: Context, run_id: str) -> bool:
    return any(
        e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        for e in await history_events(ctx, run_id)
    )


# ------------------------------------------------------------------ faults


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str
) -> float:
    """Seconds until `condition` held; RuntimeError naming `what` at the deadline."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"{what}: not within {timeout_s:g} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def restart_worker(ctx: Context) -> float:
    """SIGKILL the worker and start it again; seconds until the new one polls."""
    ready_lines = ctx.stack.log_text("worker").count(WORKER_READY)
    started = time.monotonic()
    ctx.stack.kill("worker")
    ctx.stack.respawn("worker")

    async def polling() -> bool:
        return ctx.stack.log_text("worker").count(WORKER_READY) > ready_lines

    await wait_until(polling, 90, "the worker after a SIGKILL")
    ctx.faults.append(f"worker SIGKILL + restart ({time.monotonic() - started:.1f} s)")
    return time.monotonic() - started


async def api_healthy(ctx: Context) -> bool:
    try:
        return (await ctx.api.get("/healthz", timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False


async def restart_api(ctx: Context) -> float:
    """SIGKILL the API and start it again; seconds until it answers /healthz with 200."""
    started = time.monotonic()
    ctx.stack.kill("api")
    ctx.stack.respawn("api")
    await wait_until(lambda: api_healthy(ctx), 90, "the API after a SIGKILL")
    ctx.faults.append(f"API SIGKILL + restart ({time.monotonic() - started:.1f} s)")
    return time.monotonic() - started


def stop_temporal(ctx: Context) -> None:
    """Stop the dev server as an operator's restart would (SIGTERM)."""
    ctx.stack.kill("temporal", signal.SIGTERM)


async def start_temporal(ctx: Context) -> None:
    """Start the dev server again on the same SQLite file; returns once the API answers
    /healthz with Temporal reachable."""
    ctx.stack.respawn("temporal")
    await asyncio.to_thread(wait_for_port, ctx.stack.temporal_port, 90)
    await wait_until(lambda: api_healthy(ctx), 90, "the API's Temporal after its restart")


async def ensure_up(ctx: Context) -> None:
    """Every process running again after a scenario, whatever it did (or failed to do)."""
    for name in ("temporal", "worker", "api"):
        if ctx.stack.processes[name].poll() is not None:
            ctx.stack.respawn(name)
            ctx.faults.append(f"{name} found dead after a scenario: started again")
    await asyncio.to_thread(wait_for_port, ctx.stack.temporal_port, 90)
    await wait_until(lambda: api_healthy(ctx), 90, "the stack after a scenario")


# ------------------------------------------------------------------ 1. worker kills


async def worker_kills(ctx: Context) -> dict[str, Any]:
    """Runs with a peer call started over REST while the worker is SIGKILLed and restarted;
    kills are spread over the work by the calls the peer has seen."""
    count, kills = (50, 2) if ctx.quick else (500, 5)
    path = f"/kills-{uuid.uuid4().hex[:8]}"
    workflow_id = await publish(ctx, http_definition(f"{ctx.peer.url}{path}"), "worker kills")
    run_of_token: dict[str, str] = {}
    gate = asyncio.Semaphore(16)

    async def start_one() -> None:
        token = uuid.uuid4().hex
        async with gate:
            run_of_token[token] = await start(ctx, workflow_id, {"token": token})

    started = time.monotonic()
    starting = asyncio.gather(*(start_one() for _ in range(count)))
    restart_s: list[float] = []
    for kill in range(1, kills + 1):
        threshold = kill * count // (kills + 1)

        async def reached(threshold: int = threshold) -> bool:
            return ctx.peer.tokens_seen(path) >= threshold

        await wait_until(reached, 300, f"{threshold} runs calling the peer")
        restart_s.append(round(await restart_worker(ctx), 1))
    await starting
    deadline = started + (120 if ctx.quick else 300)
    outcomes = await asyncio.gather(
        *(
            outcome(ctx.client, run_id, deadline - time.monotonic())
            for run_id in run_of_token.values()
        )
    )
    statuses = Counter(outcomes)

    calls = ctx.peer.by_token(path)
    duplicated = {token: hits for token, hits in calls.items() if len(hits) > 1}
    same_key = sum(
        1
        for token, hits in duplicated.items()
        if token in run_of_token
        and all(hit.idempotency_key == f"{run_of_token[token]}:call" for hit in hits)
    )
    return {
        "runs": count,
        "worker_kills": len(restart_s),
        "kills_missed": kills - len(restart_s),
        "worker_restart_s": restart_s,
        "completed": statuses["completed"],
        "error": statuses["error"],
        "lost": statuses["lost"],
        "other_status": sum(
            n for s, n in statuses.items() if s not in {"completed", "error", "lost"}
        ),
        "wall_s": round(time.monotonic() - started, 1),
        "peer_calls": sum(len(hits) for hits in calls.values()),
        "runs_never_calling": sum(1 for token in run_of_token if token not in calls),
        "duplicate_peer_calls": sum(len(hits) - 1 for hits in duplicated.values()),
        "runs_with_duplicate_calls": len(duplicated),
        "duplicates_with_same_key": same_key,
        "duplicates_without_matching_key": len(duplicated) - same_key,
        "truncated_requests": ctx.peer.truncated,
        "calls_without_token": len(calls.get(None, [])),
        "calls_without_key": sum(
            1 for hits in calls.values() for hit in hits if not hit.idempotency_key
        ),
    }


# ------------------------------------------------------------------ 2. Temporal restart


async def temporal_restart(ctx: Context) -> dict[str, Any]:
    """Runs waiting on a review and on a timer while the dev server restarts; the reviews are
    decided while it is down and again once it is back, and the timers fire."""
    each = 5 if ctx.quick else 20
    delay_s = 15
    review_wf = await publish(ctx, review_definition(), "temporal restart: reviews")
    timer_wf = await publish(ctx, delay_definition(delay_s), "temporal restart: timers")
    reviews = await asyncio.gather(*(start(ctx, review_wf, {"n": i}) for i in range(each)))
    timers = await asyncio.gather(*(start(ctx, timer_wf, {"n": i}) for i in range(each)))

    waiting_reviews = sum(
        status == "waiting_for_human"
        for status in await asyncio.gather(
            *(wait_status(ctx, r, {"waiting_for_human"}) for r in reviews)
        )
    )

    async def timing(run_id: str) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if await timer_started(ctx, run_id):
                return True
            await asyncio.sleep(0.2)
        return False

    waiting_timers = sum(await asyncio.gather(*(timing(r) for r in timers)))

    # Every review is decided while the server is down (a reviewer who does not know), then
    # sent again once it is back, as a client retries a 503: half with a command_id, half
    # without. A decision whose first attempt failed must neither be lost nor block its
    # retry (issue #13: a claimed slot whose signal failed answered 409 for ever).
    url = "/v1/workflows/runs/{}/reviews/review"
    bodies = {
        run_id: {"decision": "approve", **({"command_id": f"decide-{run_id}"} if i % 2 else {})}
        for i, run_id in enumerate(reviews)
    }

    async def attempt(run_id: str) -> tuple[str, float]:
        sent = time.monotonic()
        try:
            response = await ctx.api.post(url.format(run_id), json=bodies[run_id], timeout=30)
            status = str(response.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        return status, time.monotonic() - sent

    stopped = time.monotonic()
    stop_temporal(ctx)
    during = await asyncio.gather(*(attempt(r) for r in reviews))
    await start_temporal(ctx)
    down_s = time.monotonic() - stopped
    ctx.faults.append(f"Temporal SIGTERM, {each} decisions, restart ({down_s:.1f} s)")

    async def decide(run_id: str) -> str:
        response = await call(ctx.api, "POST", url.format(run_id), json=bodies[run_id])
        return str(response.status_code)

    decided = Counter(await asyncio.gather(*(decide(r) for r in reviews)))
    outcomes = await asyncio.gather(
        *(outcome(ctx.client, r, 120 + delay_s) for r in [*reviews, *timers])
    )
    review_outcomes, timer_outcomes = outcomes[:each], outcomes[each:]
    signals = await asyncio.gather(*(review_signals(ctx, r) for r in reviews))
    return {
        "review_runs": each,
        "timer_runs": each,
        "timer_s": delay_s,
        "waiting_on_review_before": waiting_reviews,
        "waiting_on_timer_before": waiting_timers,
        "temporal_down_s": round(down_s, 1),
        "decision_answers_while_down": dict(sorted(Counter(s for s, _ in during).items())),
        "slowest_answer_while_down_s": round(max(t for _, t in during), 2),
        "decision_answers_after_restart": dict(sorted(decided.items())),
        "completed_after": sum(o == "completed" for o in outcomes),
        "review_runs_completed": sum(o == "completed" for o in review_outcomes),
        "timer_runs_completed": sum(o == "completed" for o in timer_outcomes),
        "lost": sum(o != "completed" for o in outcomes),
        # Reviewed runs that did not complete, or completed without a decision reaching them.
        "lost_decisions": sum(
            1 for o, n in zip(review_outcomes, signals, strict=True) if o != "completed" or n == 0
        ),
        "duplicate_decisions": sum(n - 1 for n in signals if n > 1),
    }


# ------------------------------------------------------------------ 3. API restart


async def api_restart(ctx: Context) -> dict[str, Any]:
    """Clients start runs while the API is SIGKILLed and restarted, retrying whatever fails
    (connection refused or reset, 5xx) until answered: once with a command_id per start,
    once without. Runs are then counted per workflow against the starts the clients made."""
    clients, per_client, kills = (4, 6, 2) if ctx.quick else (8, 20, 3)
    figures: dict[str, Any] = {"clients": clients, "starts_per_mode": clients * per_client}
    for mode in ("with_command_id", "without_command_id"):
        traffic = StartTraffic(ctx, mode == "with_command_id")
        figures |= {
            f"{mode}_{key}": value
            for key, value in (await traffic.measure(clients, per_client, kills)).items()
        }
    return figures


@dataclass
class StartTraffic:
    """Clients starting runs of one workflow through API restarts (api_restart)."""

    ctx: Context
    with_command_id: bool
    answered: list[str] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    async def client(self, workflow_id: str, index: int, starts: int) -> None:
        for n in range(starts):
            body: dict[str, Any] = {"json_inputs": {"in": {"n": index * 1000 + n}}}
            if self.with_command_id:
                body["command_id"] = f"api-restart-{uuid.uuid4().hex}"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    response = await self.ctx.api.post(
                        f"/v1/workflows/{workflow_id}/run", json=body, timeout=30
                    )
                except httpx.TransportError as exc:
                    self.failures[type(exc).__name__] += 1
                    await asyncio.sleep(0.2)
                    continue
                if response.status_code in (200, 202):
                    self.answered.append(str(response.json()["id"]))
                    break
                if response.status_code in RETRYABLE_STATUS:
                    self.failures[str(response.status_code)] += 1
                    await asyncio.sleep(0.2)
                    continue
                self.refused[str(response.status_code)] += 1
                break

    async def answered_at_least(self, count: int) -> bool:
        return len(self.answered) >= count

    async def measure(self, clients: int, per_client: int, kills: int) -> dict[str, Any]:
        mode = "with" if self.with_command_id else "without"
        workflow_id = await publish(self.ctx, pure_definition(), f"api restart, {mode} command_id")
        traffic = asyncio.gather(
            *(self.client(workflow_id, index, per_client) for index in range(clients))
        )
        total = clients * per_client
        restart_s = []
        for kill in range(1, kills + 1):
            threshold = kill * total // (kills + 1)
            await wait_until(
                partial(self.answered_at_least, threshold), 300, f"{threshold} starts answered"
            )
            restart_s.append(round(await restart_api(self.ctx), 1))
        await traffic
        runs = await settled_runs(self.ctx, workflow_id, len(set(self.answered)))
        listed = {r["id"] for r in runs}
        return {
            "api_restarts_s": restart_s,
            "starts_answered": len(self.answered),
            "lost_starts": total - len(self.answered),
            "refused": dict(self.refused),
            "failed_attempts_retried": dict(self.failures),
            "runs_created": len(runs),
            "duplicate_runs": len(runs) - len(self.answered),
            "answered_runs_missing": len(set(self.answered) - listed),
            "runs_completed": sum(r["status"] == "completed" for r in runs),
        }


# ------------------------------------------------------------------ 4. concurrent replays


async def storm(
    ctx: Context, url: str, body: dict[str, Any], replays: int
) -> tuple[Counter[str], set[str]]:
    """`replays` identical requests at once: answers by status and the run ids they name."""

    async def one() -> tuple[str, str | None]:
        try:
            response = await ctx.api.post(url, json=body, timeout=120)
        except httpx.HTTPError as exc:
            return type(exc).__name__, None
        run_id = response.json().get("id") if response.status_code in (200, 202) else None
        return str(response.status_code), run_id

    answers = await asyncio.gather(*(one() for _ in range(replays)))
    return Counter(status for status, _ in answers), {r for _, r in answers if r}


async def concurrent_replays(ctx: Context) -> dict[str, Any]:
    """For each command type, `replays` concurrent requests with one command_id: one answer
    202, the rest 200, one run named, one effect in Temporal (run, signal, reset, cancel)."""
    replays = 20 if ctx.quick else 100
    pure_wf = await publish(ctx, pure_definition(), "replays: pure")
    review_wf = await publish(ctx, review_definition(), "replays: review")
    fail_path = f"/fail-once-{uuid.uuid4().hex[:8]}"
    retry_wf = await publish(
        ctx, http_definition(f"{ctx.peer.url}{fail_path}", max_attempts=1), "replays: retry"
    )
    figures: dict[str, Any] = {"replays_per_command": replays}

    def record(kind: str, statuses: Counter[str], runs: set[str], effects: int) -> None:
        figures[f"{kind}_answers"] = dict(sorted(statuses.items()))
        figures[f"{kind}_accepted_202"] = statuses["202"]
        figures[f"{kind}_not_2xx"] = sum(n for s, n in statuses.items() if s not in {"200", "202"})
        figures[f"{kind}_distinct_runs"] = len(runs)
        figures[f"{kind}_effects"] = effects

    # start: one run of the workflow
    statuses, runs = await storm(
        ctx,
        f"/v1/workflows/{pure_wf}/run",
        {"json_inputs": {"in": {"n": 1}}, "command_id": f"storm-{uuid.uuid4().hex}"},
        replays,
    )
    record("start", statuses, runs, len(await settled_runs(ctx, pure_wf, 1)))

    # restart and rerun: one new run from an ended source
    source = await start(ctx, pure_wf)
    await wait_status(ctx, source, ENDED)
    for kind in ("restart", "rerun"):
        statuses, runs = await storm(
            ctx,
            f"/v1/workflows/runs/{source}/{kind}",
            {"command_id": f"storm-{uuid.uuid4().hex}"},
            replays,
        )
        derived = await settled_runs(ctx, pure_wf, 1, trigger_type=kind)
        record(kind, statuses, runs, len(derived))

    # review: one `review` signal in the run's history
    waiting = await start(ctx, review_wf)
    await wait_status(ctx, waiting, {"waiting_for_human"})
    statuses, runs = await storm(
        ctx,
        f"/v1/workflows/runs/{waiting}/reviews/review",
        {"decision": "approve", "command_id": f"storm-{uuid.uuid4().hex}"},
        replays,
    )
    await wait_status(ctx, waiting, ENDED)
    record("review", statuses, runs, await review_signals(ctx, waiting))
    figures["review_run_status"] = await run_status(ctx, waiting)

    # cancel: one cancel request in the run's history
    waiting = await start(ctx, review_wf)
    await wait_status(ctx, waiting, {"waiting_for_human"})
    statuses, runs = await storm(
        ctx,
        f"/v1/workflows/runs/{waiting}/cancel",
        {"command_id": f"storm-{uuid.uuid4().hex}"},
        replays,
    )
    figures["cancel_run_status"] = await wait_status(ctx, waiting, ENDED)
    record("cancel", statuses, runs, await cancel_requests(ctx, waiting))

    # retry: one reset of a run that failed at its peer call (the peer refuses it once)
    ctx.peer.fail(fail_path, 1, 400)
    failed = await start(ctx, retry_wf, {"token": uuid.uuid4().hex})
    figures["retry_source_status"] = await wait_status(ctx, failed, ENDED)
    statuses, runs = await storm(
        ctx,
        f"/v1/workflows/runs/{failed}/retry",
        {"command_id": f"storm-{uuid.uuid4().hex}"},
        replays,
    )

    async def retried() -> bool:
        run = (await call(ctx.api, "GET", f"/v1/workflows/runs/{failed}")).json()
        return run["attempt"] >= 2 and run["status"] in ENDED

    await wait_until(retried, 60, "the retried run")
    record("retry", statuses, runs, await resets(ctx, failed))
    figures["retry_run_status"] = await run_status(ctx, failed)
    return figures


# ------------------------------------------------------------------ 5. cross-organization


def revealed_text(value: Any) -> str:
    """The JSON text of `value` plus every base64 string in it decoded: a payload the codec
    endpoint answers is base64 in JSON, and what it reveals is inside."""
    parts = [json.dumps(value, default=repr)]

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            for inner in item.values():
                walk(inner)
        elif isinstance(item, list):
            for inner in item:
                walk(inner)
        elif isinstance(item, str) and len(item) >= 8:
            try:
                parts.append(base64.b64decode(item, validate=True).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                pass

    walk(value)
    return "\n".join(parts)


@dataclass(frozen=True)
class Probe:
    status: int
    text: str


async def probe(
    api: httpx.AsyncClient,
    method: str,
    path: str,
    params: dict[str, str],
    body: Any,
    key: str = ORG_B_KEY,
) -> Probe:
    """One request with org B's key; the SSE endpoint is read only as far as its status."""
    kwargs: dict[str, Any] = {"params": params, "headers": {"Api-Key": key}, "timeout": 30}
    if isinstance(body, dict) and "__files__" in body:
        kwargs["files"] = body["__files__"]
    elif body is not None:
        kwargs["json"] = body
    try:
        async with api.stream(method, path, **kwargs) as response:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                chunk = b""
                try:
                    async with asyncio.timeout(3):
                        async for part in response.aiter_bytes():
                            chunk += part
                            break
                except TimeoutError:
                    pass
                return Probe(response.status_code, chunk.decode(errors="replace"))
            raw = await response.aread()
    except httpx.HTTPError as exc:
        return Probe(0, type(exc).__name__)
    try:
        text = revealed_text(json.loads(raw))
    except ValueError:
        text = raw.decode(errors="replace")
    return Probe(response.status_code, text)


async def org_a_objects(ctx: Context) -> dict[str, str]:
    """One object of each kind in org A, and a canary string that only org A's data holds."""
    canary = f"canary-org-a-{uuid.uuid4().hex}"
    workflow_id = await publish(ctx, review_definition(), f"org a {canary}")
    workflow = (await call(ctx.api, "GET", f"/v1/workflows/{workflow_id}")).json()
    uploaded = await ctx.api.post(
        "/v1/files", files={"file": ("org-a.txt", canary.encode(), "text/plain")}
    )
    uploaded.raise_for_status()
    waiting = await start(ctx, workflow_id, {"secret": canary})
    await wait_status(ctx, waiting, {"waiting_for_human"})
    # An ended run of its own for restart, rerun and retry: cancelled, so retry may apply.
    ended = await start(ctx, workflow_id, {"secret": canary})
    await wait_status(ctx, ended, {"waiting_for_human"})
    (await call(ctx.api, "POST", f"/v1/workflows/runs/{ended}/cancel", json={})).raise_for_status()
    await wait_status(ctx, ended, ENDED)
    # Triggers: a schedule (hourly, paused: it never fires here), an inbound webhook and an
    # event endpoint (deleted again when the probe is done, so later scenarios' runs emit
    # nothing).
    schedule = await call(
        ctx.api,
        "POST",
        f"/v1/workflows/{workflow_id}/schedules",
        json={
            "spec": {"interval_s": 3600},
            "inputs": {"json_inputs": {"in": {"secret": canary}}},
            "note": canary,
        },
    )
    schedule.raise_for_status()
    schedule_id = str(schedule.json()["id"])
    paused = await call(ctx.api, "PATCH", f"/v1/schedules/{schedule_id}", json={"paused": True})
    paused.raise_for_status()
    webhook = await call(ctx.api, "POST", f"/v1/workflows/{workflow_id}/webhooks", json={})
    webhook.raise_for_status()
    endpoint = await call(
        ctx.api,
        "POST",
        "/v1/webhook-endpoints",
        json={"url": f"http://127.0.0.1:9/{canary}", "events": ["run.completed"]},
    )
    endpoint.raise_for_status()
    return {
        "canary": canary,
        "workflow_id": workflow_id,
        "snapshot_id": str(workflow["published_snapshot_id"]),
        "file_id": str(uploaded.json()["id"]),
        "waiting_run_id": waiting,
        "ended_run_id": ended,
        "node_id": "review",
        "schedule_id": schedule_id,
        "webhook_id": str(webhook.json()["id"]),
        "endpoint_id": str(endpoint.json()["id"]),
    }


def fill(path: str, objects: dict[str, str], missing: bool) -> tuple[str, list[str]]:
    """`path` with org A's ids (or ids of the same shape that name nothing), and the ids."""
    # Writes that need an ended run get it; everything else targets the waiting one.
    run = objects["ended_run_id"] if path.endswith(("restart", "rerun", "retry")) else None
    values = {
        "workflow_id": objects["workflow_id"],
        "run_id": run or objects["waiting_run_id"],
        "file_id": objects["file_id"],
        "snapshot_id": objects["snapshot_id"],
        "node_id": objects["node_id"],
        "schedule_id": objects["schedule_id"],
        "webhook_id": objects["webhook_id"],
        "endpoint_id": objects["endpoint_id"],
    }
    used = []
    for name, value in values.items():
        if f"{{{name}}}" not in path:
            continue
        if missing and name != "node_id":
            prefix = value.split("_", 1)[0]
            value = f"{prefix}_{uuid.uuid4().hex[:20]}"
        path = path.replace(f"{{{name}}}", value)
        used.append(value)
    return path, used


_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def normalized(text: str, ids: list[str]) -> str:
    """`text` with the ids a request named replaced, to compare two answers; and with times
    replaced, which differ between two calls (`GET /v1/usage` answers its window, `to` being
    now by default) without telling anything about the objects named."""
    for value in ids:
        text = text.replace(value, "<id>")
    return _MOMENT.sub("<time>", text)


async def codec_payloads(ctx: Context, run_id: str) -> dict[str, Any]:
    """The payloads of org A's run start event, as the Temporal UI would post them."""
    from google.protobuf import json_format

    events = await history_events(ctx, run_id)
    payloads = events[0].workflow_execution_started_event_attributes.input.payloads
    return {"payloads": [json_format.MessageToDict(p) for p in payloads]}


def body_for(method: str, path: str, objects: dict[str, str], codec: dict[str, Any]) -> Any:
    """A request body that passes validation, so the request reaches the organization check."""
    if method == "GET":
        return None
    if path.startswith("/codec/"):
        return codec
    if path == "/v1/files":
        return {"__files__": {"file": ("b.txt", b"org b", "text/plain")}}
    if path.endswith("/run"):
        return {"json_inputs": {"in": {"n": 1}}}
    if path.endswith("/reviews/{node_id}"):
        return {"decision": "approve"}
    if path.endswith("/schedules"):
        return {"spec": {"interval_s": 3600}, "inputs": {"json_inputs": {"in": {"n": 1}}}}
    if path == "/v1/schedules/{schedule_id}":
        return {"note": "org b"}
    if path.endswith("/backfill"):
        return {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-01T02:00:00Z"}
    if path == "/v1/webhook-endpoints":
        return {"url": "http://127.0.0.1:9/org-b", "events": ["run.completed"]}
    if path == "/v1/webhook-endpoints/{endpoint_id}":
        return {"description": "org b"}
    if path.endswith("/publish"):
        return None
    if path == "/v1/workflows":
        return {"name": "org b", "definition": pure_definition()}
    if path == "/v1/workflows/validate" or path.endswith("/draft"):
        return {"definition": pure_definition()}
    return {}


async def cross_org(ctx: Context) -> dict[str, Any]:
    """Every operation in the OpenAPI schema, called with org B's key on org A's objects, and
    again on ids that name nothing: org A's objects must be answered exactly like missing ones
    (API.md), and no answer may carry org A's ids or data."""
    objects = await org_a_objects(ctx)
    try:
        return await _cross_org(ctx, objects)
    finally:
        # Org A's endpoint would otherwise subscribe every later run of org A.
        await call(ctx.api, "DELETE", f"/v1/webhook-endpoints/{objects['endpoint_id']}")


async def _cross_org(ctx: Context, objects: dict[str, str]) -> dict[str, Any]:
    secrets = {v for k, v in objects.items() if k != "node_id"}
    codec = await codec_payloads(ctx, objects["waiting_run_id"])
    schema = (await call(ctx.api, "GET", "/openapi.json")).json()
    matrix: list[dict[str, Any]] = []
    in_schema = sum(
        1
        for operations in schema["paths"].values()
        for method in operations
        if method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    )
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            method = method.upper()
            body = body_for(method, path, objects, codec)
            query = {
                p["name"]: objects["workflow_id"]
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p["name"] == "workflow_id"
            }
            asked, a_ids = fill(path, objects, missing=False)
            as_a = await probe(ctx.api, method, asked, query, body)
            missing_query = {k: f"wf_{uuid.uuid4().hex[:20]}" for k in query}
            missing_path, missing_ids = fill(path, objects, missing=True)
            as_missing = await probe(ctx.api, method, missing_path, missing_query, body)
            sent = f"{asked} {query} {revealed_text(body) if body else ''}"
            revealed = sorted(s for s in secrets if s in as_a.text and s not in sent)
            names_a = bool(a_ids or query)
            problems = []
            if revealed:
                problems.append("reveals " + ", ".join(revealed))
            if a_ids and 200 <= as_a.status < 300:
                problems.append(f"acted on org A's object ({as_a.status})")
            # A webhook's calls take no API key (nobody's organization): an unsigned call to
            # org A's webhook is refused as unsigned, to a missing one as missing.
            if path.startswith("/hooks/"):
                if as_a.status != 401:
                    problems.append(f"an unsigned call answered {as_a.status}, not 401")
            elif names_a and (
                as_a.status != as_missing.status
                or normalized(as_a.text, [*a_ids, *query.values()])
                != normalized(as_missing.text, [*missing_ids, *missing_query.values()])
            ):
                problems.append("answered unlike a missing object")
            matrix.append(
                {
                    "endpoint": f"{method} {path}",
                    "with_org_a_ids": as_a.status,
                    "with_missing_ids": as_missing.status if names_a else None,
                    "verdict": "; ".join(problems) or "ok",
                }
            )
    # Positive controls: the same detector on org A's own reads must see org A's canary, or a
    # zero above would prove nothing.
    controls = [
        await probe(
            ctx.api, "GET", f"/v1/workflows/runs/{objects['waiting_run_id']}", {}, None, ORG_A_KEY
        ),
        await probe(ctx.api, "POST", "/codec/decode", {}, codec, ORG_A_KEY),
    ]
    reads = sum(
        1
        for row in matrix
        if row["verdict"] != "ok"
        and (row["endpoint"].startswith("GET") or "reveals" in row["verdict"])
    )
    return {
        "operations_in_schema": in_schema,
        "probed": len(matrix),
        "unprobed": in_schema - len(matrix),
        "naming_org_a_objects": sum(1 for row in matrix if row["with_missing_ids"] is not None),
        "cross_org_reads": reads,
        "cross_org_writes": sum(
            1
            for row in matrix
            if "acted on" in row["verdict"] and not row["endpoint"].startswith("GET")
        ),
        "answered_unlike_missing": sum("unlike" in row["verdict"] for row in matrix),
        "answers": dict(sorted(Counter(str(row["with_org_a_ids"]) for row in matrix).items())),
        "payloads_encrypted": objects["canary"] not in revealed_text(codec),
        # Org A reading its run and decoding its payloads: the detector sees the canary.
        "detector_controls_seen": sum(objects["canary"] in c.text for c in controls),
        "matrix": matrix,
    }
