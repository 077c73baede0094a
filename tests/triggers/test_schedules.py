"""Schedules against the real dev server: Temporal Schedules fire launchers, which start runs
through the run service (API.md "Triggers" -> "Schedules")."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.service import RPCError
from temporalio.worker import Replayer

from runlane import search_attributes
from runlane.converter import data_converter
from tests.api.helpers import (
    create_published,
    linear_definition,
    review_definition,
    wait_for_run,
    wait_until,
)
from tests.conftest import ORG_B_KEY
from triggers.schedule_workflow import ScheduledRunWorkflow

INPUTS = {"json_inputs": {"meta": {"customer_id": "cust_1"}}, "text_inputs": {"note": "hi"}}


@pytest.fixture
async def cleanup(client: Client) -> AsyncIterator[list[str]]:
    """Schedule ids to delete from Temporal after the test, whatever happened: the dev server
    outlives the test, and a schedule would go on firing at a task queue nobody polls."""
    created: list[str] = []
    yield created
    for schedule_id in created:
        try:
            await client.get_schedule_handle(schedule_id).delete()
        except RPCError:
            pass  # deleted by the test itself


async def create_schedule(
    api: httpx.AsyncClient, cleanup: list[str], workflow_id: str, **body: Any
) -> dict[str, Any]:
    response = await api.post(
        f"/v1/workflows/{workflow_id}/schedules", json={"inputs": INPUTS, **body}
    )
    assert response.status_code == 201, response.text
    schedule = response.json()
    cleanup.append(schedule["id"])
    return schedule


async def schedule_runs(api: httpx.AsyncClient, schedule_id: str) -> list[dict[str, Any]]:
    response = await api.get("/v1/workflows/runs", params={"schedule_id": schedule_id})
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["data"]
    return runs


def versioned(definition: dict[str, Any], label: str) -> dict[str, Any]:
    nodes = [
        {**node, "label": label} if node["id"] == "shape" else node for node in definition["nodes"]
    ]
    return {**definition, "nodes": nodes}


async def publish(api: httpx.AsyncClient, workflow_id: str, definition: dict[str, Any]) -> int:
    draft = await api.put(f"/v1/workflows/{workflow_id}/draft", json={"definition": definition})
    assert draft.status_code == 200, draft.text
    published = await api.post(f"/v1/workflows/{workflow_id}/publish")
    assert published.status_code == 201, published.text
    version: int = published.json()["version"]
    return version


async def test_interval_schedule_fires_pauses_triggers_and_deletes(
    api: httpx.AsyncClient, cleanup: list[str]
) -> None:
    workflow_id = await create_published(api, linear_definition())
    schedule = await create_schedule(
        api, cleanup, workflow_id, spec={"interval_s": 1}, note="every second"
    )
    schedule_id = schedule["id"]
    assert schedule_id.startswith("sch_")
    assert schedule["spec"] == {"interval_s": 1}
    assert schedule["inputs"]["json_inputs"] == INPUTS["json_inputs"]
    assert (schedule["overlap"], schedule["paused"], schedule["note"]) == (
        "skip",
        False,
        "every second",
    )
    assert len(schedule["next_run_times"]) == 5

    # It fires: runs of the schedule, listed by ?schedule_id=, each telling what fired it.
    runs = await wait_until(lambda: _at_least(api, schedule_id, 2), timeout=20)
    for run in runs:
        assert run["trigger"]["type"] == "schedule"
        assert run["trigger"]["schedule_id"] == schedule_id
        assert run["trigger"]["scheduled_at"] is not None
        ended = await wait_for_run(api, run["id"])
        assert ended["status"] == "completed", ended
        assert ended["final_outputs"] == {"customer": "cust_1"}
    read = (await api.get(f"/v1/schedules/{schedule_id}")).json()
    assert read["recent_runs"] and {r["run_id"] for r in read["recent_runs"]} & {
        r["id"] for r in runs
    }
    listed = (await api.get(f"/v1/workflows/{workflow_id}/schedules")).json()["data"]
    assert [s["id"] for s in listed] == [schedule_id]

    # Paused: it says so, and fires no more.
    paused = await api.patch(f"/v1/schedules/{schedule_id}", json={"paused": True})
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True
    # (A launcher already due may still start: let it, then count.)
    await asyncio.sleep(1.5)
    count = len(await schedule_runs(api, schedule_id))
    await asyncio.sleep(2.5)  # two intervals and more: the absence of fires takes time to see
    assert len(await schedule_runs(api, schedule_id)) == count

    # Triggered now, even paused: 202 and the run.
    triggered = await api.post(f"/v1/schedules/{schedule_id}/trigger")
    assert triggered.status_code == 202, triggered.text
    run = triggered.json()
    assert run["id"].startswith("run_")
    assert run["trigger"]["type"] == "schedule" and run["trigger"]["schedule_id"] == schedule_id
    assert (await wait_for_run(api, run["id"]))["status"] == "completed"

    # Deleted: 204, then 404; its runs stay.
    deleted = await api.delete(f"/v1/schedules/{schedule_id}")
    assert deleted.status_code == 204, deleted.text
    assert (await api.get(f"/v1/schedules/{schedule_id}")).status_code == 404
    assert (await api.post(f"/v1/schedules/{schedule_id}/trigger")).status_code == 404
    assert (await api.get(f"/v1/workflows/runs/{run['id']}")).status_code == 200
    assert len(await schedule_runs(api, schedule_id)) >= count + 1


async def _at_least(
    api: httpx.AsyncClient, schedule_id: str, n: int
) -> list[dict[str, Any]] | None:
    runs = await schedule_runs(api, schedule_id)
    return runs if len(runs) >= n else None


async def test_a_fire_runs_the_snapshot_published_when_it_fires(
    api: httpx.AsyncClient, client: Client, cleanup: list[str]
) -> None:
    definition = linear_definition()
    workflow_id = await create_published(api, definition)
    schedule = await create_schedule(
        api, cleanup, workflow_id, spec={"cron": ["0 9 * * MON-FRI"], "timezone": "Europe/Paris"}
    )
    assert schedule["spec"] == {"cron": ["0 9 * * MON-FRI"], "timezone": "Europe/Paris"}
    # Operators recognise it in Temporal: the same id, the organization and the workflow.
    described = await client.get_schedule_handle(schedule["id"]).describe()
    assert (
        described.typed_search_attributes.get(search_attributes.ORGANIZATION)
        == schedule["organization_id"]
    )
    assert (await described.memo())["workflow_id"] == workflow_id
    assert described.schedule.spec.time_zone_name == "Europe/Paris"
    assert await publish(api, workflow_id, versioned(definition, "Shape v2")) == 2

    triggered = await api.post(f"/v1/schedules/{schedule['id']}/trigger")
    assert triggered.status_code == 202, triggered.text
    assert triggered.json()["workflow"]["version"] == 2


async def test_a_fire_that_cannot_start_a_run_shows_on_the_schedule(
    api: httpx.AsyncClient, cleanup: list[str]
) -> None:
    definition = linear_definition()
    workflow_id = await create_published(api, definition)
    schedule = await create_schedule(api, cleanup, workflow_id, spec={"interval_s": 3600})
    # v2's `meta` requires an amount: the schedule's JSON input no longer fits.
    nodes = [
        {**n, "config": {"schema": {"type": "object", "required": ["amount"]}}}
        if n["id"] == "meta"
        else n
        for n in definition["nodes"]
    ]
    await publish(api, workflow_id, {**definition, "nodes": nodes})

    # Triggered: the same error a run start would answer.
    triggered = await api.post(f"/v1/schedules/{schedule['id']}/trigger")
    assert triggered.status_code == 422, triggered.text
    assert triggered.json()["error"]["code"] == "invalid_inputs"
    assert "amount" in triggered.json()["error"]["message"]

    # And the schedule's read shows the failed fire.
    async def failed_fire() -> dict[str, Any] | None:
        read = (await api.get(f"/v1/schedules/{schedule['id']}")).json()
        failed = [r for r in read["recent_runs"] if r["run_id"] is None]
        return failed[0] if failed else None

    fire = await wait_until(failed_fire)
    assert fire["status"] == "error"
    assert fire["error"]["code"] == "invalid_inputs"
    assert "amount" in fire["error"]["message"]
    assert fire["scheduled_at"] is not None
    assert await schedule_runs(api, schedule["id"]) == []


async def test_refused_schedules_name_the_problem_and_store_nothing(
    api: httpx.AsyncClient, cleanup: list[str]
) -> None:
    definition = linear_definition()
    definition["nodes"][0]["config"] = {
        "schema": {"type": "object", "required": ["customer_id", "amount"]}
    }
    workflow_id = await create_published(api, definition)
    url = f"/v1/workflows/{workflow_id}/schedules"
    good_inputs = {
        "json_inputs": {"meta": {"customer_id": "c", "amount": 1}},
        "text_inputs": {"note": "x"},
    }

    async def refused(body: dict[str, Any], status: int, code: str, where: str) -> None:
        response = await api.post(url, json={"inputs": good_inputs, **body})
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code, error
        assert where in response.text, response.text

    await refused({"spec": {"cron": ["every day"]}}, 422, "invalid_schedule_spec", "cron")
    # Five fields, but Temporal's parser refuses it (mapped, not a 502).
    await refused({"spec": {"cron": ["61 * * * *"]}}, 422, "invalid_schedule_spec", "Minute")
    await refused(
        {"spec": {"interval_s": 60, "timezone": "Mars/Olympus"}},
        422,
        "invalid_schedule_spec",
        "timezone",
    )
    await refused({"spec": {}}, 422, "invalid_schedule_spec", "interval_s")
    await refused({"spec": {"interval_s": 0}}, 422, "validation_failed", "interval_s")
    await refused(
        {
            "spec": {
                "interval_s": 60,
                "start_at": "2030-01-02T00:00:00Z",
                "end_at": "2030-01-01T00:00:00Z",
            }
        },
        422,
        "invalid_schedule_spec",
        "end_at",
    )
    await refused(
        {"spec": {"interval_s": 60}, "overlap": "sometimes"}, 422, "validation_failed", "overlap"
    )
    await refused(
        {"spec": {"interval_s": 60}, "colour": "blue"}, 422, "validation_failed", "colour"
    )
    # Inputs are checked as a run start checks them.
    await refused(
        {
            "spec": {"interval_s": 60},
            "inputs": {"json_inputs": {"meta": {"customer_id": "c"}}, "text_inputs": {"note": "x"}},
        },
        422,
        "invalid_inputs",
        "amount",
    )
    await refused(
        {"spec": {"interval_s": 60}, "inputs": {"json_inputs": good_inputs["json_inputs"]}},
        422,
        "invalid_inputs",
        "note",
    )
    # No workflow, or nothing published: as a run start answers.
    response = await api.post("/v1/workflows/wf_0000/schedules", json={"spec": {"interval_s": 60}})
    assert response.status_code == 404, response.text
    draft_only = (
        await api.post("/v1/workflows", json={"name": "d", "definition": linear_definition()})
    ).json()["id"]
    response = await api.post(
        f"/v1/workflows/{draft_only}/schedules", json={"spec": {"interval_s": 60}, "inputs": INPUTS}
    )
    assert (
        response.status_code == 409 and response.json()["error"]["code"] == "workflow_not_published"
    )
    assert (await api.get("/v1/schedules")).json()["data"] == []

    # A good one; a PATCH that would break it is refused and changes nothing.
    schedule = await create_schedule(
        api, cleanup, workflow_id, spec={"interval_s": 3600}, inputs=good_inputs
    )
    patched = await api.patch(
        f"/v1/schedules/{schedule['id']}", json={"spec": {"cron": ["0 25 * * *"]}}
    )
    assert patched.status_code == 422, patched.text
    patched = await api.patch(
        f"/v1/schedules/{schedule['id']}", json={"inputs": {"json_inputs": {"meta": {}}}}
    )
    assert patched.status_code == 422 and patched.json()["error"]["code"] == "invalid_inputs"
    read = (await api.get(f"/v1/schedules/{schedule['id']}")).json()
    assert (
        read["spec"] == {"interval_s": 3600}
        and read["inputs"]["json_inputs"] == good_inputs["json_inputs"]
    )

    # A good PATCH: the new spec and note show, Temporal's next times follow the new spec.
    patched = await api.patch(
        f"/v1/schedules/{schedule['id']}",
        json={
            "spec": {"cron": ["0 9 * * *"], "timezone": "Europe/Paris"},
            "note": "mornings",
            "overlap": "buffer_one",
        },
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["spec"] == {"cron": ["0 9 * * *"], "timezone": "Europe/Paris"}
    assert (body["note"], body["overlap"]) == ("mornings", "buffer_one")
    assert all(t.endswith(("07:00:00Z", "08:00:00Z")) for t in body["next_run_times"]), body

    # Another organization sees none of it.
    other = {"Api-Key": ORG_B_KEY}
    for method, path in (
        ("GET", f"/v1/schedules/{schedule['id']}"),
        ("PATCH", f"/v1/schedules/{schedule['id']}"),
        ("POST", f"/v1/schedules/{schedule['id']}/trigger"),
        ("POST", f"/v1/schedules/{schedule['id']}/backfill"),
        ("DELETE", f"/v1/schedules/{schedule['id']}"),
        ("GET", f"/v1/workflows/{workflow_id}/schedules"),
    ):
        body_json = (
            {"start_at": "2020-01-01T00:00:00Z", "end_at": "2020-01-02T00:00:00Z"}
            if path.endswith("backfill")
            else {}
        )
        response = await api.request(method, path, headers=other, json=body_json)
        assert response.status_code == 404, (method, path, response.text)
    assert (await api.get("/v1/schedules", headers=other)).json()["data"] == []
    assert (await api.get(f"/v1/schedules/{schedule['id']}")).status_code == 200
    for unknown in ("sch_nope", "sch_" + "0" * 32, "%ED%A0%80"):
        assert (await api.get(f"/v1/schedules/{unknown}")).status_code == 404


async def test_backfill_starts_a_run_per_missed_time(
    api: httpx.AsyncClient, cleanup: list[str]
) -> None:
    workflow_id = await create_published(api, linear_definition())
    schedule = await create_schedule(api, cleanup, workflow_id, spec={"interval_s": 1}, paused=True)
    assert schedule["paused"] is True
    now = datetime.now(UTC).replace(microsecond=500_000)
    start, end = now - timedelta(seconds=30), now - timedelta(seconds=25)
    url = f"/v1/schedules/{schedule['id']}/backfill"

    refused = await api.post(url, json={"start_at": end.isoformat(), "end_at": start.isoformat()})
    assert refused.status_code == 422 and "end_at" in refused.text
    refused = await api.post(
        url, json={"start_at": start.isoformat(), "end_at": (now + timedelta(hours=1)).isoformat()}
    )
    assert refused.status_code == 422 and "past" in refused.text
    refused = await api.post(
        url, json={"start_at": "2000-01-01T00:00:00Z", "end_at": end.isoformat()}
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "backfill_too_large"

    response = await api.post(url, json={"start_at": start.isoformat(), "end_at": end.isoformat()})
    assert response.status_code == 202, response.text
    assert response.json() == {"scheduled": 5}
    runs = await wait_until(lambda: _at_least(api, schedule["id"], 5))
    assert len(runs) == 5
    times = sorted(datetime.fromisoformat(r["trigger"]["scheduled_at"]) for r in runs)
    assert all(start < t <= end for t in times), times
    assert len(set(times)) == 5


HISTORIES = Path(__file__).parent / "histories"


async def test_launcher_histories_replay(
    api: httpx.AsyncClient, client: Client, cleanup: list[str]
) -> None:
    """The launcher's histories replay with today's code: live ones (a fire that ran its run,
    one that could not start it) and the recorded ones under histories/ (in-flight launchers
    of earlier versions). RUNLANE_RECORD_HISTORIES=1 writes the live ones there."""
    definition = linear_definition()
    workflow_id = await create_published(api, definition)
    schedule = await create_schedule(api, cleanup, workflow_id, spec={"interval_s": 3600})
    run = (await api.post(f"/v1/schedules/{schedule['id']}/trigger")).json()
    await wait_for_run(api, run["id"])
    nodes = [
        {**n, "config": {"schema": {"type": "object", "required": ["amount"]}}}
        if n["id"] == "meta"
        else n
        for n in definition["nodes"]
    ]
    await publish(api, workflow_id, {**definition, "nodes": nodes})
    assert (await api.post(f"/v1/schedules/{schedule['id']}/trigger")).status_code == 422

    async def launchers() -> list[Any] | None:
        query = f"WorkflowType = 'ScheduledRunWorkflow' AND RunlaneScheduleId = '{schedule['id']}'"
        closed = [e async for e in client.list_workflows(query) if e.close_time is not None]
        return closed if len(closed) == 2 else None

    replayer = Replayer(workflows=[ScheduledRunWorkflow], data_converter=data_converter())
    live = {}
    for execution in await wait_until(launchers):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        status = "failed" if execution.status == WorkflowExecutionStatus.FAILED else "completed"
        live[f"scheduled_run_{status}"] = await handle.fetch_history()
    assert set(live) == {"scheduled_run_completed", "scheduled_run_failed"}
    if os.environ.get("RUNLANE_RECORD_HISTORIES"):
        HISTORIES.mkdir(exist_ok=True)
        for name, history in live.items():
            (HISTORIES / f"{name}.json").write_text(history.to_json())
    recorded = [
        WorkflowHistory.from_json(path.stem, path.read_text())
        for path in sorted(HISTORIES.glob("*.json"))
    ]
    assert len(recorded) >= 2
    for history in [*live.values(), *recorded]:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
        assert result.replay_failure is None


HOSTILE_BODIES: list[Any] = [
    None,
    [],
    "spec",
    {"spec": None},
    {"spec": []},
    {"spec": {"interval_s": "60"}},
    {"spec": {"interval_s": True}},
    {"spec": {"interval_s": 10**40}},
    {"spec": {"interval_s": 60, "jitter_s": -1}},
    {"spec": {"cron": ["* * * * *"] * 21}},
    {"spec": {"cron": ["x" * 201]}},
    {"spec": {"cron": ["0 9 * * *\u0000"]}},
    {"spec": {"cron": "0 9 * * *"}},
    {"spec": {"cron": ["@every 0s"]}},
    {"spec": {"cron": ["0 0 31 2 *"], "timezone": "../../etc/passwd"}},
    {"spec": {"interval_s": 60, "timezone": "\ud800"}},
    {"spec": {"interval_s": 60, "start_at": "0001-01-01T00:00:00+01:00"}},
    {"spec": {"interval_s": 60, "end_at": "9999-12-31T23:59:59-01:00"}},
    {"spec": {"interval_s": 60, "start_at": "2030-01-01"}},
    {"spec": {"interval_s": 60, "start_at": 1700000000}},
    {"spec": {"interval_s": 60}, "note": "\ud800"},
    {"spec": {"interval_s": 60}, "note": "n" * 2001},
    {"spec": {"interval_s": 60}, "inputs": {"documents": {"doc": {"content": "eA=="}}}},
    {"spec": {"interval_s": 60}, "inputs": {"documents": {"doc": {"file_id": "file_nope"}}}},
    {"spec": {"interval_s": 60}, "inputs": {"json_inputs": {"meta": 1e999}}},
    {"spec": {"interval_s": 60}, "inputs": {"json_inputs": {"ghost": {}}}},
    {"spec": {"interval_s": 60}, "inputs": {"text_inputs": {"note": 5}}},
    {"spec": {"interval_s": 60}, "inputs": {"text_inputs": {"note": "x" * (5 * 1024 * 1024)}}},
    {"spec": {"interval_s": 60}, "config_source": "tomorrow"},
    {"spec": {"interval_s": 60}, "paused": "yes"},
]


async def test_hostile_bodies_get_a_4xx_and_change_nothing(
    api: httpx.AsyncClient, cleanup: list[str]
) -> None:
    workflow_id = await create_published(api, linear_definition())
    schedule = await create_schedule(api, cleanup, workflow_id, spec={"interval_s": 3600})
    before = (await api.get(f"/v1/schedules/{schedule['id']}")).json()
    for body in HOSTILE_BODIES:
        for method, path in (
            ("POST", f"/v1/workflows/{workflow_id}/schedules"),
            ("PATCH", f"/v1/schedules/{schedule['id']}"),
        ):
            if method == "PATCH" and body == {"spec": None}:
                continue  # (null leaves the spec as it is: a valid PATCH)
            patch_body = body
            if (
                method == "PATCH"
                and isinstance(body, dict)
                and body.get("spec") == {"interval_s": 60}
            ):
                patch_body = {k: v for k, v in body.items() if k != "spec"}
            # (json.dumps escapes lone surrogates, which httpx's encoder refuses)
            response = await api.request(
                method,
                path,
                content=json.dumps(patch_body),
                headers={"Content-Type": "application/json"},
            )
            assert 400 <= response.status_code < 500, (method, body, response.text)
            assert response.json()["error"]["message"], response.text
    for raw in (b"\xff\xfe{", b'{"spec": {"interval_s": 60}', b"[" * 100_000):
        response = await api.post(
            f"/v1/workflows/{workflow_id}/schedules",
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
    for body in (
        {"start_at": "0001-01-01T00:00:00+01:00", "end_at": "2020-01-01T00:00:00Z"},
        {"start_at": "2020-01-01T00:00:00Z"},
        {"start_at": "2020-01-01T00:00:00Z", "end_at": "2020-01-01T00:00:00Z"},
        {"start_at": "2020-01-01", "end_at": "2020-01-02"},
    ):
        response = await api.post(f"/v1/schedules/{schedule['id']}/backfill", json=body)
        assert response.status_code == 422, (body, response.text)
    listed = (await api.get("/v1/schedules")).json()["data"]
    assert [s["id"] for s in listed] == [schedule["id"]]
    after = (await api.get(f"/v1/schedules/{schedule['id']}")).json()
    for field in ("spec", "inputs", "note", "overlap", "paused", "config_source"):
        assert after[field] == before[field], field
    for cursor in ("x", "%ED%A0%80", "%FF", "W10", "a" * 2000):
        response = await api.get(f"/v1/schedules?cursor={cursor}")
        assert response.status_code == 422, response.text


async def test_the_overlap_policy_applies_to_runs(
    api: httpx.AsyncClient, cleanup: list[str]
) -> None:
    """Each launcher lasts as long as its run: `skip` starts no second run while the first
    waits for a review (a trigger still does), `cancel_other` cancels the waiting run."""
    workflow_id = await create_published(api, review_definition())
    inputs = {"json_inputs": {"meta": {"amount": 5}}}
    skipping = await create_schedule(
        api, cleanup, workflow_id, spec={"interval_s": 1}, inputs=inputs, overlap="skip"
    )
    first = (await wait_until(lambda: _at_least(api, skipping["id"], 1)))[-1]
    await wait_for_run(api, first["id"], until={"waiting_for_human"})
    await asyncio.sleep(2.5)  # two more due times: both skipped
    assert [r["id"] for r in await schedule_runs(api, skipping["id"])] == [first["id"]]
    triggered = await api.post(f"/v1/schedules/{skipping['id']}/trigger")
    assert triggered.status_code == 202, triggered.text
    assert triggered.json()["id"] != first["id"]
    assert (await api.delete(f"/v1/schedules/{skipping['id']}")).status_code == 204

    cancelling = await create_schedule(
        api, cleanup, workflow_id, spec={"interval_s": 1}, inputs=inputs, overlap="cancel_other"
    )
    first = (await wait_until(lambda: _at_least(api, cancelling["id"], 1)))[-1]  # the oldest
    ended = await wait_for_run(api, first["id"], until={"cancelled"})
    assert ended["status"] == "cancelled"
    assert len(await wait_until(lambda: _at_least(api, cancelling["id"], 2))) >= 2
