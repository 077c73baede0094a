"""Definitions over REST: drafts, snapshots, validation, pagination."""

from __future__ import annotations

import httpx

from tests.api.helpers import linear_definition


def _broken() -> dict:
    return {
        "nodes": [
            {"id": "in", "type": "start_text"},
            {"id": "x", "type": "teleport"},
            {"id": "c", "type": "condition", "config": {"expression": "in.text"}},
        ],
        "edges": [{"source": "in", "target": "c"}, {"source": "c", "target": "x"}],
    }


async def test_create_read_and_publish_numbered_snapshots(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/v1/workflows",
        json={"name": "Invoices", "description": "d", "definition": linear_definition()},
    )
    assert created.status_code == 201
    workflow = created.json()
    assert workflow["id"].startswith("wf_")
    assert workflow["organization_id"] == "org_a"
    assert workflow["published_snapshot_id"] is None
    assert workflow["draft"]["definition"]["nodes"][0]["id"] == "meta"

    first = await api.post(f"/v1/workflows/{workflow['id']}/publish")
    assert first.status_code == 201
    assert first.json()["version"] == 1 and first.json()["id"].startswith("snap_")

    changed = linear_definition()
    changed["nodes"][2]["config"]["output"] = {"customer": "v2"}
    replaced = await api.put(f"/v1/workflows/{workflow['id']}/draft", json={"definition": changed})
    assert replaced.status_code == 200
    assert replaced.json()["draft"]["definition"]["nodes"][2]["config"]["output"] == {
        "customer": "v2"
    }
    second = await api.post(f"/v1/workflows/{workflow['id']}/publish")
    assert second.json()["version"] == 2

    read = (await api.get(f"/v1/workflows/{workflow['id']}")).json()
    assert read["published_snapshot_id"] == second.json()["id"]
    snapshots = (await api.get(f"/v1/workflows/{workflow['id']}/snapshots")).json()
    assert [s["version"] for s in snapshots["data"]] == [2, 1]
    # Snapshot 1 is immutable: it still has the original definition.
    assert snapshots["data"][1]["definition"]["nodes"][2]["config"]["output"] == {
        "customer": "{{meta.customer_id}}",
        "note": "{{note.text}}",
    }


async def test_invalid_definitions_answer_422_listing_every_problem(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/workflows", json={"name": "bad", "definition": _broken()})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and error["code"] == "invalid_definition"
    by_node = {(e["node_id"], e["message"]) for e in error["details"]["errors"]}
    assert any(node == "x" and "unknown node type" in m for node, m in by_node)
    assert any(node == "c" and "branch" in m for node, m in by_node)
    assert any(node is None and "'end'" in m for node, m in by_node)


async def test_rejected_draft_keeps_the_old_one(api: httpx.AsyncClient) -> None:
    workflow = (
        await api.post("/v1/workflows", json={"name": "w", "definition": linear_definition()})
    ).json()
    response = await api.put(
        f"/v1/workflows/{workflow['id']}/draft", json={"definition": _broken()}
    )
    assert response.status_code == 422
    after = (await api.get(f"/v1/workflows/{workflow['id']}")).json()
    assert after["draft"] == workflow["draft"]


async def test_validate_without_saving(api: httpx.AsyncClient) -> None:
    ok = await api.post("/v1/workflows/validate", json={"definition": linear_definition()})
    assert ok.status_code == 200 and ok.json() == {"valid": True, "errors": []}
    bad = (await api.post("/v1/workflows/validate", json={"definition": _broken()})).json()
    assert bad["valid"] is False
    assert any(e["node_id"] == "x" for e in bad["errors"])
    nonsense = await api.post("/v1/workflows/validate", json={"definition": [1, 2]})
    assert nonsense.status_code == 200 and nonsense.json()["valid"] is False
    listed = (await api.get("/v1/workflows")).json()["data"]
    assert listed == []


async def test_list_pages_newest_first_without_gaps(api: httpx.AsyncClient) -> None:
    ids = []
    for index in range(5):
        created = await api.post(
            "/v1/workflows", json={"name": f"w{index}", "definition": linear_definition()}
        )
        ids.append(created.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/v1/workflows", params=params)).json()
        assert len(page["data"]) <= 2
        seen += [w["id"] for w in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    for bad in ({"limit": 0}, {"limit": 201}, {"cursor": "garbage!!"}):
        response = await api.get("/v1/workflows", params=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]["type"] == "invalid_request"


async def test_unknown_workflows_are_404_everywhere(api: httpx.AsyncClient) -> None:
    for workflow_id in ("wf_missing", "..%2Fx", "x" * 300, "ünïcode"):
        for method, path, body in (
            ("GET", f"/v1/workflows/{workflow_id}", None),
            ("PUT", f"/v1/workflows/{workflow_id}/draft", {"definition": linear_definition()}),
            ("POST", f"/v1/workflows/{workflow_id}/publish", None),
            ("GET", f"/v1/workflows/{workflow_id}/snapshots", None),
            ("POST", f"/v1/workflows/{workflow_id}/run", {}),
        ):
            response = await api.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["type"] == "not_found"
