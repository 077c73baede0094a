"""Definitions over REST: drafts, snapshots, validation, pagination."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from tests.api.helpers import create_published, linear_definition

EMPTY_PAGE = {"data": [], "next_cursor": None, "list_metadata": {"before": None, "after": None}}


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
    assert workflow["organization_id"].startswith("org_a_")  # per test: conftest
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


# ---------------------------------------------------------------- every problem, named


def _problems_per_node() -> dict:
    """Problems found node by node: a bad id, an unknown type, three invalid configs."""
    return {
        "nodes": [
            {"id": "s", "type": "start_text"},
            {"id": "bad id!", "type": "transform", "config": {"output": 1}},
            {"id": "x", "type": "teleport"},
            {"id": "t", "type": "transform"},
            {"id": "d", "type": "delay", "config": {"seconds": "soon"}},
            {"id": "h", "type": "http_request", "config": {"method": "POST"}},
            {"id": "e", "type": "end", "config": {"outputs": {}}},
        ],
        "edges": [{"source": "s", "target": "e"}],
    }


def _problems_in_the_graph() -> dict:
    """Graph problems: no end, a branchless condition edge, an edge into a start node, an
    unreachable node, a template naming a non-ancestor and one naming no node at all."""
    return {
        "nodes": [
            {"id": "s", "type": "start_text"},
            {"id": "s2", "type": "start_json"},
            {"id": "c", "type": "condition", "config": {"expression": "s.text"}},
            {"id": "a", "type": "transform", "config": {"output": "{{b.x}}"}},
            {"id": "b", "type": "transform", "config": {"output": "{{ghost.y}}"}},
            {"id": "u", "type": "transform", "config": {"output": {}}},
        ],
        "edges": [
            {"source": "s", "target": "c"},
            {"source": "c", "target": "a"},
            {"source": "c", "target": "b", "branch": "true"},
            {"source": "a", "target": "s2"},
            {"source": "u", "target": "b"},
        ],
    }


def _cycle() -> dict:
    return {
        "nodes": [
            {"id": "s", "type": "start_text"},
            {"id": "a", "type": "transform", "config": {"output": 1}},
            {"id": "b", "type": "transform", "config": {"output": 1}},
            {"id": "e", "type": "end", "config": {"outputs": {}}},
        ],
        "edges": [
            {"source": "s", "target": "a"},
            {"source": "a", "target": "b"},
            {"source": "b", "target": "a"},
            {"source": "b", "target": "e"},
        ],
    }


def _dangling_edges() -> dict:
    return {
        "nodes": [
            {"id": "s", "type": "start_text"},
            {"id": "e", "type": "end", "config": {"outputs": {}}},
        ],
        "edges": [{"source": "s", "target": "nowhere"}, {"source": "elsewhere", "target": "e"}],
    }


EXPECTED_PROBLEMS: list[tuple[Callable[[], dict], list[tuple[str | None, str]]]] = [
    (
        _problems_per_node,
        [
            ("bad id!", "node id must match"),
            ("x", "unknown node type 'teleport'"),
            ("t", "config.output"),
            ("d", "config.seconds"),
            ("h", "config.url"),
        ],
    ),
    (
        _problems_in_the_graph,
        [
            (None, "'end' node"),
            ("c", 'branch "true" or "false"'),
            ("s2", "start node cannot have incoming edges"),
            ("u", "not reachable"),
            ("a", "not an ancestor"),
            ("b", "unknown node 'ghost'"),
        ],
    ),
    (_cycle, [("a", "cycle"), ("b", "cycle")]),
    (
        _dangling_edges,
        [("nowhere", "unknown node 'nowhere'"), ("elsewhere", "unknown node 'elsewhere'")],
    ),
    (lambda: {"nodes": [], "edges": []}, [(None, "start-type node"), (None, "'end' node")]),
    (
        lambda: {"nodes": [{"id": "s", "type": "start_text"}, {"id": "s", "type": "end"}]},
        [("s", "duplicate node id")],
    ),
]


def _assert_lists(errors: list[dict], expected: list[tuple[str | None, str]]) -> None:
    assert all(set(e) == {"node_id", "message"} for e in errors), errors
    for node_id, fragment in expected:
        assert any(e["node_id"] == node_id and fragment in e["message"] for e in errors), (
            node_id,
            fragment,
            errors,
        )


async def test_create_lists_every_problem_with_its_node_id(api: httpx.AsyncClient) -> None:
    for make, expected in EXPECTED_PROBLEMS:
        response = await api.post("/v1/workflows", json={"name": "bad", "definition": make()})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request" and error["code"] == "invalid_definition"
        _assert_lists(error["details"]["errors"], expected)
        # The validate endpoint answers the very same list, with 200.
        checked = await api.post("/v1/workflows/validate", json={"definition": make()})
        assert checked.status_code == 200
        assert checked.json() == {"valid": False, "errors": error["details"]["errors"]}
    # Nothing invalid was saved.
    assert (await api.get("/v1/workflows")).json() == EMPTY_PAGE


async def test_structurally_wrong_definitions_name_the_node(api: httpx.AsyncClient) -> None:
    definition = linear_definition()
    definition["nodes"][2]["colour"] = "red"  # unknown field on node "shape"
    definition["nodes"][3]["retry"] = {"max_attempts": 0}
    response = await api.post("/v1/workflows", json={"name": "w", "definition": definition})
    assert response.status_code == 422
    errors = response.json()["error"]["details"]["errors"]
    assert {e["node_id"] for e in errors} == {"shape", "out"}
    for definition in ({"edges": []}, {"nodes": "all of them"}, {"nodes": [], "extra": 1}):
        response = await api.post("/v1/workflows", json={"name": "w", "definition": definition})
        assert response.status_code == 422, definition
        assert response.json()["error"]["details"]["errors"], definition


async def test_definitions_that_json_cannot_carry_back_are_422_not_500(
    api: httpx.AsyncClient,
) -> None:
    deep: object = "leaf"
    for _ in range(300):
        deep = {"k": deep}
    too_deep = linear_definition()
    too_deep["nodes"][2]["config"]["output"] = deep
    # 1e999 parses as inf, and JSON has no way to answer inf back.
    infinite = json.dumps({"name": "w", "definition": linear_definition() | {"vars": {"v": 0}}})
    infinite = infinite.replace('"v": 0', '"v": 1e999')
    created = await api.post("/v1/workflows", json={"name": "w", "definition": too_deep})
    assert created.status_code == 422, created.text[:300]
    assert created.json()["error"]["code"] == "invalid_definition"
    assert "64 levels" in created.json()["error"]["details"]["errors"][0]["message"]
    checked = await api.post("/v1/workflows/validate", json={"definition": too_deep})
    assert checked.status_code == 200 and checked.json()["valid"] is False
    as_json = {"content-type": "application/json"}
    created = await api.post("/v1/workflows", content=infinite, headers=as_json)
    assert created.status_code == 422, created.text[:300]
    assert "finite" in created.json()["error"]["details"]["errors"][0]["message"]
    only_definition = infinite.replace('"name": "w", ', "")
    checked = await api.post("/v1/workflows/validate", content=only_definition, headers=as_json)
    assert checked.status_code == 200 and checked.json()["valid"] is False
    assert "finite" in checked.json()["errors"][0]["message"]
    workflow = (
        await api.post("/v1/workflows", json={"name": "w", "definition": linear_definition()})
    ).json()
    replaced = await api.put(f"/v1/workflows/{workflow['id']}/draft", json={"definition": too_deep})
    assert replaced.status_code == 422
    # Nesting a real definition has is fine.
    nested = linear_definition()
    value: object = "{{meta.customer_id}}"
    for _ in range(20):
        value = {"k": [value]}
    nested["nodes"][2]["config"]["output"] = value
    ok = await api.post("/v1/workflows", json={"name": "w", "definition": nested})
    assert ok.status_code == 201, ok.text[:300]
    assert ok.json()["draft"]["definition"] == nested


# ---------------------------------------------------------------- create, read, replace


async def test_created_workflow_fields(api: httpx.AsyncClient) -> None:
    created = await api.post("/v1/workflows", json={"name": "Ünïcode ✓", "definition": _seed()})
    assert created.status_code == 201
    workflow = created.json()
    assert set(workflow) == {
        "id",
        "organization_id",
        "name",
        "description",
        "draft",
        "published_snapshot_id",
        "created_at",
        "updated_at",
    }
    assert workflow["name"] == "Ünïcode ✓" and workflow["description"] == ""
    assert workflow["draft"]["definition"] == _seed()
    for stamp in (workflow["created_at"], workflow["updated_at"], workflow["draft"]["updated_at"]):
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0), stamp
    read = await api.get(f"/v1/workflows/{workflow['id']}")
    assert read.status_code == 200 and read.json() == workflow
    another = (await api.post("/v1/workflows", json={"name": "x", "definition": _seed()})).json()
    assert another["id"] != workflow["id"]


async def test_create_body_is_checked(api: httpx.AsyncClient) -> None:
    definition = linear_definition()
    for body, field in (
        ({"definition": definition}, "name"),
        ({"name": "", "definition": definition}, "name"),
        ({"name": "n" * 201, "definition": definition}, "name"),
        ({"name": "w"}, "definition"),
        ({"name": "w", "definition": [1]}, "definition"),
        ({"name": "w", "definition": definition, "owner": "me"}, "owner"),
        ({"name": 5, "definition": definition}, "name"),
        # NUL: PostgreSQL text cannot hold it, so neither store takes it.
        ({"name": "a\x00b", "definition": definition}, "name"),
        ({"name": "w", "description": "\x00", "definition": definition}, "description"),
    ):
        response = await api.post("/v1/workflows", json=body)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert error["type"] == "invalid_request"
        assert any(e["loc"] == ["body", field] for e in error["details"]["errors"]), error


async def test_replacing_the_draft(api: httpx.AsyncClient) -> None:
    workflow = (
        await api.post("/v1/workflows", json={"name": "w", "definition": linear_definition()})
    ).json()
    path = f"/v1/workflows/{workflow['id']}/draft"
    for rejected in (
        {"definition": _problems_in_the_graph()},
        {"definition": linear_definition(), "name": "renamed"},
        {},
        {"definition": "nodes"},
    ):
        response = await api.put(path, json=rejected)
        assert response.status_code == 422, rejected
        assert response.json()["error"]["type"] == "invalid_request"
    assert (await api.get(f"/v1/workflows/{workflow['id']}")).json() == workflow

    replaced = await api.put(path, json={"definition": _seed()})
    assert replaced.status_code == 200
    after = replaced.json()
    assert after["draft"]["definition"] == _seed()
    assert after["name"] == "w" and after["created_at"] == workflow["created_at"]
    assert after["draft"]["updated_at"] > workflow["draft"]["updated_at"]
    assert (await api.get(f"/v1/workflows/{workflow['id']}")).json() == after


# ---------------------------------------------------------------- snapshots


async def test_snapshots_are_immutable_and_numbered(api: httpx.AsyncClient) -> None:
    workflow = (
        await api.post("/v1/workflows", json={"name": "w", "definition": linear_definition()})
    ).json()
    wf = workflow["id"]
    assert (await api.get(f"/v1/workflows/{wf}/snapshots")).json() == EMPTY_PAGE
    first = await api.post(f"/v1/workflows/{wf}/publish")
    assert first.status_code == 201
    snapshot = first.json()
    assert set(snapshot) == {"id", "workflow_id", "version", "definition", "created_at"}
    assert snapshot["workflow_id"] == wf and snapshot["version"] == 1
    assert snapshot["definition"] == linear_definition()

    await api.put(f"/v1/workflows/{wf}/draft", json={"definition": _seed()})
    # The draft changed; the published snapshot did not.
    read = (await api.get(f"/v1/workflows/{wf}")).json()
    assert read["published_snapshot_id"] == snapshot["id"]
    assert read["draft"]["definition"] == _seed()
    listed = (await api.get(f"/v1/workflows/{wf}/snapshots")).json()["data"]
    assert listed == [snapshot]

    versions = [(await api.post(f"/v1/workflows/{wf}/publish")).json() for _ in range(3)]
    assert [s["version"] for s in versions] == [2, 3, 4]
    assert all(s["definition"] == _seed() for s in versions)
    assert len({s["id"] for s in versions} | {snapshot["id"]}) == 4
    listed = (await api.get(f"/v1/workflows/{wf}/snapshots")).json()["data"]
    assert [s["version"] for s in listed] == [4, 3, 2, 1]
    assert listed[-1] == snapshot
    assert (await api.get(f"/v1/workflows/{wf}")).json()["published_snapshot_id"] == versions[-1][
        "id"
    ]

    seen: list[int] = []
    cursor = None
    while True:
        params: dict = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await api.get(f"/v1/workflows/{wf}/snapshots", params=params)).json()
        seen += [s["version"] for s in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [4, 3, 2, 1]
    for bad in _garbage_cursors() + [_cursor([0]), _cursor([2**40]), _cursor([10**30])]:
        response = await api.get(f"/v1/workflows/{wf}/snapshots", params={"cursor": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["code"] == "invalid_cursor"
    for limit in (0, 201, -1, "x"):
        response = await api.get(f"/v1/workflows/{wf}/snapshots", params={"limit": limit})
        assert response.status_code == 422, limit


# ---------------------------------------------------------------- pagination


async def test_pages_stay_stable_while_workflows_are_added(api: httpx.AsyncClient) -> None:
    async def create(name: str) -> str:
        response = await api.post("/v1/workflows", json={"name": name, "definition": _seed()})
        return response.json()["id"]

    first_ids = [await create(f"a{i}") for i in range(4)]
    page = (await api.get("/v1/workflows", params={"limit": 2})).json()
    assert [w["id"] for w in page["data"]] == first_ids[:1:-1]
    later_ids = [await create(f"b{i}") for i in range(2)]
    rest = (
        await api.get("/v1/workflows", params={"limit": 2, "cursor": page["next_cursor"]})
    ).json()
    # Exactly the two remaining older ones: no repeat, no newcomer, and no empty extra page.
    assert [w["id"] for w in rest["data"]] == first_ids[1::-1]
    assert rest["next_cursor"] is None
    everything = (await api.get("/v1/workflows", params={"limit": 200})).json()
    assert [w["id"] for w in everything["data"]] == (first_ids + later_ids)[::-1]
    assert everything["next_cursor"] is None
    one_by_one: list[str] = []
    cursor = None
    while True:
        params: dict = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        response = await api.get("/v1/workflows", params=params)
        one_by_one += [w["id"] for w in response.json()["data"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert one_by_one == (first_ids + later_ids)[::-1]
    default = (await api.get("/v1/workflows")).json()
    assert len(default["data"]) == 6 and default["next_cursor"] is None


async def test_bad_list_parameters_are_422(api: httpx.AsyncClient) -> None:
    await api.post("/v1/workflows", json={"name": "w", "definition": _seed()})
    snapshot_cursor = _cursor([1])
    out_of_range = [
        _cursor(["0001-01-01T00:00:00+14:00", "wf_x"]),
        _cursor(["9999-12-31T23:59:59-14:00", "wf_x"]),
        _cursor(["2024-01-01T00:00:00", "wf_x"]),  # no zone
    ]
    for cursor in _garbage_cursors() + out_of_range + [snapshot_cursor]:
        response = await api.get("/v1/workflows", params={"cursor": cursor})
        assert response.status_code == 422, (cursor, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request" and error["code"] == "invalid_cursor"
    for limit in (0, 201, -5, "ten", "1.5", "9" * 40):
        response = await api.get("/v1/workflows", params={"limit": limit})
        assert response.status_code == 422, limit
        assert response.json()["error"]["details"]["errors"][0]["loc"] == ["query", "limit"]
    for limit in (1, 200):
        assert (await api.get("/v1/workflows", params={"limit": limit})).status_code == 200


# ---------------------------------------------------------------- unknown ids


async def test_odd_workflow_ids_are_404_on_every_route(api: httpx.AsyncClient) -> None:
    real = await create_published(api, linear_definition())
    odd_ids = [
        "wf_" + "0" * 32,
        real + "x",
        real.upper(),
        "x" * 10_000,
        "日本語",
        "🙂",
        "a%20b",
        "a%00b",
        "wf_x%3Bdrop",
        "' OR '1'='1",
    ]
    for workflow_id in odd_ids:
        for method, suffix, body in (
            ("GET", "", None),
            ("PUT", "/draft", {"definition": linear_definition()}),
            ("POST", "/publish", None),
            ("GET", "/snapshots", None),
            ("POST", "/run", {}),
        ):
            response = await api.request(method, f"/v1/workflows/{workflow_id}{suffix}", json=body)
            assert response.status_code == 404, (method, workflow_id[:40], suffix, response.text)
            error = response.json()["error"]
            assert error["type"] == "not_found" and set(error) == {
                "type",
                "code",
                "message",
                "details",
            }
            assert error["code"] == "workflow_not_found", (workflow_id[:40], suffix, error)
    # Paths that leave the workflow routes altogether are unknown routes, still 404.
    for path in (
        "/v1/workflows/../x",
        "/v1/workflows/%2E%2E%2Fx",
        "/v1/workflows/a/b/c",
        "/v1/workflows/%2F/publish",
    ):
        response = await api.get(path)
        assert response.status_code in (404, 405), path
        assert "error" in response.json()
    assert (await api.get(f"/v1/workflows/{real}")).status_code == 200


def _seed() -> dict:
    """A definition with seed-style node ids (hyphens) and no inputs to speak of."""
    return {
        "nodes": [
            {"id": "start-node-1", "type": "start_text"},
            {"id": "end-node-1", "type": "end", "config": {"outputs": {"t": "{{start-node-1}}"}}},
        ],
        "edges": [{"source": "start-node-1", "target": "end-node-1"}],
    }


def _cursor(key: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _garbage_cursors() -> list[str]:
    return [
        "garbage!!",
        "",
        "=",
        "é",
        "null",
        _cursor([]),
        _cursor({"a": 1}),  # type: ignore[arg-type]
        _cursor([True]),
        _cursor(["x", "y", "z"]),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ]


# ---------------------------------------------------------------- issue 12: nothing hidden


def _unknown_target_and_more() -> dict:
    """An edge to a node that does not exist, next to a template naming a node that is not
    upstream, one naming no node, a branchless condition edge and an ftp URL."""
    return {
        "nodes": [
            {"id": "in", "type": "start_json"},
            {"id": "c", "type": "condition", "config": {"expression": "in.big"}},
            {"id": "early", "type": "transform", "config": {"output": "{{late.x}}"}},
            {"id": "late", "type": "transform", "config": {"output": "{{ghost.y}}"}},
            {"id": "call", "type": "http_request", "config": {"url": "ftp://example.com/x"}},
            {"id": "out", "type": "end", "config": {"outputs": "{{late}}"}},
        ],
        "edges": [
            {"source": "in", "target": "c"},
            {"source": "c", "target": "early"},
            {"source": "early", "target": "late"},
            {"source": "late", "target": "call"},
            {"source": "call", "target": "out"},
            {"source": "late", "target": "nowhere"},
        ],
    }


async def test_an_unknown_edge_target_hides_no_other_problem(api: httpx.AsyncClient) -> None:
    expected = [
        ("nowhere", "names unknown node 'nowhere'"),
        ("early", "template '{{late.x}}' names 'late', which is not an ancestor"),
        ("late", "template '{{ghost.y}}' names unknown node 'ghost'"),
        ("c", 'edge to \'early\' must carry branch "true" or "false"'),
        ("call", "config.url: url scheme 'ftp' is not allowed; use http or https"),
    ]
    created = await api.post(
        "/v1/workflows", json={"name": "w", "definition": _unknown_target_and_more()}
    )
    assert created.status_code == 422, created.text
    error = created.json()["error"]
    assert error["code"] == "invalid_definition"
    _assert_lists(error["details"]["errors"], expected)
    assert len(error["details"]["errors"]) == len(expected), error["details"]["errors"]
    checked = await api.post(
        "/v1/workflows/validate", json={"definition": _unknown_target_and_more()}
    )
    assert checked.json() == {"valid": False, "errors": error["details"]["errors"]}
    # A draft is checked the same way, and the ftp URL alone is enough to refuse it.
    workflow = (
        await api.post("/v1/workflows", json={"name": "w", "definition": linear_definition()})
    ).json()
    ftp = linear_definition()
    ftp["nodes"].insert(3, {"id": "call", "type": "http_request", "config": {"url": "ftp://x/"}})
    ftp["edges"] = [*ftp["edges"][:2], *_edges("shape", "call", "out")]
    replaced = await api.put(f"/v1/workflows/{workflow['id']}/draft", json={"definition": ftp})
    assert replaced.status_code == 422
    assert replaced.json()["error"]["details"]["errors"] == [
        {
            "node_id": "call",
            "message": "config.url: url scheme 'ftp' is not allowed; use http or https",
        }
    ]


def _edges(*ids: str) -> list[dict]:
    return [{"source": a, "target": b} for a, b in zip(ids, ids[1:], strict=False)]


def _valid_around(*nodes: dict, edges: list | None = None) -> dict:
    """A valid start -> end pair, plus the given nodes and edges."""
    return {
        "nodes": [
            {"id": "s", "type": "start_text"},
            {"id": "e", "type": "end", "config": {"outputs": "{{s.text}}"}},
            *nodes,
        ],
        "edges": [{"source": "s", "target": "e"}, *(edges or [])],
    }


def _chain_of(count: int) -> dict:
    nodes = [{"id": "n0", "type": "start_text"}]
    nodes += [
        {"id": f"n{i}", "type": "transform", "config": {"output": f"{{{{n{i - 1}}}}}"}}
        for i in range(1, count - 1)
    ]
    nodes.append({"id": f"n{count - 1}", "type": "end"})
    return {"nodes": nodes, "edges": _edges(*(n["id"] for n in nodes))}


def _hostile() -> list[tuple[str, object, list[tuple[str | None, str]]]]:
    deep: object = "leaf"
    for _ in range(63):
        deep = [deep]
    many = _chain_of(5_000)
    many["edges"] += [{"source": "n0", "target": "ghost"}] * 3_000
    many["nodes"][2_500]["config"] = None
    return [
        ("id is a number", _valid_around({"id": 7, "type": "transform"}), [(None, "nodes.2.id")]),
        ("id is an object", _valid_around({"id": {"x": 1}}), [(None, "nodes.2.id")]),
        ("id is null", _valid_around({"id": None, "type": "end"}), [(None, "nodes.2.id")]),
        ("empty id", _valid_around({"id": "", "type": "end"}), [("", "node id must match")]),
        ("unicode id", _valid_around({"id": "ünï", "type": "end"}), [("ünï", "must match")]),
        ("emoji id", _valid_around({"id": "🚀", "type": "end"}), [("🚀", "must match")]),
        ("newline id", _valid_around({"id": "x\n", "type": "end"}), [("x\n", "must match")]),
        ("nul id", _valid_around({"id": "a\x00", "type": "end"}), [("a\x00", "must match")]),
        ("long id", _valid_around({"id": "x" * 65, "type": "end"}), [("x" * 65, "must match")]),
        (
            "null config",
            _valid_around({"id": "t", "type": "transform", "config": None}),
            [("t", "nodes.2.config")],
        ),
        (
            "list config",
            _valid_around({"id": "t", "type": "end", "config": [1]}),
            [("t", "nodes.2.config")],
        ),
        ("null node", _valid_around(None), [(None, "nodes.2")]),  # type: ignore[arg-type]
        ("null edge", {**_valid_around(), "edges": [None]}, [(None, "edges.0")]),
        ("edges an object", {**_valid_around(), "edges": {"s": "e"}}, [(None, "edges")]),
        ("vars a list", {**_valid_around(), "vars": [1]}, [(None, "vars")]),
        (
            "self edge",
            _valid_around(edges=[{"source": "e", "target": "e"}]),
            [("e", "cycle with e")],
        ),
        (
            "self edge on a start",
            _valid_around(edges=[{"source": "s", "target": "s"}]),
            [("s", "cycle with s"), ("s", "start node cannot have incoming edges")],
        ),
        (
            "edge end a number",
            _valid_around(edges=[{"source": "s", "target": 3}]),
            [("s", "edges.1.target")],
        ),
        (
            "branch a list",
            _valid_around(edges=[{"source": "s", "target": "e", "branch": []}]),
            [("s", "edges.1.branch")],
        ),
        (
            "unicode edge",
            _valid_around(edges=[{"source": "s", "target": "ñ"}]),
            [("ñ", "unknown node 'ñ'")],
        ),
        (
            "deep config",
            _valid_around(
                {"id": "t", "type": "transform", "config": {"output": deep}},
                edges=_edges("s", "t", "e"),
            ),
            [(None, "64 levels")],
        ),
        (
            "deep expression",
            _valid_around({"id": "c", "type": "condition", "config": {"expression": "(" * 3_000}}),
            [("c", "config.expression")],
        ),
        (
            "deep not",
            _valid_around(
                {"id": "c", "type": "condition", "config": {"expression": "!" * 3_000 + "s"}}
            ),
            [("c", "config.expression")],
        ),
        (
            "long pipe",
            _valid_around(
                {"id": "c", "type": "condition", "config": {"expression": "s" + "|s" * 3_000}}
            ),
            [("c", "config.expression")],
        ),
        (
            "deep template",
            _valid_around(
                {
                    "id": "t",
                    "type": "transform",
                    "config": {"output": "{{" * 5_000 + "e" + "}}" * 5_000},
                },
                edges=_edges("s", "t", "e"),
            ),
            [("t", "not an ancestor")],
        ),
        (
            "huge timeout",
            _valid_around({"id": "d", "type": "delay", "config": {"seconds": 1e308}}),
            [("d", "config.seconds")],
        ),
        (
            "many nodes and edges",
            many,
            [("ghost", "unknown node 'ghost'"), ("n2500", "nodes.2500.config")],
        ),
    ]


async def test_hostile_definitions_are_422_naming_the_problems(api: httpx.AsyncClient) -> None:
    for name, definition, expected in _hostile():
        created = await api.post("/v1/workflows", json={"name": "w", "definition": definition})
        assert created.status_code == 422, (name, created.text[:500])
        error = created.json()["error"]
        assert error["type"] == "invalid_request", name
        errors = error["details"]["errors"]
        _assert_lists(errors, expected)
        checked = await api.post("/v1/workflows/validate", json={"definition": definition})
        assert checked.status_code == 200, (name, checked.text[:500])
        assert checked.json()["valid"] is False, name
    assert (await api.get("/v1/workflows")).json()["data"] == []


async def test_bodies_json_cannot_parse_into_python_are_422_not_500(
    api: httpx.AsyncClient,
) -> None:
    """Valid JSON that Python's parser refuses (limits on digits and nesting), and a body that
    is not UTF-8, are unreadable JSON: 422 `invalid_json` (the status the OpenAPI document
    gives every operation), like any other body the parser refuses."""
    as_json = {"content-type": "application/json"}
    body = json.dumps({"name": "w", "definition": linear_definition() | {"vars": {"v": 0}}})
    for raw in (
        body.replace('"v": 0', '"v": ' + "9" * 5_000),  # more digits than int() takes
        body.replace('"v": 0', '"v": ' + "[" * 100_000 + "]" * 100_000),
        body.encode().replace(b'"w"', b'"\xff\xfe"'),
        "{not json",
    ):
        response = await api.post("/v1/workflows", content=raw, headers=as_json)
        assert response.status_code == 422, response.text[:300]
        error = response.json()["error"]
        assert error["type"] == "invalid_request"
        assert error["code"] == "invalid_json", error
        assert error["details"]["errors"][0]["loc"][0] == "body", error


async def test_text_json_can_carry_but_utf_8_cannot_is_422_not_500(api: httpx.AsyncClient) -> None:
    """JSON may escape a lone surrogate ("\\ud800"); no UTF-8 answer or store can hold one."""
    definition = linear_definition()
    definition["nodes"][2]["label"] = "SURROGATE"
    definition["nodes"][1]["id"] = "noteSURROGATE"
    definition["edges"][1]["source"] = "noteSURROGATE"
    body = json.dumps({"name": "w", "definition": definition}).replace("SURROGATE", "\\ud800")
    as_json = {"content-type": "application/json"}
    created = await api.post("/v1/workflows", content=body, headers=as_json)
    assert created.status_code == 422, created.text[:300]
    errors = created.json()["error"]["details"]["errors"]
    _assert_lists(
        errors,
        [
            ("shape", "nodes.2: text is not valid Unicode"),
            ("note\ufffd", "nodes.1: text is not valid Unicode"),
            ("note\ufffd", "node id must match"),
            ("shape", "template '{{note.text}}' names unknown node 'note'"),
        ],
    )
    checked = await api.post(
        "/v1/workflows/validate", content=body.replace('"name": "w", ', ""), headers=as_json
    )
    assert checked.status_code == 200 and checked.json() == {"valid": False, "errors": errors}
