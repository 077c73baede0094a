"""A map with RUNLANE_PAYLOAD_KEY set: the child workflow's input, its failure's details and
the previous child read back by a retry are all encrypted payloads, bound to the right run."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.api.helpers import TERMINAL, create_published, wait_for_run, wait_until
from tests.conftest import ORG_A_KEY, ORG_B_KEY
from tests.peer import Peer


async def test_an_encrypted_map_fails_and_a_retry_reuses_completed_items(
    api: httpx.AsyncClient, peer: Peer, client: Client, app: FastAPI
) -> None:
    peer.fail("/e/1", 1, status=400)
    node = {
        "type": "http_request",
        "config": {"method": "POST", "url": f"{peer.url}/e/{{{{$index}}}}"},
        "retry": {"max_attempts": 1},
    }
    definition = {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {
                "id": "fan",
                "type": "map",
                "config": {"items": "{{in.values}}", "node": node, "concurrency": 1},
            },
            {"id": "out", "type": "end", "config": {"outputs": "{{fan.errors}}"}},
        ],
        "edges": [{"source": "in", "target": "fan"}, {"source": "fan", "target": "out"}],
    }
    workflow_id = await create_published(api, definition)
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"in": {"values": [1, 2, 3]}}}
    )
    run_id = started.json()["id"]
    run = await wait_for_run(api, run_id)
    assert run["status"] == "error" and run["error"]["node_id"] == "fan", run
    assert (await api.post(f"/v1/workflows/runs/{run_id}/retry")).status_code == 202

    async def retried() -> bool:
        run = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
        return bool(run["attempt"] == 2 and run["status"] in TERMINAL)

    await wait_until(retried, timeout=60)
    run = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
    assert run["status"] == "completed", run
    assert [peer.count(f"/e/{i}") for i in range(3)] == [1, 2, 1]
    items = (await api.get(f"/v1/workflows/runs/{run_id}/steps/fan/items")).json()["data"]
    assert [i["attempt"] for i in items] == [1, 2, 2]

    # The map child's payloads belong to the run: its organization reads them through the
    # codec endpoint (the Temporal UI), another organization does not.
    parent = client.get_workflow_handle(run_id)
    [child_id] = {
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        async for event in parent.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    }
    child = await client.get_workflow_handle(child_id).fetch_history()
    [child_input] = child.events[0].workflow_execution_started_event_attributes.input.payloads
    assert child_input.metadata["runlane-workflow-id"] == child_id.encode()
    content = json_format.MessageToJson(Payloads(payloads=[child_input]))
    for key, status in ((ORG_A_KEY, 200), (ORG_B_KEY, 403)):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://runlane.test",
            headers={"Authorization": f"Bearer {key}"},
        ) as http:
            decoded = await http.post("/codec/decode", content=content)
            assert decoded.status_code == status, decoded.text
