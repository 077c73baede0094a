"""Seed compatibility (API.md part 2): the seeds' flat run fields, `list_metadata` and the
`after` / `order` / `sort_by` parameters on every list, and one step by its node id."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.api.helpers import create_published, review_definition, wait_for_run, wait_until

DOCUMENT_DEFINITION = {
    "nodes": [
        {"id": "doc", "type": "start", "label": "Invoice"},
        {"id": "meta", "type": "start_json", "label": "Metadata"},
        {
            "id": "shape",
            "type": "transform",
            "label": "Shape",
            "config": {"output": {"file": "{{doc.filename}}", "customer": "{{meta.customer_id}}"}},
        },
        {"id": "out", "type": "end", "config": {"outputs": {"shape": "{{shape}}"}}},
    ],
    "edges": [
        {"source": "doc", "target": "shape"},
        {"source": "meta", "target": "shape"},
        {"source": "shape", "target": "out"},
    ],
}
INPUTS = {
    "documents": {
        "doc": {
            "filename": "invoice.txt",
            "mime_type": "text/plain",
            "content": base64.b64encode(b"Invoice #42").decode(),
        }
    },
    "json_inputs": {"meta": {"customer_id": "cust_123"}},
}
FLAT = (
    "workflow_id",
    "workflow_name",
    "created_at",
    "started_at",
    "completed_at",
    "duration_ms",
    "updated_at",
    "input_documents",
)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _recorded_moments(run: dict[str, Any], steps: list[dict[str, Any]]) -> list[datetime]:
    """Every moment a run record and its steps show."""
    timing = run["timing"]
    found = [
        timing[name]
        for name in ("created_at", "started_at", "completed_at", "human_waiting_started_at")
    ]
    for step in steps:
        found += [step["started_at"], step["completed_at"]]
        if step["review"]:
            found.append(step["review"]["decided_at"])
    for attempt in run["attempts"]:
        found += [attempt["started_at"], attempt["ended_at"]]
    return [_moment(m) for m in found if m is not None]


def _check_flat_fields(run: dict[str, Any]) -> None:
    timing = run["timing"]
    assert run["workflow_id"] == run["workflow"]["workflow_id"]
    assert run["workflow_name"] == run["workflow"]["name_at_run_time"]
    assert run["created_at"] == timing["created_at"]
    assert run["started_at"] == (timing["started_at"] or timing["created_at"])
    assert run["completed_at"] == timing["completed_at"]
    assert run["duration_ms"] == timing["duration_ms"]
    assert _moment(run["updated_at"]) >= _moment(run["created_at"])
    assert run["input_documents"] == {
        node_id: {
            "file_id": d["id"],
            "id": d["id"],
            "filename": d["filename"],
            "mime_type": d["mime_type"],
        }
        for node_id, d in run["inputs"]["documents"].items()
    }


async def test_run_records_carry_the_seed_fields(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, DOCUMENT_DEFINITION, name="Invoice Processing")
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json=INPUTS)
    assert started.status_code == 202, started.text
    run = started.json()
    _check_flat_fields(run)
    assert run["workflow_id"] == workflow_id and run["workflow_name"] == "Invoice Processing"
    assert run["started_at"] is not None, "never null, unlike timing.started_at"
    document = run["input_documents"]["doc"]
    assert document["file_id"].startswith("file_")
    assert (document["filename"], document["mime_type"]) == ("invoice.txt", "text/plain")

    done = await wait_for_run(api, run["id"])
    assert done["status"] == "completed"
    _check_flat_fields(done)
    assert done["completed_at"] is not None and done["duration_ms"] is not None
    steps = (await api.get(f"/v1/workflows/runs/{run['id']}/steps")).json()["data"]
    # The last change of the run's state is the latest moment it records.
    assert _moment(done["updated_at"]) == max(_recorded_moments(done, steps))
    assert _moment(done["updated_at"]) >= _moment(done["completed_at"])

    async def listed() -> dict[str, Any] | None:
        page = (await api.get("/v1/workflows/runs", params={"workflow_id": workflow_id})).json()
        return next((r for r in page["data"] if r["status"] == "completed"), None)

    item = await wait_until(listed)
    for name in FLAT:
        assert item[name] == done[name], name

    restarted = await api.post(f"/v1/workflows/runs/{run['id']}/restart", json={})
    assert restarted.status_code == 202, restarted.text
    _check_flat_fields(restarted.json())
    assert restarted.json()["input_documents"]["doc"]["file_id"] == document["file_id"]


async def test_updated_at_follows_reviews(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 5}}}
    )
    run_id = started.json()["id"]
    waiting = await wait_for_run(api, run_id, {"waiting_for_human"})
    assert waiting["input_documents"] == {}
    waited = _moment(waiting["timing"]["human_waiting_started_at"])
    assert _moment(waiting["updated_at"]) >= waited
    decided = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "approve"}
    )
    assert decided.status_code == 202, decided.text
    done = await wait_for_run(api, run_id)
    review = (await api.get(f"/v1/workflows/runs/{run_id}/steps/review")).json()["review"]
    assert _moment(done["updated_at"]) >= _moment(review["decided_at"]) > waited


# ---------------------------------------------------------------- pages

Lister = Callable[..., Awaitable[dict[str, Any]]]


async def _check_paging(api: httpx.AsyncClient, path: str, key: str, expected: list[str]) -> None:
    """`expected`: the keys of every item, newest first."""

    async def page(**params: Any) -> dict[str, Any]:
        response = await api.get(path, params=params)
        assert response.status_code == 200, (params, response.text)
        return response.json()  # type: ignore[no-any-return]

    async def walk(name: str, **params: Any) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            current = await page(limit=1, **params, **({name: cursor} if cursor else {}))
            assert current["list_metadata"] == {"before": None, "after": current["next_cursor"]}
            seen += [item[key] for item in current["data"]]
            cursor = current["list_metadata"]["after"]
            if cursor is None:
                return seen

    assert await walk("cursor") == expected
    assert await walk("after") == expected
    assert await walk("after", order="desc", sort_by="created_at") == expected
    assert await walk("after", order="asc") == expected[::-1]
    assert [i[key] for i in (await page(order="asc", limit=200))["data"]] == expected[::-1]

    first = await page(limit=1)
    cursor = first["next_cursor"]
    # The same value under both names is one cursor; two different ones are refused.
    same = await page(limit=1, cursor=cursor, after=cursor)
    assert [i[key] for i in same["data"]] == expected[1:2]
    oldest = (await page(limit=1, order="asc"))["next_cursor"]
    hostile: list[tuple[dict[str, Any], str, str]] = [
        ({"order": "sideways"}, "validation_failed", "order"),
        ({"order": ""}, "validation_failed", "order"),
        ({"sort_by": "name"}, "validation_failed", "sort_by"),
        ({"sort_by": "updated_at"}, "validation_failed", "sort_by"),
        ({"cursor": cursor, "after": oldest}, "invalid_cursor", "after"),
        ({"after": "garbage!!"}, "invalid_cursor", "cursor"),
        ({"after": "\u00e9\u0000\U0001f600"}, "invalid_cursor", "cursor"),
        ({"after": "x" * 5000}, "invalid_cursor", "cursor"),
        ({"after": cursor, "order": "asc"}, "invalid_cursor", "cursor"),
        ({"cursor": oldest, "order": "desc"}, "invalid_cursor", "cursor"),
    ]
    for params, code, field in hostile:
        response = await api.get(path, params=params)
        assert response.status_code == 422, (path, params, response.text)
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request", code), (params, error)
        assert error["details"]["errors"][0]["loc"] == ["query", field], (params, error)
        if field == "sort_by":
            assert "created_at" in error["message"], error
    mismatch = (await api.get(path, params={"after": cursor, "order": "asc"})).json()
    assert "order=desc" in mismatch["error"]["message"]


async def test_workflow_and_snapshot_pages(api: httpx.AsyncClient) -> None:
    workflow_ids = [
        await create_published(api, DOCUMENT_DEFINITION, name=f"w{i}") for i in range(3)
    ]
    await _check_paging(api, "/v1/workflows", "id", workflow_ids[::-1])
    for _ in range(2):
        await api.post(f"/v1/workflows/{workflow_ids[0]}/publish")
    await _check_paging(api, f"/v1/workflows/{workflow_ids[0]}/snapshots", "version", [3, 2, 1])


async def test_run_pages(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, DOCUMENT_DEFINITION)
    run_ids = []
    for _ in range(3):
        started = await api.post(f"/v1/workflows/{workflow_id}/run", json=INPUTS)
        run_ids.append(started.json()["id"])

    async def all_visible() -> bool:
        page = await api.get("/v1/workflows/runs", params={"workflow_id": workflow_id})
        return len(page.json()["data"]) == 3

    await wait_until(all_visible)
    await _check_paging(api, f"/v1/workflows/runs?workflow_id={workflow_id}", "id", run_ids[::-1])


async def test_review_inbox_pages(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, review_definition())
    run_ids = []
    for amount in range(3):
        started = await api.post(
            f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": amount}}}
        )
        run_ids.append(started.json()["id"])
    for run_id in run_ids:
        await wait_for_run(api, run_id, {"waiting_for_human"})

    async def all_waiting() -> bool:
        return len((await api.get("/v1/reviews")).json()["data"]) == 3

    await wait_until(all_waiting)
    try:
        await _check_paging(api, "/v1/reviews", "run_id", run_ids[::-1])
    finally:
        for run_id in run_ids:
            await api.post(f"/v1/workflows/runs/{run_id}/cancel")


# ---------------------------------------------------------------- one step


async def test_one_step_by_its_node_id(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, DOCUMENT_DEFINITION)
    run_id = (await api.post(f"/v1/workflows/{workflow_id}/run", json=INPUTS)).json()["id"]
    await wait_for_run(api, run_id)
    steps = (await api.get(f"/v1/workflows/runs/{run_id}/steps")).json()["data"]
    for listed in steps:
        response = await api.get(f"/v1/workflows/runs/{run_id}/steps/{listed['node_id']}")
        assert response.status_code == 200, response.text
        step = response.json()
        assert step == listed
        assert (step["block_id"], step["block_type"], step["block_label"]) == (
            step["node_id"],
            step["node_type"],
            step["label"],
        )
    shape = (await api.get(f"/v1/workflows/runs/{run_id}/steps/shape")).json()
    assert shape["output"] == {"file": "invoice.txt", "customer": "cust_123"}

    missing = await api.get(f"/v1/workflows/runs/{run_id}/steps/nope")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert (error["type"], error["code"]) == ("not_found", "step_not_found")
    assert "nope" in error["message"] and run_id in error["message"]
    # The run's own 404 comes first: a missing run, another organization's run.
    for path in (
        "/v1/workflows/runs/run_doesnotexist/steps/shape",
        "/v1/workflows/runs/not-a-run/steps/shape",
    ):
        response = await api.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "run_not_found"
    async with httpx.AsyncClient(
        transport=api._transport, base_url=str(api.base_url), headers={"Api-Key": "key_org_b"}
    ) as other:
        foreign = await other.get(f"/v1/workflows/runs/{run_id}/steps/shape")
        assert foreign.status_code == 404
        assert foreign.json()["error"]["code"] == "run_not_found"


@pytest.mark.parametrize(
    "node_id",
    [
        "a%2Fb",  # an encoded slash
        "a/b",
        "%C3%BCn%C3%AFc%C3%B6d%C3%A9",
        "%F0%9F%98%80",
        "%ED%A0%80",  # a lone surrogate, as UTF-8 would write it
        "%FF%FE",  # not UTF-8
        "%00",
        "%2E%2E",  # ".." that no client normalized away
        "x" * 5000,
        "shape%20",
        "shape?x=1",
    ],
)
async def test_hostile_node_ids_answer_the_error_body(api: httpx.AsyncClient, node_id: str) -> None:
    workflow_id = await create_published(api, DOCUMENT_DEFINITION)
    run_id = (await api.post(f"/v1/workflows/{workflow_id}/run", json=INPUTS)).json()["id"]
    response = await api.get(f"/v1/workflows/runs/{run_id}/steps/{node_id}")
    if node_id == "shape?x=1":  # a query string, not part of the node id
        assert response.status_code == 200 and response.json()["node_id"] == "shape"
        return
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["type"] == "not_found"
    assert error["code"] in ("step_not_found", "route_not_found"), error


# ---------------------------------------------------------------- OpenAPI


async def test_openapi_documents_the_seed_fields(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    run = schemas["RunOut"]["properties"]
    for name in FLAT:
        assert run[name].get("description"), name
    assert set(FLAT) <= set(schemas["RunOut"]["required"])
    for name in ("block_id", "block_type", "block_label"):
        assert schemas["StepOut"]["properties"][name].get("description"), name
    paths = document["paths"]
    assert "/v1/workflows/runs/{run_id}/steps/{node_id}" in paths
    for path in (
        "/v1/workflows/runs",
        "/v1/reviews",
        "/v1/workflows",
        "/v1/workflows/{workflow_id}/snapshots",
    ):
        operation = paths[path]["get"]
        parameters = {p["name"]: p for p in operation["parameters"]}
        for name in ("limit", "cursor", "after", "order", "sort_by"):
            assert parameters[name].get("description"), (path, name)
        page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        properties = schemas[page.rsplit("/", 1)[-1]]["properties"]
        assert {"data", "next_cursor", "list_metadata"} <= set(properties), path
