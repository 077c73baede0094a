"""A decision is recorded, then delivered as the `review` signal: never lost, never stuck, and
never signalled twice, whatever fails in between and however often it is replayed.

Temporal faults are real: the API's client reaches the dev server through a proxy that breaks
the connections carrying a `review` signal (tests/reviews/signal_breaker.py)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.deps import get_temporal_client
from api.main import create_app
from runlane.settings import Settings, get_settings
from runlane.temporal import connect
from tests.api.helpers import create_published, review_definition, wait_for_run, wait_until
from tests.conftest import ORG_A_KEY
from tests.reviews.signal_breaker import SignalBreaker

pytestmark = pytest.mark.timeout(240)


async def start_waiting(api: httpx.AsyncClient, workflow_id: str, amount: int = 1) -> str:
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": amount}}}
    )
    assert started.status_code == 202, started.text
    run_id: str = started.json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"}, timeout=60)
    return run_id


async def review_signals(client: Client, run_id: str) -> list[Any]:
    """The `review` signals the run's execution recorded."""
    history = await client.get_workflow_handle(run_id).fetch_history()
    return [
        event.workflow_execution_signaled_event_attributes
        for event in history.events
        if event.HasField("workflow_execution_signaled_event_attributes")
        and event.workflow_execution_signaled_event_attributes.signal_name == "review"
    ]


async def reviewed(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    steps = (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    review: dict[str, Any] = next(s for s in steps if s["node_id"] == "review")["review"]
    return review


@pytest.fixture
async def breaker(temporal_env: WorkflowEnvironment) -> AsyncIterator[SignalBreaker]:
    async with SignalBreaker(temporal_env.client.service_client.config.target_host) as proxy:
        yield proxy


@pytest.fixture
async def broken_api(
    app: FastAPI, worker: Worker, settings: Settings, breaker: SignalBreaker
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with its own Temporal client, connected like the real one, through `breaker`."""
    proxied = await connect(settings.model_copy(update={"temporal_address": breaker.address}))
    app.dependency_overrides[get_temporal_client] = lambda: proxied
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runlane.test", headers={"Api-Key": ORG_A_KEY}
    ) as http:
        yield http


# ---------------------------------------------------------------- refused before anything


@pytest.mark.parametrize("megabytes", [3, 6])
async def test_a_decision_too_large_is_413_and_the_node_takes_the_next_one(
    api: httpx.AsyncClient, client: Client, megabytes: int
) -> None:
    """Over Temporal's 2 MB payload limit (3 MB), and over its 4 MB gRPC message limit too
    (6 MB, which Temporal answers otherwise): refused before anything is recorded, in words
    about the decision, and the node still takes a decision."""
    workflow_id = await create_published(api, review_definition())
    run_id = await start_waiting(api, workflow_id)
    url = f"/v1/workflows/runs/{run_id}/reviews/review"
    # Random text: large payloads are compressed, so repetitive filler would fit.
    scan = secrets.token_urlsafe(megabytes * 1024 * 1024)
    refused = await api.post(url, json={"decision": "approve", "data": {"scan": scan}})
    assert refused.status_code == 413, refused.text[:500]
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("payload_too_large", "decision_too_large")
    assert "decision" in error["message"] and "input" not in error["message"]
    decided = await api.post(url, json={"decision": "approve", "data": {"amount": 3}})
    assert decided.status_code == 202, decided.text
    done = await wait_for_run(api, run_id, timeout=60)
    assert done["final_outputs"] == {"approved": {"amount": 3}}
    assert len(await review_signals(client, run_id)) == 1


# ---------------------------------------------------------------- delivery of unknown outcome


async def test_an_undelivered_decision_is_503_and_its_replay_delivers_it(
    broken_api: httpx.AsyncClient, client: Client, breaker: SignalBreaker
) -> None:
    """The signal cannot reach Temporal: 503 (try again), the decision is kept, a second
    reviewer meanwhile is told the node is decided, and the replay delivers the first one."""
    api = broken_api
    run_id = await start_waiting(api, await create_published(api, review_definition()))
    url = f"/v1/workflows/runs/{run_id}/reviews/review"
    first = {"decision": "approve", "data": {"by": "ann"}, "reviewer": "ann", "command_id": run_id}

    breaker.mode = "drop"
    unavailable = await api.post(url, json=first)
    assert unavailable.status_code == 503, unavailable.text
    assert unavailable.json()["error"]["code"] == "temporal_unavailable"
    assert breaker.broken >= 1
    other = await api.post(url, json={"decision": "reject", "reviewer": "bob"})
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "review_not_waiting"
    run = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
    assert run["waiting_for_node_ids"] == ["review"]  # nothing reached the run yet

    breaker.mode = "pass"
    replayed = await api.post(url, json=first)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["id"] == run_id
    done = await wait_for_run(api, run_id, timeout=60)
    assert done["status"] == "completed"
    assert done["final_outputs"] == {"approved": {"by": "ann"}}
    assert (await reviewed(api, run_id))["reviewer"] == "ann"
    assert len(await review_signals(client, run_id)) == 1


async def test_a_later_decision_delivers_the_one_recorded_first(
    broken_api: httpx.AsyncClient, client: Client, breaker: SignalBreaker
) -> None:
    """No command_id to replay: the next reviewer's attempt finds the recorded decision,
    delivers it (once Temporal answers again) and is refused as already decided."""
    api = broken_api
    run_id = await start_waiting(api, await create_published(api, review_definition()))
    url = f"/v1/workflows/runs/{run_id}/reviews/review"
    breaker.mode = "drop"
    first = await api.post(url, json={"decision": "approve", "reviewer": "ann"})
    assert first.status_code == 503, first.text

    breaker.mode = "pass"
    other = await api.post(url, json={"decision": "reject", "reviewer": "bob"})
    assert other.status_code == 409, other.text
    done = await wait_for_run(api, run_id, timeout=60)
    assert done["status"] == "completed"
    assert (await reviewed(api, run_id))["reviewer"] == "ann"
    assert len(await review_signals(client, run_id)) == 1


async def test_a_lost_answer_still_makes_one_signal(
    broken_api: httpx.AsyncClient, client: Client, breaker: SignalBreaker
) -> None:
    """The signal reaches Temporal, every answer is lost (each of the API's own retries, too):
    503, the run goes on with the decision, and the replay is 200 with one signal in history."""
    api = broken_api
    run_id = await start_waiting(api, await create_published(api, review_definition()))
    url = f"/v1/workflows/runs/{run_id}/reviews/review"
    body = {"decision": "approve", "reviewer": "ann", "command_id": f"lost-{run_id}"}
    breaker.mode = "lose_answer"
    unknown = await api.post(url, json=body)
    assert unknown.status_code == 503, unknown.text
    assert breaker.broken >= 2  # the API tried more than once

    breaker.mode = "pass"
    done = await wait_for_run(api, run_id, timeout=60)
    assert done["status"] == "completed"
    replayed = await api.post(url, json=body)
    assert replayed.status_code == 200, replayed.text
    assert len(await review_signals(client, run_id)) == 1


async def test_the_api_delivers_a_kept_decision_by_itself(
    worker: Worker,
    settings: Settings,
    client: Client,
    breaker: SignalBreaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nobody calls again after the 503: the API (its real lifespan, connected through the
    proxy) delivers the kept decision once Temporal answers, and the run completes."""
    for name, value in {
        "RUNLANE_API_KEYS": settings.api_keys,
        "RUNLANE_DATA_DIR": str(settings.data_dir),
        "RUNLANE_TASK_QUEUE": settings.task_queue,
        "RUNLANE_TEMPORAL_ADDRESS": breaker.address,
        "RUNLANE_HTTP_ALLOW_PRIVATE": "true",
        "RUNLANE_SECRETS_KEY": settings.secrets_key.get_secret_value(),
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = create_app()
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://runlane.test",
                headers={"Api-Key": ORG_A_KEY},
            ) as api,
        ):
            run_id = await start_waiting(api, await create_published(api, review_definition()))
            url = f"/v1/workflows/runs/{run_id}/reviews/review"
            breaker.mode = "drop"
            first = await api.post(url, json={"decision": "approve", "reviewer": "ann"})
            assert first.status_code == 503, first.text
            breaker.mode = "pass"
            done = await wait_for_run(api, run_id, timeout=90)
            assert done["status"] == "completed"
            assert (await reviewed(api, run_id))["reviewer"] == "ann"
            assert len(await review_signals(client, run_id)) == 1
    finally:
        get_settings.cache_clear()


# ---------------------------------------------------------------- concurrency


async def test_concurrent_replays_over_many_runs_signal_once_and_answer_200(
    api: httpx.AsyncClient, client: Client
) -> None:
    """Each of 20 decisions sent 3 times at once (one command_id each): one 202 and two 200
    per run, never a 404 for a run that exists, one `review` signal per run."""
    workflow_id = await create_published(api, review_definition())
    run_ids = await asyncio.gather(*(start_waiting(api, workflow_id, i) for i in range(20)))

    async def decide(run_id: str) -> list[httpx.Response]:
        url = f"/v1/workflows/runs/{run_id}/reviews/review"
        body = {"decision": "approve", "reviewer": "ann", "command_id": f"once-{run_id}"}
        return list(await asyncio.gather(*(api.post(url, json=body) for _ in range(3))))

    answers = dict(zip(run_ids, await asyncio.gather(*map(decide, run_ids)), strict=True))
    for run_id, responses in answers.items():
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 200, 202], [r.text for r in responses]
        assert {r.json()["id"] for r in responses} == {run_id}

    async def all_completed() -> bool:
        runs = await asyncio.gather(*(api.get(f"/v1/workflows/runs/{r}") for r in run_ids))
        return all(run.json()["status"] == "completed" for run in runs)

    await wait_until(all_completed, timeout=90)
    counts = await asyncio.gather(*(review_signals(client, run_id) for run_id in run_ids))
    assert [len(signals) for signals in counts] == [1] * len(run_ids)


async def test_two_reviewers_at_once_one_decides(api: httpx.AsyncClient, client: Client) -> None:
    run_id = await start_waiting(api, await create_published(api, review_definition()))
    url = f"/v1/workflows/runs/{run_id}/reviews/review"
    ann, bob = await asyncio.gather(
        api.post(url, json={"decision": "approve", "reviewer": "ann"}),
        api.post(url, json={"decision": "reject", "reviewer": "bob"}),
    )
    assert sorted((ann.status_code, bob.status_code)) == [202, 409], (ann.text, bob.text)
    winner = "ann" if ann.status_code == 202 else "bob"
    done = await wait_for_run(api, run_id, timeout=60)
    assert done["status"] == ("completed" if winner == "ann" else "error")
    assert (await reviewed(api, run_id))["reviewer"] == winner
    assert len(await review_signals(client, run_id)) == 1


async def test_a_quorums_decisions_reach_the_run_in_the_order_they_were_taken(
    broken_api: httpx.AsyncClient, client: Client, breaker: SignalBreaker
) -> None:
    """A node needing two approvals: ann's approval is kept undelivered (503); bob's reject,
    taken after it, delivers ann's first, so the run counts her approval, then rejects."""
    api = broken_api
    definition = review_definition()
    definition["nodes"][1]["config"]["approvals_required"] = 2
    run_id = await start_waiting(api, await create_published(api, definition))
    url = f"/v1/workflows/runs/{run_id}/reviews/review"
    ann = {"decision": "approve", "reviewer": "ann", "command_id": f"{run_id}-ann"}

    breaker.mode = "drop"
    first = await api.post(url, json=ann)
    assert first.status_code == 503, first.text
    again = await api.post(url, json={"decision": "approve", "reviewer": "ann"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "review_already_approved"
    assert await review_signals(client, run_id) == []
    breaker.mode = "pass"
    rejected = await api.post(url, json={"decision": "reject", "reviewer": "bob"})
    assert rejected.status_code == 202, rejected.text
    done = await wait_for_run(api, run_id, timeout=60)
    assert done["status"] == "error" and "rejected by bob" in done["error"]["message"]
    steps = (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    review_step = next(s for s in steps if s["node_id"] == "review")
    assert [a["reviewer"] for a in review_step["approvals"]] == ["ann"]
    replayed = await api.post(url, json=ann)
    assert replayed.status_code == 200, replayed.text
    signals = await review_signals(client, run_id)
    reviewers = [s.input.payloads[0].data for s in signals]
    assert len(signals) == 2 and b"ann" in reviewers[0] and b"bob" in reviewers[1]
