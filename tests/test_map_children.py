"""`map` with `workflow_id` (issue #14, point 1): a child run of a published workflow per item,
its `input_node` receiving the item; outputs in item order, each item's `child_run_id`, failed
children as failed items, cancel, and the target checked at publish like a subworkflow's."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Replayer

from runlane.converter import data_converter
from tests.api.helpers import (
    TERMINAL,
    create_published,
    review_definition,
    wait_for_run,
    wait_until,
)
from tests.conftest import ORG_B_KEY
from tests.peer import Peer
from tests.recovery.support import chain
from tests.test_subworkflow import children_of
from workflows.maps import MapWorkflow
from workflows.run_workflow import RunWorkflow


def child_definition(peer: Peer | None = None) -> dict[str, Any]:
    """meta -> [POST the peer at /call/<n>, no retries] -> out {doubled: "<n><n>"}."""
    nodes: list[dict[str, Any]] = [
        {"id": "meta", "type": "start_json", "config": {"schema": {"type": "object"}}}
    ]
    path = ["meta"]
    if peer is not None:
        nodes.append(
            {
                "id": "call",
                "type": "http_request",
                "config": {"method": "POST", "url": f"{peer.url}/call/{{{{meta.n}}}}"},
                "retry": {"max_attempts": 1},
            }
        )
        path.append("call")
    nodes.append(
        {"id": "out", "type": "end", "config": {"outputs": {"doubled": "{{meta.n}}{{meta.n}}"}}}
    )
    return {"nodes": nodes, "edges": chain(*path, "out")}


def map_definition(workflow_id: str, **config: Any) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {
                "id": "fan",
                "type": "map",
                "label": "Per order",
                "config": {"items": "{{in.values}}", "workflow_id": workflow_id, **config},
            },
            {"id": "out", "type": "end", "config": {"outputs": "{{fan}}"}},
        ],
        "edges": chain("in", "fan", "out"),
    }


async def start(api: httpx.AsyncClient, workflow_id: str, values: list[Any]) -> str:
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"in": {"values": values}}}
    )
    assert started.status_code == 202, started.text
    return str(started.json()["id"])


async def items_of(api: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    page = await api.get(f"/v1/workflows/runs/{run_id}/steps/fan/items", params={"limit": 50})
    assert page.status_code == 200, page.text
    data: list[dict[str, Any]] = page.json()["data"]
    return data


async def assert_map_replays(client: Client, run_id: str, *child_run_ids: str) -> None:
    """The run, its map child and the item runs replay with the current code."""
    parent = client.get_workflow_handle(run_id)
    map_ids = [
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        async for event in parent.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    replayer = Replayer(workflows=[RunWorkflow, MapWorkflow], data_converter=data_converter())
    for workflow_id in (run_id, *map_ids, *child_run_ids):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, (workflow_id, result.replay_failure)


async def test_a_child_run_per_item_in_item_order(api: httpx.AsyncClient, client: Client) -> None:
    child_id = await create_published(api, child_definition(), name="child")
    parent_id = await create_published(api, map_definition(child_id, concurrency=2), name="p")
    values = [{"n": 1}, {"n": 2}, {"n": 3}]
    run_id = await start(api, parent_id, values)
    run = await wait_for_run(api, run_id)
    assert run["status"] == "completed", run
    assert run["final_outputs"] == {
        "items": [{"doubled": "11"}, {"doubled": "22"}, {"doubled": "33"}],
        "errors": [],
    }
    items = await items_of(api, run_id)
    assert [(i["index"], i["status"], i["attempt"]) for i in items] == [
        (i, "completed", 1) for i in range(3)
    ]
    child_run_ids = [item["child_run_id"] for item in items]
    assert all(child_run_ids) and len(set(child_run_ids)) == 3
    for item, value in zip(items, values, strict=True):
        child = await wait_for_run(api, item["child_run_id"])
        assert child["status"] == "completed"
        assert child["final_outputs"] == item["output"]
        assert child["trigger"] == {
            "type": "parent",
            "source_run_id": None,
            "parent_run_id": run_id,
        }
        assert child["inputs"]["json_data"] == {"meta": value}
        assert child["workflow"]["workflow_id"] == child_id
    listed = await children_of(api, run_id, 3)
    assert {c["id"] for c in listed} == set(child_run_ids)
    await assert_map_replays(client, run_id, *child_run_ids)


async def test_a_failed_child_is_a_failed_item(api: httpx.AsyncClient, peer: Peer) -> None:
    child_id = await create_published(api, child_definition(peer), name="child")
    definition = map_definition(child_id, input_node="meta", on_item_error="continue")
    parent_id = await create_published(api, definition, name="p")
    peer.fail("/call/2", 1, 400)
    run_id = await start(api, parent_id, [{"n": 1}, {"n": 2}, {"n": 3}])
    run = await wait_for_run(api, run_id)
    assert run["status"] == "completed", run
    outputs = run["final_outputs"]
    assert outputs["items"] == [{"doubled": "11"}, None, {"doubled": "33"}]
    [error] = outputs["errors"]
    items = await items_of(api, run_id)
    assert [i["status"] for i in items] == ["completed", "error", "completed"]
    failed_child = items[1]["child_run_id"]
    child = await wait_for_run(api, failed_child)
    assert child["status"] == "error" and child["error"]["node_id"] == "call"
    assert error["index"] == 1 and error["type"] == child["error"]["type"]
    assert failed_child in error["message"]
    assert items[1]["error"]["type"] == child["error"]["type"]
    assert [peer.count(f"/call/{n}") for n in (1, 2, 3)] == [1, 1, 1]

    # In fail mode (the default) the failed child fails the map node.
    peer.fail("/call/2", 1, 400)
    failing = await create_published(api, map_definition(child_id, concurrency=1), name="f")
    run_id = await start(api, failing, [{"n": 1}, {"n": 2}, {"n": 3}])
    run = await wait_for_run(api, run_id)
    assert run["status"] == "error" and run["error"]["node_id"] == "fan", run
    assert run["error"]["message"].startswith("item 1:")
    assert peer.count("/call/3") == 1  # no item started after the failure


async def test_cancelling_the_run_cancels_the_running_child_runs(
    api: httpx.AsyncClient, client: Client
) -> None:
    child_id = await create_published(api, review_definition(), name="child")
    parent_id = await create_published(api, map_definition(child_id), name="p")
    run_id = await start(api, parent_id, [{"amount": 1}, {"amount": 2}])

    async def both_waiting() -> list[str] | None:
        ids = [item["child_run_id"] for item in await items_of(api, run_id)]
        if not all(ids):
            return None
        for child_run_id in ids:
            child = (await api.get(f"/v1/workflows/runs/{child_run_id}")).json()
            if child.get("status") != "waiting_for_human":
                return None
        return ids

    child_run_ids = await wait_until(both_waiting, timeout=30)
    assert (await api.post(f"/v1/workflows/runs/{run_id}/cancel")).status_code == 202
    assert (await wait_for_run(api, run_id))["status"] == "cancelled"
    for child_run_id in child_run_ids:
        assert (await wait_for_run(api, child_run_id))["status"] == "cancelled"
    await assert_map_replays(client, run_id)


async def test_publish_checks_the_target_and_its_input_node(
    api: httpx.AsyncClient, app: Any
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runlane.test", headers={"Api-Key": ORG_B_KEY}
    ) as other_org:
        foreign = await create_published(other_org, child_definition(), name="foreign")
    child_id = await create_published(api, child_definition(), name="child")
    cases = (
        (map_definition(foreign), "no workflow"),
        (map_definition(child_id, input_node="nope"), "is not a start_json node"),
    )
    for definition, says in cases:
        created = await api.post("/v1/workflows", json={"name": "p", "definition": definition})
        assert created.status_code == 201, created.text
        published = await api.post(f"/v1/workflows/{created.json()['id']}/publish")
        assert published.status_code == 422, published.text
        [problem] = published.json()["error"]["details"]["errors"]
        assert problem["node_id"] == "fan" and says in problem["message"], problem

    response = await api.post(
        "/v1/workflows/validate", json={"definition": map_definition("bogus")}
    )
    assert any("wf_" in p["message"] for p in response.json()["errors"]), response.text


async def wait_retried(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        run = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
        return run if run["attempt"] == 2 and run["status"] in TERMINAL else None

    return dict(await wait_until(ended, timeout=60))


async def test_a_retry_after_a_failed_child_runs_only_the_items_not_completed(
    api: httpx.AsyncClient, peer: Peer, client: Client
) -> None:
    child_id = await create_published(api, child_definition(peer), name="child")
    parent_id = await create_published(api, map_definition(child_id, concurrency=1), name="p")
    peer.fail("/call/2", 1, 400)
    run_id = await start(api, parent_id, [{"n": 1}, {"n": 2}, {"n": 3}])
    run = await wait_for_run(api, run_id)
    assert run["status"] == "error" and run["error"]["node_id"] == "fan", run
    first = await items_of(api, run_id)
    assert [i["status"] for i in first] == ["completed", "error", "pending"]

    plan = (await api.get(f"/v1/workflows/runs/{run_id}/retry-plan")).json()
    assert plan["allowed"] and "fan" in plan["rerun"], plan
    assert plan["repeated_side_effects"] == ["fan"], plan  # items run again as new child runs
    assert (await api.post(f"/v1/workflows/runs/{run_id}/retry")).status_code == 202
    run = await wait_retried(api, run_id)
    assert run["status"] == "completed", run
    assert [peer.count(f"/call/{n}") for n in (1, 2, 3)] == [1, 2, 1]
    assert run["final_outputs"]["items"] == [{"doubled": str(n) * 2} for n in ("1", "2", "3")]
    items = await items_of(api, run_id)
    assert [(i["status"], i["attempt"]) for i in items] == [
        ("completed", 1),
        ("completed", 2),
        ("completed", 2),
    ]
    # Item 0 keeps its child run; item 1 ran again as a new one.
    assert items[0]["child_run_id"] == first[0]["child_run_id"]
    assert items[1]["child_run_id"] not in (None, first[1]["child_run_id"])
    assert len(await children_of(api, run_id, 4)) == 4
    await assert_map_replays(client, run_id)


async def test_a_retry_of_a_cancelled_map_keeps_the_child_runs_completed_before(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    """Item 0's child completed, item 1's hung on a server that never answers when the run was
    cancelled: the retry runs items 1 (its server gone: an error, "continue") and 2 only."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(accept, "127.0.0.1", 0)
    host, port = silent.sockets[0].getsockname()[:2]
    child = child_definition(peer)
    child["nodes"][1]["config"]["url"] = "{{meta.url}}"
    child_id = await create_published(api, child, name="child")
    definition = map_definition(child_id, concurrency=1, on_item_error="continue")
    parent_id = await create_published(api, definition, name="p")
    urls = [f"{peer.url}/c/1", f"http://{host}:{port}/c/2", f"{peer.url}/c/3"]
    values = [{"n": n, "url": url} for n, url in zip((1, 2, 3), urls, strict=True)]
    run_id = await start(api, parent_id, values)

    async def second_running() -> bool:
        items = await items_of(api, run_id)
        return [i["status"] for i in items] == ["completed", "running", "pending"] and bool(
            items[1]["child_run_id"]
        )

    await wait_until(second_running, timeout=30)
    assert (await api.post(f"/v1/workflows/runs/{run_id}/cancel")).status_code == 202
    assert (await wait_for_run(api, run_id))["status"] == "cancelled"
    before = await items_of(api, run_id)
    assert [i["status"] for i in before] == ["completed", "cancelled", "pending"]
    assert (await wait_for_run(api, before[1]["child_run_id"]))["status"] == "cancelled"
    for writer in held:
        writer.close()
    silent.close()
    await silent.wait_closed()

    assert (await api.post(f"/v1/workflows/runs/{run_id}/retry")).status_code == 202
    run = await wait_retried(api, run_id)
    assert run["status"] == "completed", run
    assert [peer.count(f"/c/{n}") for n in (1, 3)] == [1, 1]
    items = await items_of(api, run_id)
    assert [(i["status"], i["attempt"]) for i in items] == [
        ("completed", 1),
        ("error", 2),
        ("completed", 2),
    ]
    assert items[0]["child_run_id"] == before[0]["child_run_id"]
    assert items[0]["output"] == {"doubled": "11"}
    assert [e["index"] for e in run["final_outputs"]["errors"]] == [1]
