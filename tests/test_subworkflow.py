"""`subworkflow` nodes: a child run of another published workflow of the same organization."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.client import Client

from tests.api.helpers import (
    assert_replays,
    create_published,
    review_definition,
    wait_for_run,
    wait_until,
)
from tests.conftest import ORG_B_KEY
from tests.peer import Peer
from tests.recovery.support import chain, http_node, wait_for_attempt, wait_for_step


def child_definition(peer: Peer | None = None) -> dict[str, Any]:
    """meta -> [call the peer at /call, no activity retries] -> out."""
    nodes: list[dict[str, Any]] = [
        {"id": "meta", "type": "start_json", "config": {"schema": {"type": "object"}}},
        {"id": "note", "type": "start_text"},
    ]
    if peer is not None:
        nodes.append(http_node(peer.url, "call", body={"n": "{{meta.n}}"}, once=True))
    nodes.append(
        {
            "id": "out",
            "type": "end",
            "config": {"outputs": {"doubled": "{{meta.n}}{{meta.n}}", "note": "{{note.text}}"}},
        }
    )
    edges = (
        [*chain("meta", "call", "out"), {"source": "note", "target": "out"}]
        if peer is not None
        else [{"source": "meta", "target": "out"}, {"source": "note", "target": "out"}]
    )
    return {"nodes": nodes, "edges": edges}


def parent_definition(child_id: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "order", "type": "start_json"},
            {
                "id": "sub",
                "type": "subworkflow",
                "label": "Child",
                "config": {
                    "workflow_id": child_id,
                    "json_inputs": {"meta": {"n": "{{order.n}}"}},
                    "text_inputs": {"note": "from {{$run.id}}"},
                },
            },
            {"id": "out", "type": "end", "config": {"outputs": {"child": "{{sub}}"}}},
        ],
        "edges": chain("order", "sub", "out"),
    }


async def start(api: httpx.AsyncClient, workflow_id: str, **body: Any) -> str:
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json=body)
    assert started.status_code == 202, started.text
    run_id: str = started.json()["id"]
    return run_id


async def step(api: httpx.AsyncClient, run_id: str, node_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/workflows/runs/{run_id}/steps/{node_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def children_of(api: httpx.AsyncClient, run_id: str, expected: int) -> list[dict]:
    async def listed() -> list[dict] | None:
        page = await api.get("/v1/workflows/runs", params={"parent_run_id": run_id})
        assert page.status_code == 200, page.text
        data: list[dict] = page.json()["data"]
        return data if len(data) == expected else None

    found: list[dict] = await wait_until(listed)
    return found


async def test_child_run_completes_and_its_final_outputs_are_the_nodes_output(
    api: httpx.AsyncClient, client: Client
) -> None:
    child_id = await create_published(api, child_definition(), name="child")
    parent_id = await create_published(api, parent_definition(child_id), name="parent")
    run_id = await start(api, parent_id, json_inputs={"order": {"n": 21}})
    run = await wait_for_run(api, run_id)
    assert run["status"] == "completed", run
    sub = await step(api, run_id, "sub")
    child_run_id = sub["child_run_id"]
    expected = {"doubled": "2121", "note": f"from {run_id}"}
    assert sub["output"] == expected
    assert run["final_outputs"] == {"child": expected}

    child = await wait_for_run(api, child_run_id)
    assert child["status"] == "completed"
    assert child["final_outputs"] == expected
    assert child["trigger"] == {"type": "parent", "source_run_id": None, "parent_run_id": run_id}
    assert child["workflow"]["workflow_id"] == child_id and child["workflow"]["version"] == 1
    assert child["inputs"]["json_data"] == {"meta": {"n": 21}}

    [listed] = await children_of(api, run_id, 1)
    assert listed["id"] == child_run_id and listed["trigger"]["type"] == "parent"
    by_trigger = await api.get("/v1/workflows/runs", params={"trigger_type": "parent"})
    assert child_run_id in [r["id"] for r in by_trigger.json()["data"]]
    # Operators see it as a child workflow of the parent in the Temporal UI.
    description = await client.get_workflow_handle(child_run_id).describe()
    assert description.parent_id == run_id
    await assert_replays(client, run_id, child_run_id)


async def test_a_failed_child_fails_the_node_with_the_childs_error(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    child_id = await create_published(api, child_definition(peer), name="child")
    parent_id = await create_published(api, parent_definition(child_id), name="parent")
    peer.fail("/call", 1, 400)
    run_id = await start(api, parent_id, json_inputs={"order": {"n": 1}})
    run = await wait_for_run(api, run_id)
    assert run["status"] == "error", run
    child_run_id = (await step(api, run_id, "sub"))["child_run_id"]
    child = await wait_for_run(api, child_run_id)
    assert child["status"] == "error" and child["error"]["node_id"] == "call"
    error = run["error"]
    assert error["node_id"] == "sub" and error["stage"] == "execution"
    assert error["type"] == child["error"]["type"]
    assert child["error"]["message"] in error["message"]
    assert child_run_id in error["message"]


async def test_bad_child_inputs_fail_the_node_naming_the_problem(api: httpx.AsyncClient) -> None:
    child_id = await create_published(api, child_definition(), name="child")
    definition = parent_definition(child_id)
    definition["nodes"][1]["config"]["json_inputs"] = {"meta": "{{order.n}}"}  # not an object
    parent_id = await create_published(api, definition, name="parent")
    run_id = await start(api, parent_id, json_inputs={"order": {"n": 3}})
    run = await wait_for_run(api, run_id)
    assert run["status"] == "error" and run["error"]["node_id"] == "sub", run["error"]
    assert run["error"]["type"] == "SubworkflowInputError"
    assert "json_inputs.meta" in run["error"]["message"]


async def parent_with_a_child_waiting(api: httpx.AsyncClient) -> tuple[str, str]:
    """A parent run whose child run waits on a review: (parent run id, child run id)."""
    child_id = await create_published(api, review_definition(), name="child")
    definition = parent_definition(child_id)
    definition["nodes"][1]["config"] = {
        "workflow_id": child_id,
        "json_inputs": {"meta": {"amount": "{{order.n}}"}},
    }
    parent_id = await create_published(api, definition, name="parent")
    run_id = await start(api, parent_id, json_inputs={"order": {"n": 5}})

    async def child_waiting() -> str | None:
        child_run_id = (await step(api, run_id, "sub"))["child_run_id"]
        if child_run_id is None:
            return None
        child = (await api.get(f"/v1/workflows/runs/{child_run_id}")).json()
        return child_run_id if child.get("status") == "waiting_for_human" else None

    child_run_id = await wait_until(child_waiting, timeout=30)
    return run_id, child_run_id


async def test_cancelling_the_parent_cancels_the_child(
    api: httpx.AsyncClient, client: Client
) -> None:
    run_id, child_run_id = await parent_with_a_child_waiting(api)
    cancelled = await api.post(f"/v1/workflows/runs/{run_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert (await wait_for_run(api, run_id))["status"] == "cancelled"
    assert (await wait_for_run(api, child_run_id))["status"] == "cancelled"
    assert (await step(api, run_id, "sub"))["status"] == "cancelled"
    await assert_replays(client, run_id)


async def test_publish_refuses_targets_of_another_org_unpublished_or_cyclic(
    api: httpx.AsyncClient, app: Any
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runlane.test", headers={"Api-Key": ORG_B_KEY}
    ) as other_org:
        foreign = await create_published(other_org, child_definition(), name="foreign")
    draft_only = await api.post(
        "/v1/workflows", json={"name": "draft", "definition": child_definition()}
    )
    unpublished = draft_only.json()["id"]
    for target, says in ((foreign, "no workflow"), (unpublished, "no published snapshot")):
        created = await api.post(
            "/v1/workflows", json={"name": "p", "definition": parent_definition(target)}
        )
        assert created.status_code == 201, created.text  # a draft may name anything
        published = await api.post(f"/v1/workflows/{created.json()['id']}/publish")
        assert published.status_code == 422, published.text
        [problem] = published.json()["error"]["details"]["errors"]
        assert problem["node_id"] == "sub" and says in problem["message"], problem

    # Running the draft of an unpublished target is allowed (`config_source: draft`).
    definition = parent_definition(unpublished)
    definition["nodes"][1]["config"]["config_source"] = "draft"
    parent_id = await create_published(api, definition, name="parent")
    run_id = await start(api, parent_id, json_inputs={"order": {"n": 2}})
    assert (await wait_for_run(api, run_id))["status"] == "completed"

    # A target that leads back to the workflow being published.
    child_id = await create_published(api, child_definition(), name="child")
    parent_id = await create_published(api, parent_definition(child_id), name="parent")
    looped = await api.put(
        f"/v1/workflows/{child_id}/draft", json={"definition": parent_definition(parent_id)}
    )
    assert looped.status_code == 200, looped.text
    refused = await api.post(f"/v1/workflows/{child_id}/publish")
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["error"]["details"]["errors"]
    assert problem["node_id"] == "sub" and "leads back" in problem["message"]


async def test_retry_after_a_child_failure_runs_the_node_again_as_a_new_child(
    api: httpx.AsyncClient, peer: Peer, client: Client
) -> None:
    child_id = await create_published(api, child_definition(peer), name="child")
    parent_id = await create_published(api, parent_definition(child_id), name="parent")
    peer.fail("/call", 1, 400)  # the first child's call fails; the next one succeeds
    run_id = await start(api, parent_id, json_inputs={"order": {"n": 4}})
    failed = await wait_for_run(api, run_id)
    assert failed["status"] == "error" and failed["error"]["node_id"] == "sub"
    first_child = (await step(api, run_id, "sub"))["child_run_id"]

    plan = (await api.get(f"/v1/workflows/runs/{run_id}/retry-plan")).json()
    assert plan["allowed"] is True
    assert "order" in plan["reuse"] and {"sub", "out"} <= set(plan["rerun"])
    assert "sub" in plan["repeated_side_effects"]
    assert f"failed inside its child run {first_child}" in plan["reason"]

    retried = await api.post(f"/v1/workflows/runs/{run_id}/retry", json={})
    assert retried.status_code == 202, retried.text
    run = await wait_for_attempt(api, run_id, 2)
    assert run["status"] == "completed", run
    sub = await step(api, run_id, "sub")
    assert sub["attempt"] == 2 and sub["child_run_id"] != first_child
    assert sub["output"] == {"doubled": "44", "note": f"from {run_id}"}
    assert peer.count("/call") == 2
    assert (await wait_for_run(api, first_child))["status"] == "error"
    children = await children_of(api, run_id, 2)
    assert {c["id"] for c in children} == {first_child, sub["child_run_id"]}
    await wait_for_step(api, run_id, "out", "completed")
    # The reset execution replays: the first child stays recorded before the reset point.
    await assert_replays(client, run_id)


async def test_children_nest_and_a_draft_that_leads_back_is_refused_at_run_start(
    api: httpx.AsyncClient,
) -> None:
    grandchild = await create_published(api, child_definition(), name="grandchild")
    middle = parent_definition(grandchild)
    middle["nodes"][0] = {"id": "order", "type": "start_json"}
    child_id = await create_published(api, middle, name="middle")
    top = parent_definition(child_id)
    top["nodes"][1]["config"] = {
        "workflow_id": child_id,
        "json_inputs": {"order": {"n": "{{order.n}}"}},
    }
    parent_id = await create_published(api, top, name="top")
    run_id = await start(api, parent_id, json_inputs={"order": {"n": 7}})
    run = await wait_for_run(api, run_id)
    assert run["status"] == "completed", run
    assert run["final_outputs"]["child"]["child"]["doubled"] == "77"
    [middle_run] = await children_of(api, run_id, 1)
    [grandchild_run] = await children_of(api, middle_run["id"], 1)
    assert grandchild_run["workflow"]["workflow_id"] == grandchild

    # A draft target is resolved when the run starts: one that leads back is refused then.
    draft_target = await api.post(
        "/v1/workflows", json={"name": "d", "definition": child_definition()}
    )
    target_id = draft_target.json()["id"]
    caller = parent_definition(target_id)
    caller["nodes"][1]["config"]["config_source"] = "draft"
    caller_id = await create_published(api, caller, name="caller")
    await api.put(
        f"/v1/workflows/{target_id}/draft", json={"definition": parent_definition(caller_id)}
    )
    refused = await api.post(
        f"/v1/workflows/{caller_id}/run", json={"json_inputs": {"order": {"n": 1}}}
    )
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["error"]["details"]["errors"]
    assert problem["node_id"] == "sub" and "leads back" in problem["message"]


async def test_a_child_cancelled_on_its_own_fails_the_parents_node(api: httpx.AsyncClient) -> None:
    run_id, child_run_id = await parent_with_a_child_waiting(api)
    assert (await api.post(f"/v1/workflows/runs/{child_run_id}/cancel")).status_code == 202
    run = await wait_for_run(api, run_id)
    assert run["status"] == "error", run
    assert run["error"]["node_id"] == "sub" and run["error"]["type"] == "ChildCancelled"
