"""What operators see in the Temporal UI, and health when Temporal is away."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from activities.models import PureBatchResult
from api.deps import get_temporal_client
from api.main import create_app
from runlane.converter import data_converter
from tests.api.helpers import create_published, linear_definition, wait_for_run
from tests.conftest import TEMPORAL_BIN


def _labelled_chain(peer_url: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "note", "type": "start_text", "label": "Instructions"},
            {
                "id": "shape",
                "type": "transform",
                "label": "Shape it",
                "config": {"output": {"said": "{{note.text}}"}},
            },
            {
                "id": "call",
                "type": "http_request",
                "label": "Notify CRM",
                "config": {"url": f"{peer_url}/crm"},
            },
            {"id": "big", "type": "condition", "label": "Big?", "config": {"expression": "`true`"}},
            {"id": "no", "type": "transform", "label": "Small", "config": {"output": 1}},
            {"id": "out", "type": "end", "label": "Done", "config": {"outputs": "{{shape}}"}},
        ],
        "edges": [
            {"source": "note", "target": "shape"},
            {"source": "shape", "target": "call"},
            {"source": "call", "target": "big"},
            {"source": "big", "target": "out", "branch": "true"},
            {"source": "big", "target": "no", "branch": "false"},
            {"source": "no", "target": "out"},
        ],
    }


def _show(client: Client, run_id: str) -> list[dict[str, Any]]:
    """The run's history as an operator reads it: `temporal workflow show --output json`."""
    shown = subprocess.run(
        [
            str(TEMPORAL_BIN),
            "workflow",
            "show",
            "--address",
            client.service_client.config.target_host,
            "--workflow-id",
            run_id,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(shown.stdout)["events"]


def _payload(payload: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(payload["data"]))


async def test_every_node_is_in_the_event_history_with_its_label_and_outcome(
    api: httpx.AsyncClient, client: Client, peer
) -> None:
    workflow_id = await create_published(api, _labelled_chain(peer.url))
    run_id = (
        await api.post(f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"note": "x"}})
    ).json()["id"]
    assert (await wait_for_run(api, run_id))["status"] == "completed"
    steps = {
        s["node_id"]: s
        for s in (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    }

    events = _show(client, run_id)
    closed = next(e for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED")
    scheduled = [e for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
    # The I/O node: an activity named after its node type, its label as the summary.
    [call] = scheduled
    assert call["activityTaskScheduledEventAttributes"]["activityType"]["name"] == "http_request"
    assert call["activityTaskScheduledEventAttributes"]["activityId"] == "call"
    assert _payload(call["userMetadata"]["summary"]) == "Notify CRM"
    # Every other node's outcome (output or skip) is in the marker of the batch that produced
    # it, with its label, before the run closed; the summary names where the batch started.
    recorded: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["eventType"] != "EVENT_TYPE_MARKER_RECORDED":
            continue
        assert int(event["eventId"]) < int(closed["eventId"])
        summary = _payload(event["userMetadata"]["summary"])
        details = event["markerRecordedEventAttributes"]["details"]
        outcomes = _payload(details["result"]["payloads"][0])["outcomes"]
        assert summary.startswith(f"Evaluate {outcomes[0]['label']}"), summary
        recorded.update((outcome["node_id"], outcome) for outcome in outcomes)
    assert sorted(recorded) == ["big", "no", "note", "out", "shape"]
    for node_id, outcome in recorded.items():
        assert outcome["status"] == steps[node_id]["status"], node_id
        assert outcome["output"] == steps[node_id]["output"], node_id
    assert recorded["no"]["status"] == "skipped"
    assert {o["label"] for o in recorded.values()} == {
        "Instructions",
        "Shape it",
        "Big?",
        "Small",
        "Done",
    }
    assert recorded["shape"]["output"] == {"said": "x"}


@pytest.mark.parametrize("shape", ["with_io", "pure"])
async def test_at_most_one_search_attribute_upsert_per_workflow_task(
    api: httpx.AsyncClient, client: Client, peer, shape: str
) -> None:
    if shape == "pure":  # starts and ends in one workflow task
        definition, body = (
            linear_definition(),
            {
                "json_inputs": {"meta": {"customer_id": "c"}},
                "text_inputs": {"note": "n"},
            },
        )
    else:
        definition, body = _labelled_chain(peer.url), {"text_inputs": {"note": "x"}}
    workflow_id = await create_published(api, definition)
    run_id = (await api.post(f"/v1/workflows/{workflow_id}/run", json=body)).json()["id"]
    assert (await wait_for_run(api, run_id))["status"] == "completed"
    history = await client.get_workflow_handle(run_id).fetch_history()
    per_task = [0]
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            per_task.append(0)
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            per_task[-1] += 1
    assert max(per_task) == 1, per_task


async def test_current_details_and_history_of_a_waiting_run(
    api: httpx.AsyncClient, client: Client
) -> None:
    definition = {
        "nodes": [
            {"id": "meta", "type": "start_json", "label": "Metadata"},
            {
                "id": "review",
                "type": "human_review",
                "label": "Approve payout",
                "config": {"payload": {"amount": "{{meta.amount}}"}},
            },
            {"id": "out", "type": "end", "config": {"outputs": "{{review}}"}},
        ],
        "edges": [{"source": "meta", "target": "review"}, {"source": "review", "target": "out"}],
    }
    workflow_id = await create_published(api, definition)
    run_id = (
        await api.post(
            f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 7}}}
        )
    ).json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    handle = client.get_workflow_handle(run_id)
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    details = metadata.current_details
    assert details.startswith("**waiting_for_human**"), details
    assert "| Approve payout | `review` | human_review | waiting_for_human |" in details
    assert "| Metadata | `meta` | start_json | completed |" in details
    # The payload the reviewer sees is recorded in history, by the batch that prepared it.
    converter = data_converter().payload_converter
    outcomes = [
        outcome
        for event in (await handle.fetch_history()).events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        for outcome in converter.from_payload(
            event.marker_recorded_event_attributes.details["result"].payloads[0],
            PureBatchResult,
        ).outcomes
    ]
    [review] = [o for o in outcomes if o.node_id == "review"]
    assert review.status == "waiting_for_human" and review.output == {"amount": 7}
    decided = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "approve"}
    )
    assert decided.status_code == 202, decided.text
    assert (await wait_for_run(api, run_id))["final_outputs"] == {"amount": 7}


async def test_healthz_reports_unreachable_temporal(settings) -> None:
    dead = await Client.connect("127.0.0.1:1", lazy=True)
    app = create_app()
    app.dependency_overrides[get_temporal_client] = lambda: dead
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        response = await http.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "temporal": "unreachable"}
