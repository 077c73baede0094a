"""`map` nodes (issue #14, point 1): an inline node per item of a rendered list, in a child
workflow that continues as new every few items; results in item order, errors, progress, the
paged items endpoint, cancel, and a retry that runs only the items that did not complete."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from runlane.settings import Settings
from tests.api.helpers import TERMINAL, create_published, wait_for_run, wait_until
from tests.peer import Peer

# Small, so that a few hundred items continue as new a dozen times.
ITEMS_PER_EXECUTION = 25


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"map_items_per_execution": ITEMS_PER_EXECUTION})


def _definition(map_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {"id": "fan", "type": "map", "label": "Fan out", "config": map_config},
            {"id": "out", "type": "end", "config": {"outputs": "{{fan}}"}},
        ],
        "edges": [{"source": "in", "target": "fan"}, {"source": "fan", "target": "out"}],
    }


def _http_item(url: str, **config: Any) -> dict[str, Any]:
    return {
        "items": "{{in.values}}",
        "node": {
            "type": "http_request",
            "config": {"method": "POST", "url": url, "body": {"value": "{{$item}}"}},
            "retry": {"max_attempts": 1},
        },
        **config,
    }


async def _start(api: httpx.AsyncClient, definition: dict[str, Any], values: list[Any]) -> str:
    workflow_id = await create_published(api, definition)
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"in": {"values": values}}}
    )
    assert started.status_code == 202, started.text
    return str(started.json()["id"])


async def _wait_retried(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run once its second attempt ended."""

    async def ended() -> dict[str, Any] | None:
        run = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
        return run if run["attempt"] == 2 and run["status"] in TERMINAL else None

    return dict(await wait_until(ended, timeout=60))


async def _step(api: httpx.AsyncClient, run_id: str, node_id: str = "fan") -> dict[str, Any]:
    response = await api.get(f"/v1/workflows/runs/{run_id}/steps/{node_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _all_items(api: httpx.AsyncClient, run_id: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = await api.get(f"/v1/workflows/runs/{run_id}/steps/fan/items", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["data"]) <= limit
        items += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def test_an_http_map_calls_the_peer_per_item_and_keeps_item_order(
    api: httpx.AsyncClient, peer: Peer, client: Client
) -> None:
    values = ["a", "b", "c", "d", "e"]
    definition = _definition(_http_item(f"{peer.url}/item/{{{{$index}}}}", concurrency=2))
    run_id = await _start(api, definition, values)
    run = await wait_for_run(api, run_id)
    assert run["status"] == "completed", run
    outputs = run["final_outputs"]
    assert [item["body"]["received"]["value"] for item in outputs["items"]] == values
    assert [item["body"]["path"] for item in outputs["items"]] == [f"/item/{i}" for i in range(5)]
    assert outputs["errors"] == []
    # Each item's activity reads only what its node's config references, not the item list.
    parent = client.get_workflow_handle(run_id)
    [child_id] = [
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        async for event in parent.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    child = client.get_workflow_handle(child_id)
    [first_input] = [
        event.activity_task_scheduled_event_attributes.input.payloads[0]
        async for event in child.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ][:1]
    assert json.loads(first_input.data)["outputs"] == {}
    for index in range(5):
        [call] = peer.calls_to(f"/item/{index}")
        assert call.headers["Idempotency-Key"] == f"{run_id}:fan[{index}]"
    step = await _step(api, run_id)
    assert step["status"] == "completed"
    assert step["progress"] == {"total": 5, "completed": 5, "failed": 0, "running": 0}
    items = await _all_items(api, run_id, limit=2)
    assert [(i["index"], i["status"], i["attempt"]) for i in items] == [
        (i, "completed", 1) for i in range(5)
    ]
    assert items[3]["output"]["body"]["received"] == {"value": "d"}


async def test_an_http_map_longer_than_one_execution_continues_as_new(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    """60 items at 25 per execution: three executions of the child, each item called once."""
    count = 60
    definition = _definition(_http_item(f"{peer.url}/many/{{{{$index}}}}", concurrency=10))
    run_id = await _start(api, definition, list(range(count)))
    run = await wait_for_run(api, run_id, timeout=60)
    assert run["status"] == "completed", run
    received = [item["body"]["received"]["value"] for item in run["final_outputs"]["items"]]
    assert received == list(range(count))
    assert [peer.count(f"/many/{i}") for i in range(count)] == [1] * count


async def test_continue_records_item_errors_and_nulls(api: httpx.AsyncClient, peer: Peer) -> None:
    peer.fail("/item/2", 1, status=400)
    definition = _definition(
        _http_item(f"{peer.url}/item/{{{{$index}}}}", on_item_error="continue")
    )
    run_id = await _start(api, definition, [10, 11, 12, 13, 14])
    run = await wait_for_run(api, run_id)
    assert run["status"] == "completed", run
    outputs = run["final_outputs"]
    assert outputs["items"][2] is None
    assert [
        item["body"]["received"]["value"] for i, item in enumerate(outputs["items"]) if i != 2
    ] == [
        10,
        11,
        13,
        14,
    ]
    [error] = outputs["errors"]
    assert error["index"] == 2 and error["type"] == "HttpStatusError"
    assert "400" in error["message"]
    step = await _step(api, run_id)
    assert step["progress"] == {"total": 5, "completed": 4, "failed": 1, "running": 0}
    items = await _all_items(api, run_id, limit=2)
    assert [i["status"] for i in items] == [
        "completed",
        "completed",
        "error",
        "completed",
        "completed",
    ]
    assert items[2]["error"]["type"] == "HttpStatusError" and items[2]["output"] is None


async def test_fail_mode_fails_the_node_and_a_retry_runs_only_the_items_not_completed(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    """Item 1 fails for good: no further item starts, the run ends in error at the map. A retry
    calls the peer again for item 1 and for the items never started, never for item 0."""
    peer.fail("/item/1", 1, status=400)
    definition = _definition(_http_item(f"{peer.url}/item/{{{{$index}}}}", concurrency=1))
    run_id = await _start(api, definition, ["a", "b", "c", "d"])
    run = await wait_for_run(api, run_id)
    assert run["status"] == "error", run
    assert run["error"]["node_id"] == "fan"
    assert run["error"]["type"] == "HttpStatusError"
    assert run["error"]["message"].startswith("item 1:")
    assert [peer.count(f"/item/{i}") for i in range(4)] == [1, 1, 0, 0]
    step = await _step(api, run_id)
    assert step["status"] == "error"
    assert step["progress"] == {"total": 4, "completed": 1, "failed": 1, "running": 0}
    items = await _all_items(api, run_id, limit=50)
    assert [i["status"] for i in items] == ["completed", "error", "pending", "pending"]

    plan = (await api.get(f"/v1/workflows/runs/{run_id}/retry-plan")).json()
    assert plan["allowed"] and "fan" in plan["rerun"] and "in" in plan["reuse"], plan
    assert plan["repeated_side_effects"] == ["fan"], plan  # items of http_request run again
    retried = await api.post(f"/v1/workflows/runs/{run_id}/retry")
    assert retried.status_code == 202, retried.text
    run = await _wait_retried(api, run_id)
    assert run["status"] == "completed", run
    assert [peer.count(f"/item/{i}") for i in range(4)] == [1, 2, 1, 1]
    assert [item["body"]["received"]["value"] for item in run["final_outputs"]["items"]] == [
        "a",
        "b",
        "c",
        "d",
    ]
    items = await _all_items(api, run_id, limit=3)
    assert [(i["status"], i["attempt"]) for i in items] == [
        ("completed", 1),
        ("completed", 2),
        ("completed", 2),
        ("completed", 2),
    ]


@pytest.fixture
async def slow_server() -> AsyncIterator[str]:
    """Answers every request `200 {}` after a second."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        await asyncio.sleep(1.0)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n"
            b'connection: close\r\n\r\n{"slow": 1}'
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.close()


async def test_fail_mode_lets_running_items_settle_and_starts_no_more(
    api: httpx.AsyncClient, peer: Peer, slow_server: str
) -> None:
    """Item 1 fails at once while item 0 takes a second: the node fails only once item 0
    completed (its output kept), and items 2 and 3 never start."""
    peer.fail("/f/1", 1, status=400)
    urls = [f"{slow_server}/f/0", f"{peer.url}/f/1", f"{peer.url}/f/2", f"{peer.url}/f/3"]
    config = _http_item("{{$item.url}}", concurrency=2)
    run_id = await _start(api, _definition(config), [{"url": url} for url in urls])
    run = await wait_for_run(api, run_id)
    assert run["status"] == "error" and run["error"]["node_id"] == "fan", run
    assert [peer.count(f"/f/{i}") for i in (1, 2, 3)] == [1, 0, 0]
    items = await _all_items(api, run_id, limit=50)
    assert [i["status"] for i in items] == ["completed", "error", "pending", "pending"]
    assert items[0]["output"]["body"] == {"slow": 1}
    step = await _step(api, run_id)
    assert step["output"]["items"][0]["body"] == {"slow": 1}
    assert step["output"]["errors"][0]["index"] == 1


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers: requests to it run until cancelled."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_cancelling_the_run_cancels_running_items(
    api: httpx.AsyncClient, silent_server: str
) -> None:
    definition = _definition(_http_item(f"{silent_server}/slow/{{{{$index}}}}", concurrency=2))
    run_id = await _start(api, definition, [1, 2, 3, 4])

    async def two_running() -> bool:
        step = await _step(api, run_id)
        return bool(step["progress"] and step["progress"]["running"] == 2)

    await wait_until(two_running, timeout=30)
    cancelled = await api.post(f"/v1/workflows/runs/{run_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    run = await wait_for_run(api, run_id)
    assert run["status"] == "cancelled", run
    step = await _step(api, run_id)
    assert step["status"] == "cancelled"
    items = await _all_items(api, run_id, limit=50)
    assert [i["status"] for i in items] == ["cancelled", "cancelled", "pending", "pending"]


async def test_a_retry_of_a_cancelled_map_keeps_the_items_completed_before_the_cancel(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    """Items 0 and 1 completed, item 2 hung on a server that never answers when the run was
    cancelled: the retry calls the peer for item 3 only (item 2's server is gone by then, so
    it fails and is recorded, on_item_error "continue")."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(accept, "127.0.0.1", 0)
    host, port = silent.sockets[0].getsockname()[:2]
    urls = [f"{peer.url}/c/0", f"{peer.url}/c/1", f"http://{host}:{port}/c/2", f"{peer.url}/c/3"]
    config = _http_item("{{$item.url}}", concurrency=1, on_item_error="continue")
    run_id = await _start(api, _definition(config), [{"url": url} for url in urls])

    async def third_running() -> bool:
        progress = (await _step(api, run_id))["progress"]
        return bool(progress and progress["completed"] == 2 and progress["running"] == 1)

    await wait_until(third_running, timeout=30)
    assert (await api.post(f"/v1/workflows/runs/{run_id}/cancel")).status_code == 202
    run = await wait_for_run(api, run_id)
    assert run["status"] == "cancelled", run
    for writer in held:
        writer.close()
    silent.close()
    await silent.wait_closed()

    retried = await api.post(f"/v1/workflows/runs/{run_id}/retry")
    assert retried.status_code == 202, retried.text
    run = await _wait_retried(api, run_id)
    assert run["status"] == "completed", run
    assert [peer.count(f"/c/{i}") for i in (0, 1, 3)] == [1, 1, 1]
    items = await _all_items(api, run_id, limit=50)
    assert [(i["status"], i["attempt"]) for i in items] == [
        ("completed", 1),
        ("completed", 1),
        ("error", 2),
        ("completed", 2),
    ]
    assert [e["index"] for e in run["final_outputs"]["errors"]] == [2]


async def test_hundreds_of_pure_items_continue_as_new_and_complete_in_order(
    api: httpx.AsyncClient, client: Client
) -> None:
    count = 300
    definition = _definition(
        {
            "items": "{{in.values}}",
            "node": {
                "type": "transform",
                "config": {
                    "output": {"n": "{{$item.n}}", "at": "{{$index}}", "tag": "#{{$index}}"}
                },
            },
        }
    )
    run_id = await _start(api, definition, [{"n": i * 2} for i in range(count)])
    run = await wait_for_run(api, run_id, timeout=120)
    assert run["status"] == "completed", run
    items = run["final_outputs"]["items"]
    assert items == [{"n": i * 2, "at": i, "tag": f"#{i}"} for i in range(count)]
    step = await _step(api, run_id)
    assert step["progress"] == {"total": count, "completed": count, "failed": 0, "running": 0}
    paged = await _all_items(api, run_id, limit=200)
    assert [i["index"] for i in paged] == list(range(count))
    assert all(i["status"] == "completed" for i in paged)

    # The child continued as new (one execution per 25 items): each history stays small.
    parent = client.get_workflow_handle(run_id)
    child_ids = [
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        async for event in parent.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    [child_id] = child_ids
    events = [event async for event in client.get_workflow_handle(child_id).fetch_history_events()]
    started = events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id, "the last execution continued an earlier one"
    assert len(events) < 40, len(events)


async def test_map_definitions_are_validated(api: httpx.AsyncClient) -> None:
    async def problems(map_config: dict[str, Any]) -> list[str]:
        response = await api.post(
            "/v1/workflows/validate", json={"definition": _definition(map_config)}
        )
        assert response.status_code == 200, response.text
        return [p["message"] for p in response.json()["errors"]]

    node = {"type": "transform", "config": {"output": "{{$item}}"}}
    assert await problems({"items": "{{in.values}}", "node": node}) == []
    assert await problems({"items": "{{in.values}}", "node": node, "concurrency": 1001})
    assert await problems({"items": "{{$item}}", "node": node})
    unknown = await problems({"items": "{{in.values}}", "node": {"type": "nope"}})
    assert any("unknown node type 'nope'" in p for p in unknown), unknown
    bad = await problems(
        {"items": "{{in.values}}", "node": {"type": "http_request", "config": {"url": "ftp://x"}}}
    )
    assert any(p.startswith("config.node.config.url") for p in bad), bad
    text = await problems({"items": "a {{in.values}}", "node": node})
    assert any("items must be a list" in p for p in text), text
    delay = await problems({"items": [], "node": {"type": "delay", "config": {"seconds": 1}}})
    assert any("cannot run per item" in p for p in delay), delay
    outside = {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {"id": "out", "type": "end", "config": {"outputs": "{{$index}}"}},
        ],
        "edges": [{"source": "in", "target": "out"}],
    }
    response = await api.post("/v1/workflows/validate", json={"definition": outside})
    assert not response.json()["valid"]


async def test_items_of_a_node_that_is_no_map_are_not_found(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    run_id = await _start(api, _definition(_http_item(f"{peer.url}/x")), [1])
    await wait_for_run(api, run_id)
    response = await api.get(f"/v1/workflows/runs/{run_id}/steps/out/items")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "map_not_found"
    response = await api.get(
        f"/v1/workflows/runs/{run_id}/steps/fan/items", params={"cursor": "bogus"}
    )
    assert response.status_code == 422
