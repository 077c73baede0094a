from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from temporalio.client import Client

from runs.reader import RunReader
from tests.api.helpers import (
    create_published,
    read_stale_once,
    review_definition,
    wait_for_run,
    wait_until,
)


async def start_waiting(api: httpx.AsyncClient, definition: dict) -> str:
    workflow_id = await create_published(api, definition)
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 1200}}}
    )
    run_id = started.json()["id"]
    run = await wait_for_run(api, run_id, until={"waiting_for_human"})
    assert run["waiting_for_node_ids"] == ["review"]
    assert run["lifecycle"] == {"kind": "waiting_for_human", "waiting_for_node_ids": ["review"]}
    assert run["timing"]["human_waiting_started_at"] is not None
    return run_id


async def test_approve_with_edit_completes_and_is_applied_once(api: httpx.AsyncClient) -> None:
    run_id = await start_waiting(api, review_definition())

    async def inbox_item() -> dict | None:
        items = (await api.get("/v1/reviews", params={"status": "pending"})).json()["data"]
        return next((i for i in items if i["run_id"] == run_id), None)

    item = await wait_until(inbox_item)
    assert item["node_id"] == "review"
    assert item["instructions"] == "Check the amount"
    assert item["payload"] == {"amount": 1200}

    decided = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review",
        json={"decision": "approve", "data": {"amount": 1000}, "reviewer": "ann", "comment": "ok"},
    )
    assert decided.status_code == 202, decided.text
    again = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "reject"}
    )
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "conflict"
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed"
    assert done["final_outputs"] == {"approved": {"amount": 1000}}
    assert done["timing"]["accumulated_human_waiting_ms"] > 0
    assert done["timing"]["active_duration_ms"] == (
        done["timing"]["duration_ms"] - done["timing"]["accumulated_human_waiting_ms"]
    )
    steps = {
        s["node_id"]: s
        for s in (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    }
    assert steps["review"]["review"]["decision"] == "approve"
    assert steps["review"]["review"]["reviewer"] == "ann"


async def test_reject_without_rejected_branch_errors_the_run(api: httpx.AsyncClient) -> None:
    run_id = await start_waiting(api, review_definition())
    decided = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review",
        json={"decision": "reject", "comment": "too high", "reviewer": "bob"},
    )
    assert decided.status_code == 202
    done = await wait_for_run(api, run_id)
    assert done["status"] == "error"
    assert done["error"]["node_id"] == "review"
    assert "too high" in done["error"]["message"]


async def test_reject_follows_rejected_branch(api: httpx.AsyncClient) -> None:
    run_id = await start_waiting(api, review_definition(rejected_branch=True))
    await api.post(f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "reject"})
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed"
    assert done["final_outputs"] == {"bounce": {"bounced": True}}
    steps = {
        s["node_id"]: s["status"]
        for s in (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    }
    assert steps["out"] == "skipped"


async def test_decision_for_a_node_that_is_not_waiting_is_409(api: httpx.AsyncClient) -> None:
    run_id = await start_waiting(api, review_definition())
    response = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/meta", json={"decision": "approve"}
    )
    assert response.status_code == 409


async def test_concurrent_decisions_one_wins(api: httpx.AsyncClient) -> None:
    run_id = await start_waiting(api, review_definition())
    answers = await asyncio.gather(
        *(
            api.post(
                f"/v1/workflows/runs/{run_id}/reviews/review",
                json={"decision": "approve" if i % 2 else "reject", "reviewer": f"r{i}"},
            )
            for i in range(6)
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [409] * 5, [a.text for a in answers]
    winner = next(a for a in answers if a.status_code == 202)
    done = await wait_for_run(api, run_id)
    steps = (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    review = next(s for s in steps if s["node_id"] == "review")["review"]
    assert (
        review["reviewer"] == winner.request.content.decode().split('"reviewer":')[1].split('"')[1]
    )
    assert done["status"] == ("completed" if review["decision"] == "approve" else "error")


async def test_a_run_terminated_from_outside_is_listed_as_error(
    api: httpx.AsyncClient, client: Client
) -> None:
    """An operator terminates a waiting run in the Temporal UI: the workflow never says so,
    yet listings and the reviewers' inbox must agree with what reading the run shows."""
    run_id = await start_waiting(api, review_definition())
    workflow_id = (await api.get(f"/v1/workflows/runs/{run_id}")).json()["workflow"]["workflow_id"]

    async def listed(status: str) -> list[tuple[str, str]]:
        params = {"workflow_id": workflow_id, "status": status}
        page = (await api.get("/v1/workflows/runs", params=params)).json()
        return [(run["id"], run["status"]) for run in page["data"]]

    async def in_inbox() -> bool:
        inbox = (await api.get("/v1/reviews", params={"limit": "200"})).json()["data"]
        return any(item["run_id"] == run_id for item in inbox)

    await wait_until(in_inbox)
    await client.get_workflow_handle(run_id).terminate("operator stopped it")

    assert await wait_until(lambda: listed("error")) == [(run_id, "error")]
    assert await listed("waiting_for_human") == []
    assert not await in_inbox()


async def test_review_data_must_be_a_json_object(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 5}}}
    )
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    for data in ([1, 2], "x", 5, True):
        response = await api.post(
            f"/v1/workflows/runs/{run_id}/reviews/review",
            json={"decision": "approve", "data": data},
        )
        assert response.status_code == 422, (data, response.text)
        error = response.json()["error"]
        assert error["details"]["errors"][0]["loc"][-2:] == ["body", "data"] or "data" in str(
            error["details"]["errors"][0]["loc"]
        )
    # Still waiting: none of them was taken as a decision.
    run = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
    assert run["waiting_for_node_ids"] == ["review"]
    approved = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review",
        json={"decision": "approve", "data": {"amount": 6}},
    )
    assert approved.status_code == 202, approved.text
    done = await wait_for_run(api, run_id)
    assert done["final_outputs"] == {"approved": {"amount": 6}}


async def test_concurrent_replays_of_one_decision_apply_it_once(
    api: httpx.AsyncClient, client: Client
) -> None:
    """Ten identical decisions (one command_id) at once: one 202, nine 200 with the same run,
    and one `review` signal in the run's history. Replays used to send the signal again, and
    once the first decision had ended the run, Temporal's "already completed" came back as a
    404 "No such run"."""
    run_id = await start_waiting(api, review_definition())
    url = f"/v1/workflows/runs/{run_id}/reviews/review"
    body = {"decision": "approve", "reviewer": "ann", "command_id": f"decide-{run_id}"}
    answers = await asyncio.gather(*(api.post(url, json=body) for _ in range(10)))
    assert sorted(a.status_code for a in answers) == [200] * 9 + [202], [
        a.text for a in answers if a.status_code not in (200, 202)
    ]
    assert {a.json()["id"] for a in answers} == {run_id}
    done = await wait_for_run(api, run_id)
    assert done["status"] == "completed"
    late = await api.post(url, json=body)
    assert late.status_code == 200 and late.json()["status"] == "completed"
    history = await client.get_workflow_handle(run_id).fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert signals == ["review"]


async def test_a_replayed_decision_that_lost_the_race_stays_refused(
    api: httpx.AsyncClient,
) -> None:
    """A decision refused because another reviewer's came first was never applied: its replay
    is refused too (409), not answered 200 as if it had been."""
    run_id = await start_waiting(api, review_definition())
    url = f"/v1/workflows/runs/{run_id}/reviews/review"
    bodies = [
        {"decision": "approve", "reviewer": f"r{i}", "command_id": f"race-{i}-{run_id}"}
        for i in range(6)
    ]
    answers = await asyncio.gather(*(api.post(url, json=body) for body in bodies))
    assert sorted(a.status_code for a in answers) == [202] + [409] * 5, [a.text for a in answers]
    await wait_for_run(api, run_id)
    for body, answer in zip(bodies, answers, strict=True):
        replay = await api.post(url, json=body)
        assert replay.status_code == (200 if answer.status_code == 202 else 409), replay.text


async def test_a_decision_meeting_a_run_that_just_ended_is_409(
    api: httpx.AsyncClient, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run was waiting when the decision read it and was cancelled before the signal:
    Temporal's "already completed" is a 409 (the node no longer waits), not a 404 "No such
    run" for a run that exists."""
    run_id = await start_waiting(api, review_definition())
    org = (await api.get(f"/v1/workflows/runs/{run_id}")).json()["organization_id"]
    waiting = await RunReader(client).get(org, run_id)
    assert (await api.post(f"/v1/workflows/runs/{run_id}/cancel")).status_code == 202
    assert (await wait_for_run(api, run_id))["status"] == "cancelled"
    read_stale_once(monkeypatch, run_id, waiting)
    response = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "approve"}
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "review_not_waiting"


async def test_a_decision_too_large_for_temporal_leaves_the_node_waiting(
    api: httpx.AsyncClient,
) -> None:
    """Temporal refuses a signal over its payload limit. That was a 413 speaking of "the run's
    input", and the node's decision slot stayed taken: every later decision was 409 "just
    decided" while the run waited for one forever."""
    run_id = await start_waiting(api, review_definition())
    url = f"/v1/workflows/runs/{run_id}/reviews/review"
    # Random text: large payloads are compressed, so repetitive filler would fit.
    huge = {"decision": "approve", "data": {"scan": secrets.token_urlsafe(3 * 1024 * 1024)}}
    refused = await api.post(url, json=huge)
    assert refused.status_code == 413, refused.text
    error = refused.json()["error"]
    assert error["type"] == "payload_too_large" and error["code"] == "decision_too_large"
    run = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
    assert run["waiting_for_node_ids"] == ["review"]
    decided = await api.post(url, json={"decision": "approve", "data": {"amount": 3}})
    assert decided.status_code == 202, decided.text
    done = await wait_for_run(api, run_id)
    assert done["final_outputs"] == {"approved": {"amount": 3}}
