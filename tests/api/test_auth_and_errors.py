"""Keys, organizations, and the error body: never a 500, never a stack trace."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import create_published, linear_definition, wait_for_run
from tests.conftest import ORG_A_KEY, ORG_B_KEY


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
