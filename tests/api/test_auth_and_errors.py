"""Keys, organizations, and the error body: never a 500, never a stack trace."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.deps import get_temporal_client
from runlane.errors import invalid
from runlane.settings import Settings
from runlane.temporal import connect
from tests.api.helpers import create_published, linear_definition, wait_for_run
from tests.conftest import ORG_A_KEY, ORG_B_KEY


@pytest.fixture
async def real_workflow(api: httpx.AsyncClient) -> str:
    return await create_published(api, linear_definition())


def client_for(app: FastAPI, key: str | None) -> httpx.AsyncClient:
    headers = {"Api-Key": key} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
    )


async def test_keys(app: FastAPI) -> None:
    async with client_for(app, None) as anonymous:
        missing = await anonymous.get("/v1/workflows")
        assert missing.status_code == 401
        assert missing.json()["error"]["type"] == "authentication"
        unknown = await anonymous.get("/v1/workflows", headers={"Api-Key": "nope"})
        assert unknown.status_code == 401
        bearer = await anonymous.get(
            "/v1/workflows", headers={"Authorization": f"Bearer {ORG_A_KEY}"}
        )
        assert bearer.status_code == 200
        health = await anonymous.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok", "temporal": "ok"}


async def test_another_organizations_resources_are_404(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    workflow_id = await create_published(api, linear_definition())
    file = await api.post("/v1/files", files={"file": ("a.txt", b"secret", "text/plain")})
    file_id = file.json()["id"]
    run = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"json_inputs": {"meta": {"customer_id": "c"}}, "text_inputs": {"note": "n"}},
    )
    run_id = run.json()["id"]
    await wait_for_run(api, run_id)
    async with client_for(app, ORG_B_KEY) as other:
        for path in (
            f"/v1/workflows/{workflow_id}",
            f"/v1/workflows/{workflow_id}/snapshots",
            f"/v1/files/{file_id}",
            f"/v1/files/{file_id}/content",
            f"/v1/workflows/runs/{run_id}",
            f"/v1/workflows/runs/{run_id}/steps",
            f"/v1/workflows/runs/{run_id}/events",
            f"/v1/workflows/runs/{run_id}/retry-plan",
        ):
            response = await other.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["type"] == "not_found"
        for path in ("cancel", "restart", "rerun", "retry"):
            response = await other.post(f"/v1/workflows/runs/{run_id}/{path}")
            assert response.status_code == 404, path
        started = await other.post(f"/v1/workflows/{workflow_id}/run", json={})
        assert started.status_code == 404
        assert (await other.get("/v1/workflows")).json()["data"] == []
        assert (await other.get("/v1/workflows/runs")).json()["data"] == []


async def test_openapi_and_unknown_routes(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    assert "/v1/workflows/{workflow_id}/run" in document["paths"]
    assert "Api-Key" in str(document["components"]["securitySchemes"])
    assert (await api.get("/docs")).status_code == 200
    unknown = await api.get("/v1/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found"
    wrong = await api.delete("/v1/workflows")
    assert wrong.status_code == 405 and "error" in wrong.json()


async def test_malformed_bodies_are_4xx_with_the_error_body(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, linear_definition())
    cases = [
        ("/v1/workflows", b"{not json", "application/json"),
        ("/v1/workflows", b"[]", "application/json"),
        ("/v1/workflows", b"null", "application/json"),
        ("/v1/workflows", b'"text"', "application/json"),
        ("/v1/workflows", b"\xff\xfe\xfd", "application/json"),
        ("/v1/workflows", b"name=x", "application/x-www-form-urlencoded"),
        ("/v1/workflows", b"[" * 5000 + b"]" * 5000, "application/json"),
        (
            f"/v1/workflows/{workflow_id}/run",
            b'{"json_inputs": {"meta": 1e999999}}',
            "application/json",
        ),
        (f"/v1/workflows/{workflow_id}/run", b'{"documents": {"x": 5}}', "application/json"),
        (f"/v1/workflows/{workflow_id}/run", b'{"config_source": "future"}', "application/json"),
        (
            "/v1/workflows/runs/run_00000000000000000000000000000000/cancel",
            b"[]",
            "application/json",
        ),
        ("/v1/files", b"no multipart here", "multipart/form-data; boundary=zzz"),
    ]
    for path, body, content_type in cases:
        response = await api.post(path, content=body, headers={"content-type": content_type})
        assert 400 <= response.status_code < 500, (
            path,
            body[:40],
            response.status_code,
            response.text,
        )
        assert "Traceback" not in response.text
        error = response.json()["error"]
        assert set(error) == {"type", "code", "message", "details"}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=6),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    ["name", "definition", "documents", "json_inputs", "text_inputs", "content"]
                ),
                c,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
async def test_fuzzed_bodies_never_500(api: httpx.AsyncClient, body: object) -> None:
    for path in ("/v1/workflows", "/v1/workflows/validate", "/v1/workflows/wf_x/run"):
        response = await api.post(path, json=body)
        assert response.status_code < 500, (path, body, response.text)


# ---------------------------------------------------------------- keys


def _error(response: httpx.Response) -> dict:
    assert "Traceback" not in response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"type", "code", "message", "details"}
    assert isinstance(error["message"], str) and isinstance(error["details"], dict)
    return error


def _concrete(path: str) -> str:
    return (
        path.replace("{workflow_id}", "wf_x")
        .replace("{run_id}", "run_x")
        .replace("{node_id}", "n")
        .replace("{file_id}", "file_x")
    )


async def test_every_v1_operation_refuses_callers_without_a_valid_key(app: FastAPI) -> None:
    document = app.openapi()
    operations = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        if path.startswith("/v1/")
        for method in item
    ]
    assert len(operations) >= 20
    async with client_for(app, None) as anonymous:
        for method, path in operations:
            for headers in (
                {},
                {"Api-Key": ""},
                {"Api-Key": "nope"},
                {"Api-Key": ORG_A_KEY + " "},
                {"Api-Key": ORG_A_KEY[:-1]},
                {"Authorization": "Bearer nope"},
                {"Authorization": f"Basic {ORG_A_KEY}"},
                {"Authorization": ORG_A_KEY},
            ):
                # A body that would not validate: the key is checked first regardless.
                response = await anonymous.request(
                    method, _concrete(path), headers=headers, content=b"{", timeout=5
                )
                assert response.status_code == 401, (method, path, headers, response.text)
                error = _error(response)
                assert error["type"] == "authentication", (method, path, headers)
                assert ORG_A_KEY not in response.text


async def test_both_ways_of_sending_a_key(app: FastAPI) -> None:
    async with client_for(app, None) as anonymous:
        for headers in (
            {"Api-Key": ORG_A_KEY},
            {"api-key": ORG_A_KEY},
            {"Authorization": f"Bearer {ORG_A_KEY}"},
        ):
            created = await anonymous.post(
                "/v1/workflows",
                json={"name": "via " + next(iter(headers)), "definition": linear_definition()},
                headers=headers,
            )
            assert created.status_code == 201, headers
            assert created.json()["organization_id"].startswith("org_a_")
        as_b = await anonymous.get("/v1/workflows", headers={"Api-Key": ORG_B_KEY})
        assert as_b.status_code == 200 and as_b.json()["data"] == []
        as_a = await anonymous.get(
            "/v1/workflows", headers={"Authorization": f"Bearer {ORG_A_KEY}"}
        )
        assert len(as_a.json()["data"]) == 3
        # A key in the query string is not a way of authenticating.
        query = await anonymous.get("/v1/workflows", params={"api_key": ORG_A_KEY})
        assert query.status_code == 401


# ---------------------------------------------------------------- organizations


async def test_organizations_see_only_their_own(app: FastAPI, api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, linear_definition(), name="A's")
    snapshot_id = (await api.get(f"/v1/workflows/{workflow_id}")).json()["published_snapshot_id"]
    file_id = (await api.post("/v1/files", files={"file": ("a.txt", b"a", "text/plain")})).json()[
        "id"
    ]
    async with client_for(app, ORG_B_KEY) as other:
        theirs = await other.post(
            "/v1/workflows", json={"name": "B's", "definition": linear_definition()}
        )
        assert theirs.status_code == 201 and theirs.json()["organization_id"].startswith("org_b_")
        for method, path, body in (
            ("PUT", f"/v1/workflows/{workflow_id}/draft", {"definition": linear_definition()}),
            ("POST", f"/v1/workflows/{workflow_id}/publish", None),
            ("GET", f"/v1/workflows/{workflow_id}/snapshots", None),
            ("GET", f"/v1/workflows/{workflow_id}", None),
            ("GET", f"/v1/files/{file_id}/content", None),
        ):
            response = await other.request(method, path, json=body)
            # Exactly like an id that exists nowhere, apart from the id in the message.
            missing_path = path.replace(workflow_id, "wf_nowhere").replace(file_id, "file_nowhere")
            missing = await other.request(method, missing_path, json=body)
            assert response.status_code == missing.status_code == 404, (method, path)
            hidden, absent = _error(response), _error(missing)
            assert hidden["type"] == absent["type"] == "not_found"
            assert hidden["code"] == absent["code"]
            assert (
                hidden["message"]
                .replace(workflow_id, "wf_nowhere")
                .replace(file_id, "file_nowhere")
                == absent["message"]
            )
            assert snapshot_id not in response.text
        b_list = (await other.get("/v1/workflows")).json()["data"]
        assert [w["id"] for w in b_list] == [theirs.json()["id"]]
        b_runs = await other.get("/v1/workflows/runs", params={"workflow_id": workflow_id})
        assert b_runs.status_code in (200, 404) and workflow_id not in b_runs.text
        b_reviews = await other.get("/v1/reviews", params={"status": "pending"})
        assert b_reviews.status_code == 200 and b_reviews.json()["data"] == []
    # A's draft and snapshots are unchanged by B's attempts, and A does not see B's workflow.
    read = (await api.get(f"/v1/workflows/{workflow_id}")).json()
    assert read["published_snapshot_id"] == snapshot_id
    snapshots = (await api.get(f"/v1/workflows/{workflow_id}/snapshots")).json()["data"]
    assert [s["version"] for s in snapshots] == [1]
    a_list = (await api.get("/v1/workflows")).json()["data"]
    assert [w["id"] for w in a_list] == [workflow_id]


# ---------------------------------------------------------------- unauthenticated surface


async def test_healthz_and_openapi(app: FastAPI) -> None:
    async with client_for(app, None) as anonymous:
        health = await anonymous.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "temporal": "ok"}
        document = (await anonymous.get("/openapi.json")).json()
    expected = {
        ("post", "/v1/workflows"),
        ("get", "/v1/workflows"),
        ("get", "/v1/workflows/{workflow_id}"),
        ("put", "/v1/workflows/{workflow_id}/draft"),
        ("post", "/v1/workflows/{workflow_id}/publish"),
        ("get", "/v1/workflows/{workflow_id}/snapshots"),
        ("post", "/v1/workflows/validate"),
        ("post", "/v1/files"),
        ("get", "/v1/files/{file_id}"),
        ("get", "/v1/files/{file_id}/content"),
        ("post", "/v1/workflows/{workflow_id}/run"),
        ("get", "/v1/workflows/runs/{run_id}"),
        ("get", "/v1/workflows/runs"),
        ("get", "/v1/workflows/runs/{run_id}/steps"),
        ("get", "/v1/workflows/runs/{run_id}/events"),
        ("post", "/v1/workflows/runs/{run_id}/cancel"),
        ("post", "/v1/workflows/runs/{run_id}/restart"),
        ("post", "/v1/workflows/runs/{run_id}/rerun"),
        ("post", "/v1/workflows/runs/{run_id}/retry"),
        ("get", "/v1/workflows/runs/{run_id}/retry-plan"),
        ("post", "/v1/workflows/runs/{run_id}/reviews/{node_id}"),
        ("get", "/v1/reviews"),
        ("get", "/healthz"),
    }
    listed = {(method, path) for path, item in document["paths"].items() for method in item}
    assert expected <= listed, expected - listed
    schemes = document["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "Api-Key"} in schemes.values()
    assert any(s.get("scheme", "").lower() == "bearer" for s in schemes.values())
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith("/v1/"):
                assert operation.get("security"), (method, path)


async def test_unknown_routes_and_methods(api: httpx.AsyncClient) -> None:
    for path in ("/nothing", "/v1", "/v1/", "/v2/workflows", "/v1/files/a/b/c", "/v1/nothing"):
        response = await api.get(path)
        assert response.status_code == 404, path
        assert _error(response)["type"] == "not_found"
    for method, path in (
        ("DELETE", "/v1/workflows"),
        ("PATCH", "/v1/files"),
        ("PUT", "/v1/workflows/validate"),
        ("DELETE", "/v1/files/file_x"),
        ("POST", "/v1/workflows/wf_x/snapshots"),
        ("GET", "/v1/workflows/wf_x/publish"),
        ("POST", "/healthz"),
    ):
        response = await api.request(method, path)
        assert response.status_code == 405, (method, path)
        assert _error(response)["type"] == "invalid_request"


# ---------------------------------------------------------------- malformed requests


def _nested(depth: int) -> bytes:
    return b'{"k":' * depth + b"1" + b"}" * depth


async def test_more_malformed_bodies_are_4xx(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, linear_definition())
    run_path = f"/v1/workflows/{workflow_id}/run"
    definition = json.dumps(linear_definition()).encode()
    workflow_body = b'{"name": "w", "definition": ' + definition + b"}"
    json_type = "application/json"
    cases = [
        ("POST", "/v1/workflows", b"", json_type),
        ("POST", "/v1/workflows", workflow_body, "text/plain"),
        ("POST", "/v1/workflows", workflow_body, ""),
        ("POST", "/v1/workflows", workflow_body + b"trailing", json_type),
        ("POST", "/v1/workflows", b"\xef\xbb\xbf" + workflow_body[:-1], json_type),
        ("POST", "/v1/workflows", '{"name": "café"}'.encode("latin-1"), json_type),
        ("POST", "/v1/workflows", workflow_body.replace(b'"w"', b'"\\ud800"'), json_type),
        ("POST", "/v1/workflows", workflow_body.replace(b'"w"', b"9" * 5000), json_type),
        ("POST", "/v1/workflows", b'{"name": "w", "definition": ' + _nested(200) + b"}", json_type),
        (
            "POST",
            "/v1/workflows",
            b'{"name": "w", "definition": ' + _nested(5000) + b"}",
            json_type,
        ),
        ("POST", "/v1/workflows", b'{"name": "w", "definition": {"vars": NaN}}', json_type),
        ("POST", "/v1/workflows", b"1e999", json_type),
        ("POST", "/v1/workflows", b"true", json_type),
        ("PUT", f"/v1/workflows/{workflow_id}/draft", b"[]", json_type),
        ("PUT", f"/v1/workflows/{workflow_id}/draft", b'{"definition": null}', json_type),
        (
            "PUT",
            f"/v1/workflows/{workflow_id}/draft",
            b'{"definition": ' + _nested(300) + b"}",
            json_type,
        ),
        ("POST", "/v1/workflows/validate", b"null", json_type),
        ("POST", "/v1/workflows/validate", b"{}", json_type),
        ("POST", run_path, b"[]", json_type),
        ("POST", run_path, b'"run it"', json_type),
        ("POST", run_path, b'{"json_inputs": {"meta": ' + _nested(200) + b"}}", json_type),
        ("POST", run_path, b'{"json_inputs": {"meta": {"customer_id": Infinity}}}', json_type),
        ("POST", run_path, b'{"json_inputs": {"meta": 1e999}}', json_type),
        ("POST", run_path, b'{"json_inputs": []}', json_type),
        ("POST", run_path, b'{"text_inputs": {"note": 5}}', json_type),
        ("POST", run_path, b'{"documents": {"d": {"file_id": 5}}}', json_type),
        ("POST", run_path, b'{"command_id": ""}', json_type),
        ("POST", run_path, b'{"command_id": "' + b"c" * 201 + b'"}', json_type),
        ("POST", run_path, b"x=1", "application/x-www-form-urlencoded"),
        (
            "POST",
            "/v1/workflows/runs/run_x/reviews/n",
            b'{"decision": "approve", "data": ' + _nested(200) + b"}",
            json_type,
        ),
        ("POST", "/v1/workflows/runs/run_x/reviews/n", b'{"decision": "maybe"}', json_type),
        (
            "POST",
            "/v1/workflows/runs/run_x/retry",
            b'{"from": "start", "json_inputs": {"meta": ' + _nested(200) + b"}}",
            json_type,
        ),
        ("POST", "/v1/workflows/runs/run_x/retry", b'{"from": "yesterday"}', json_type),
        ("POST", "/v1/workflows/runs/run_x/restart", b'{"config_source": 1}', json_type),
    ]
    for method, path, body, content_type in cases:
        response = await api.request(
            method, path, content=body, headers={"content-type": content_type}
        )
        assert 400 <= response.status_code < 500, (
            method,
            path,
            body[:60],
            response.status_code,
            response.text[:300],
        )
        error = _error(response)
        assert error["type"] == "invalid_request", (path, body[:60], error)
    # None of it created anything.
    assert len((await api.get("/v1/workflows")).json()["data"]) == 1


async def test_bad_query_parameters_are_422(api: httpx.AsyncClient) -> None:
    for path, params in (
        ("/v1/workflows", {"limit": "0"}),
        ("/v1/workflows", {"limit": "201"}),
        ("/v1/workflows", {"cursor": "%%%"}),
        ("/v1/workflows/runs", {"limit": "0"}),
        ("/v1/workflows/runs", {"limit": "many"}),
        ("/v1/workflows/runs", {"cursor": "garbage!!"}),
        ("/v1/workflows/runs", {"status": "exploded"}),
        ("/v1/reviews", {"limit": "500"}),
    ):
        response = await api.get(path, params=params)
        assert response.status_code == 422, (path, params, response.text[:300])
        assert _error(response)["type"] == "invalid_request"


async def test_big_but_finite_numbers_travel_through_a_run(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, linear_definition())
    for value in (10**30, -(2**70), 1.7e308, 5e-324):
        started = await api.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"json_inputs": {"meta": {"customer_id": value}}, "text_inputs": {"note": "n"}},
        )
        assert started.status_code == 202, started.text
        run = await wait_for_run(api, started.json()["id"])
        assert run["status"] == "completed", run
        assert run["final_outputs"] == {"customer": value}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "json_inputs": st.dictionaries(
                st.sampled_from(["meta", "note", "shape", "ghost"]),
                st.recursive(
                    st.none() | st.integers() | st.floats() | st.text(max_size=4),
                    lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=3), c),
                    max_leaves=6,
                ),
                max_size=2,
            ),
            "text_inputs": st.dictionaries(
                st.sampled_from(["note", "meta", "x"]), st.text(max_size=5) | st.integers()
            ),
            "documents": st.dictionaries(
                st.sampled_from(["meta", "doc"]),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "file_id": st.text(max_size=6),
                        "filename": st.text(max_size=4),
                        "mime_type": st.text(max_size=4),
                        "content": st.text(max_size=8),
                    },
                ),
                max_size=1,
            ),
            "config_source": st.sampled_from(["published", "draft", "other", None]),
            "command_id": st.none() | st.text(max_size=5),
        },
    )
)
async def test_fuzzed_run_requests_on_a_real_workflow_never_500(
    api: httpx.AsyncClient, real_workflow: str, body: dict
) -> None:
    # Some valid bodies start a run; they finish quickly and nothing waits on them.
    response = await api.post(
        f"/v1/workflows/{real_workflow}/run",
        content=json.dumps(body, allow_nan=True),
        headers={"content-type": "application/json"},
    )
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        _error(response)


async def test_openapi_lists_every_operations_error_responses(app: FastAPI) -> None:
    async with client_for(app, None) as anonymous:
        document = (await anonymous.get("/openapi.json")).json()
    error_schema = document["components"]["schemas"]["ErrorBody"]
    assert "error" in error_schema["properties"]
    for path, item in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            for status in ("401", "403", "404", "409", "413", "422", "429", "503"):
                response = operation["responses"].get(status)
                assert response is not None, (method, path, status)
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "application/xml"]
)
async def test_a_json_endpoint_says_when_the_body_is_not_json(
    api: httpx.AsyncClient, real_workflow: str, content_type: str
) -> None:
    response = await api.post(
        f"/v1/workflows/{real_workflow}/run",
        content=b'{"json_inputs": {}}',
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type" and error["type"] == "invalid_request"
    assert content_type in error["message"] and "application/json" in error["message"]
    # JSON under a structured-syntax type is JSON.
    problem = await api.post(
        f"/v1/workflows/{real_workflow}/run",
        content=b'{"json_inputs": {}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert problem.status_code == 422, problem.text
    assert problem.json()["error"]["code"] == "invalid_inputs"


async def test_every_endpoint_needing_temporal_answers_503_when_it_is_down(
    app: FastAPI, api: httpx.AsyncClient, real_workflow: str
) -> None:
    unreachable = await connect(Settings(temporal_address="127.0.0.1:1", api_keys="x:y"), lazy=True)
    app.dependency_overrides[get_temporal_client] = lambda: unreachable
    run = "run_" + "0" * 32
    calls = [
        ("GET", "/v1/workflows/runs", None),
        ("GET", f"/v1/workflows/runs/{run}", None),
        ("GET", f"/v1/workflows/runs/{run}/steps", None),
        ("GET", f"/v1/workflows/runs/{run}/events", None),
        ("GET", f"/v1/workflows/runs/{run}/retry-plan", None),
        ("GET", "/v1/reviews", None),
        (
            "POST",
            f"/v1/workflows/{real_workflow}/run",
            {"json_inputs": {"meta": {}}, "text_inputs": {"note": "n"}},
        ),
        ("POST", f"/v1/workflows/runs/{run}/cancel", None),
        ("POST", f"/v1/workflows/runs/{run}/restart", None),
        ("POST", f"/v1/workflows/runs/{run}/rerun", None),
        ("POST", f"/v1/workflows/runs/{run}/retry", None),
        ("POST", f"/v1/workflows/runs/{run}/reviews/review", {"decision": "approve"}),
    ]
    for method, path, body in calls:
        response = await api.request(method, path, json=body)
        assert response.status_code == 503, (method, path, response.text)
        error = response.json()["error"]
        assert error["code"] == "temporal_unavailable" and error["type"] == "server_error"
    health = await api.get("/healthz")
    assert health.status_code == 503 and health.json()["temporal"] == "unreachable"


async def test_an_error_echoing_a_lone_surrogate_still_renders(app: FastAPI) -> None:
    """Errors echo what the caller sent (an id, a key), and JSON can escape a lone surrogate
    that UTF-8 cannot encode: the error body shows U+FFFD instead of failing to render (a
    start naming file "\\ud800" did, before run inputs were checked for them: a 500)."""

    async def echoes() -> None:
        raise invalid("invalid_thing", "no thing \ud800", [{"loc": ["\udfff"], "message": "?"}])

    app.add_api_route("/v1/echo", echoes, methods=["GET"])
    async with client_for(app, ORG_A_KEY) as api:
        response = await api.get("/v1/echo")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["message"] == "no thing \ufffd"
    assert error["details"]["errors"] == [{"loc": ["\ufffd"], "message": "?"}]
