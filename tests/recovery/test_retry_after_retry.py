"""A retry from a node of a run that an earlier retry (from its failure point) reset to its
first task. That retry's `retry` signal often reaches Temporal before the execution's first
task starts; the new retry's own signal, against the real stack, often only after the new
execution's first task (an interceptor makes it so here). Either way the nodes not downstream
of the retried node keep their outcomes and are not executed again: the peer counts the calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
)
from temporalio.testing import WorkflowEnvironment

from tests.api.helpers import assert_replays, create_published, wait_for_run
from tests.peer import Peer
from tests.recovery.support import (
    RUNS,
    chain,
    http_node,
    retry_plan,
    start_run,
    steps_of,
    wait_for_attempt,
)

# Whether the first retry's signal beats the reset execution's first task is up to timing
# (about half the time here): iterations go on until it did a few times.
MAX_ITERATIONS = 12
EXERCISED_ENOUGH = 3
_FIRST_TASK_WAIT_S = 10.0


class LateRetrySignal(Interceptor):
    """While `late` is set, holds the API's `retry` signal until the reset execution it is
    addressed to has completed its first workflow task, as a signal slower than the worker
    (another process, another host) arrives."""

    def __init__(self) -> None:
        self.late = False
        self.client: Client | None = None

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Outbound(next, lambda: self.late, lambda: self.client)


class _Outbound(OutboundInterceptor):
    def __init__(
        self,
        next: OutboundInterceptor,
        late: Callable[[], bool],
        client: Callable[[], Client | None],
    ) -> None:
        super().__init__(next)
        self._late = late
        self._client = client

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        client = self._client()
        if input.signal == "retry" and self._late() and client is not None:
            await _first_task_completed(client, input.id, input.run_id)
        await super().signal_workflow(input)


async def _first_task_completed(client: Client, workflow_id: str, run_id: str | None) -> None:
    """Until the execution completed a workflow task after its reset (bounded)."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    deadline = time.monotonic() + _FIRST_TASK_WAIT_S
    while time.monotonic() < deadline:
        kinds = [event.event_type async for event in handle.fetch_history_events()]
        reset = max(
            (
                i
                for i, kind in enumerate(kinds)
                if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            ),
            default=-1,
        )
        if EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in kinds[reset + 1 :]:
            return
        await asyncio.sleep(0.02)


@pytest.fixture
def late_signals() -> LateRetrySignal:
    return LateRetrySignal()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment, late_signals: LateRetrySignal) -> Client:
    """The app's and the worker's client, with the API's `retry` signals delayed on demand."""
    config: Any = temporal_env.client.config()
    config["interceptors"] = [*config["interceptors"], late_signals]
    made = Client(**config)
    late_signals.client = made
    return made


def _signal_before_first_task(kinds: list[EventType.ValueType]) -> bool:
    """The execution's `retry` signal was recorded before its first workflow task started,
    i.e. a reset to that task keeps it in history."""
    after_reset = kinds[kinds.index(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) + 1 :]
    started = after_reset.index(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
    return EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in after_reset[:started]


async def _history_kinds(client: Client, run_id: str) -> list[EventType.ValueType]:
    handle = client.get_workflow_handle(run_id)
    return [event.event_type async for event in handle.fetch_history_events()]


def _definition(peer: Peer) -> dict[str, Any]:
    # `start`'s batch and the scheduling of `call` share the run's first task, so a retry
    # from the failure point resets the run to its first task.
    return {
        "nodes": [
            {"id": "start", "type": "start_json"},
            http_node(peer.url, "call", once=True),
            {"id": "out", "type": "end", "config": {"outputs": {"s": "{{call.status}}"}}},
        ],
        "edges": chain("start", "call", "out"),
    }


async def test_retry_from_a_node_after_a_retry_from_the_failure_point_keeps_upstream_calls(
    api: httpx.AsyncClient, peer: Peer, client: Client, late_signals: LateRetrySignal
) -> None:
    workflow_id = await create_published(api, _definition(peer))
    exercised = 0
    for iteration in range(MAX_ITERATIONS):
        if exercised >= EXERCISED_ENOUGH:
            break
        calls = peer.count("/call")
        peer.fail("/call", 1, 503)
        run_id = (await start_run(api, workflow_id, json_inputs={"start": {"i": iteration}}))["id"]
        failed = await wait_for_run(api, run_id)
        assert failed["status"] == "error" and failed["error"]["node_id"] == "call", failed

        late_signals.late = False
        assert (await api.post(f"{RUNS}/{run_id}/retry")).status_code == 202
        retried = await wait_for_attempt(api, run_id, 2)
        assert retried["status"] == "completed", retried
        assert peer.count("/call") == calls + 2
        exercised += _signal_before_first_task(await _history_kinds(client, run_id))
        before = await steps_of(api, run_id)

        plan = await retry_plan(api, run_id, **{"from": "node", "node_id": "out"})
        assert plan["allowed"] is True, plan
        assert set(plan["reuse"]) == {"start", "call"} and plan["rerun"] == ["out"], plan
        late_signals.late = True
        response = await api.post(f"{RUNS}/{run_id}/retry", json={"plan_id": plan["plan_id"]})
        assert response.status_code == 202, response.text
        again = await wait_for_attempt(api, run_id, 3)
        assert again["status"] == "completed", again

        # `call` is upstream of `out`: not called again, its step as attempt 2 recorded it.
        assert peer.count("/call") == calls + 2, (iteration, peer.count("/call") - calls)
        after = await steps_of(api, run_id)
        for kept in ("start", "call"):
            assert after[kept]["output"] == before[kept]["output"], (iteration, kept)
            assert after[kept]["attempt"] == before[kept]["attempt"], (iteration, kept)
        assert after["out"]["attempt"] == 3, after["out"]
        assert [a["attempt"] for a in again["attempts"]] == [1, 2, 3]
        await assert_replays(client, run_id)
    # The ordering this is about happened (the first retry's signal before the reset
    # execution's first task) at least once.
    assert exercised > 0, "the first retry's signal never came before the reset's first task"
