"""What operators see in the Temporal UI, and health when Temporal is away."""

from __future__ import annotations

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from api.deps import get_temporal_client
from api.main import create_app
from runlane.converter import data_converter
from tests.api.helpers import create_published, wait_for_run


async def test_activities_are_named_by_node_type_with_the_label_as_summary(
    api: httpx.AsyncClient, client: Client, peer
) -> None:
    definition = {
        "nodes": [
            {"id": "note", "type": "start_text", "label": "Instructions"},
            {
                "id": "shape",
                "type": "transform",
                "label": "Shape it",
                "config": {"output": "{{note.text}}"},
            },
            {
                "id": "call",
                "type": "http_request",
                "label": "Notify CRM",
                "config": {"url": f"{peer.url}/crm"},
            },
            {"id": "out", "type": "end"},
        ],
        "edges": [
            {"source": "note", "target": "shape"},
            {"source": "shape", "target": "call"},
            {"source": "call", "target": "out"},
        ],
    }
    workflow_id = await create_published(api, definition)
    run_id = (
        await api.post(f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"note": "x"}})
    ).json()["id"]
    assert (await wait_for_run(api, run_id))["status"] == "completed"

    history = await client.get_workflow_handle(run_id).fetch_history()
    converter = data_converter().payload_converter
    scheduled = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert [e.activity_task_scheduled_event_attributes.activity_type.name for e in scheduled] == [
        "http_request"
    ]
    assert scheduled[0].activity_task_scheduled_event_attributes.activity_id == "call"
    assert converter.from_payload(scheduled[0].user_metadata.summary, str) == "Notify CRM"
    # Pure nodes run inside the workflow (no event of their own); the UI's current details
    # (the metadata query the UI reads) list every node with its status.
    assert not [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    metadata = await client.get_workflow_handle(run_id).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    details = metadata.current_details
    assert details.startswith("**completed**")
    for row in (
        "| Instructions | `note` | start_text | completed |",
        "| Shape it | `shape` | transform | completed |",
        "| Notify CRM | `call` | http_request | completed |",
    ):
        assert row in details


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
