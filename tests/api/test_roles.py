"""Roles on API keys (API.md "Access control"): every route with every role, against the one
table of what each role may do (runlane/permissions.py), and the README's table checked
against the same data."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.deps import declared_permissions
from runlane.permissions import ACCESS, PUBLIC, Permission, role_table
from runlane.secret_box import generate_key
from runlane.settings import ROLES, ApiKeyGrant, Settings, parse_api_keys
from tests.api.helpers import create_published, review_definition, wait_for_run
from tests.conftest import ORG_A_KEY
from tests.test_secrets_startup import API, start

README = Path(__file__).parents[2] / "README.md"
# One key per role in organization A; the reviewer's subject is who the reviews are for.
KEYS = {
    "admin": ORG_A_KEY,
    "runner": "key_runner",
    "reviewer": "key_reviewer",
    "viewer": "key_viewer",
}
REVIEWER = "ana@example.com"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    org_a = settings.key_to_organization()[ORG_A_KEY]
    extra = ",".join(
        f"{KEYS[role]}:{org_a}:{role}" + (f":{REVIEWER}" if role == "reviewer" else "")
        for role in ("runner", "reviewer", "viewer")
    )
    return settings.model_copy(update={"api_keys": f"{settings.api_keys},{extra}"})


@asynccontextmanager
async def as_role(app: FastAPI, role: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runlane.test",
        headers={"Api-Key": KEYS[role]},
    ) as http:
        yield http


def test_keys_carry_a_role_and_a_subject() -> None:
    keys = parse_api_keys(
        "k1:org_a, k2:org_a:runner ,k3:org_a:reviewer:ana@example.com,k4:org_b:viewer,"
        "k5:org_b:reviewer:urn:team:x"
    )
    assert keys == {
        "k1": ApiKeyGrant("org_a", "admin", None),
        "k2": ApiKeyGrant("org_a", "runner", None),
        "k3": ApiKeyGrant("org_a", "reviewer", "ana@example.com"),
        "k4": ApiKeyGrant("org_b", "viewer", None),
        "k5": ApiKeyGrant("org_b", "reviewer", "urn:team:x"),
    }
    assert Settings(api_keys="k1:org_a,k2:org_b:viewer").key_to_organization() == {
        "k1": "org_a",
        "k2": "org_b",
    }


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("secret_key:org_a:owner", "unknown role 'owner'"),
        ("secret_key:org_a:Admin", "unknown role 'Admin'"),
        ("secret_key:org_a::ana", "entry 1 is not"),
        ("k1:org_a,secret_key:", "entry 2 is not"),
        ("secret_key:org_a:reviewer:", "entry 1 is not"),
    ],
)
def test_a_bad_entry_is_refused_naming_it_but_not_its_key(raw: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as refused:
        Settings(api_keys=raw).api_key_grants()
    assert "secret_key" not in str(refused.value)


def test_every_route_declares_a_permission_or_is_public(app: FastAPI) -> None:
    routes = list(declared_permissions(app))
    undeclared = [
        (method, path)
        for method, path, permission in routes
        if permission is None and (method, path) not in PUBLIC
    ]
    assert undeclared == [], "declare dependencies=[require(Permission.X)] on these routes"
    answered = {(method, path) for method, path, _ in routes}
    assert set(PUBLIC) <= answered, "PUBLIC names a route the API no longer answers"
    assert all(p is None for m, p_, p in routes if (m, p_) in PUBLIC)
    # Every /v1 route takes a key, so each declares what it needs.
    assert all(p is not None for _, path, p in routes if path.startswith("/v1/"))
    assert set(ACCESS) == set(Permission)
    assert all(set(grants) == set(ROLES) for grants in ACCESS.values())


def test_the_readme_table_is_the_one_in_code(app: FastAPI) -> None:
    table = role_table(declared_permissions(app))
    assert table in README.read_text(), (
        f"the README's table differs from the code's; it is:\n{table}"
    )


def concrete(path: str, run_id: str) -> str:
    return re.sub(
        r"\{(\w+)\}",
        lambda m: {"run_id": run_id, "node_id": "review", "name": "missing"}.get(
            m.group(1), f"{m.group(1).split('_')[0]}_missing"
        ),
        path,
    )


# The ASGI transport answers once the app's response is complete: a run's event stream, open
# for as long as the run waits, is one still streaming after this long (a refusal is at once).
STREAMING = 0


async def call(http: httpx.AsyncClient, method: str, path: str) -> tuple[int, dict[str, Any]]:
    """One call as a user would make it, with a body that may not validate: the permission
    is checked before the body is."""
    body = {} if method in ("POST", "PUT", "PATCH") else None
    try:
        response = await asyncio.wait_for(http.request(method, path, json=body), timeout=10)
    except TimeoutError:
        assert path.endswith("/events"), path
        return STREAMING, {}
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.status_code, response.json() if response.content else {}
    return response.status_code, {}


async def test_every_role_on_every_route(app: FastAPI, api: httpx.AsyncClient) -> None:
    """403 `type: permission` exactly where the table forbids; anything else (200, 404, 422)
    where it allows, which shows the permission passed. A reviewer reads a run waiting for it
    and is refused one that is not."""
    workflow_id = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 1}}}
    )
    assert started.status_code == 202, started.text
    waiting = started.json()["id"]
    await wait_for_run(api, waiting, until={"waiting_for_human"})
    other = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 2}}}
    )
    not_waiting = other.json()["id"]
    await api.post(f"/v1/workflows/runs/{not_waiting}/cancel")
    await wait_for_run(api, not_waiting, until={"cancelled"})

    routes = [(m, p, perm) for m, p, perm in declared_permissions(app) if perm is not None]
    assert len(routes) >= 45
    checked = 0
    for role in ROLES:
        async with as_role(app, role) as http:
            for method, path, permission in routes:
                access = ACCESS[permission][role]
                # Writes to the waiting run would change it for the calls after them.
                targets = [waiting, not_waiting] if access == "waiting" else ["run_missing"]
                for run_id in targets:
                    status, body = await call(http, method, concrete(path, run_id))
                    allowed = access == "yes" or (access == "waiting" and run_id == waiting)
                    where = (role, method, path, run_id, status, body)
                    if allowed:
                        assert status != 403, where
                        assert status < 500, where
                    else:
                        assert status == 403, where
                        assert body["error"]["type"] == "permission", where
                    checked += 1
    assert checked >= len(routes) * len(ROLES)


async def test_what_a_runner_and_a_viewer_see(app: FastAPI, api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, review_definition())
    async with as_role(app, "runner") as runner, as_role(app, "viewer") as viewer:
        started = await runner.post(
            f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {"amount": 5}}}
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        run = await wait_for_run(viewer, run_id, until={"waiting_for_human"})
        assert run["id"] == run_id
        upload = await runner.post("/v1/files", files={"file": ("a.txt", b"hi", "text/plain")})
        assert upload.status_code == 201, upload.text
        assert (await viewer.get(f"/v1/files/{upload.json()['id']}/content")).content == b"hi"

        refused = await viewer.post(f"/v1/workflows/runs/{run_id}/cancel", json={})
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["type"] == "permission" and error["code"] == "forbidden"
        assert "viewer" in error["message"]
        assert (await runner.post("/v1/workflows", json={})).status_code == 403
        decided = await runner.post(
            f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "approve"}
        )
        assert decided.status_code == 403
        # Nothing the refused calls asked for happened.
        assert (await viewer.get(f"/v1/workflows/runs/{run_id}")).json()["status"] == (
            "waiting_for_human"
        )
        assert (await runner.post(f"/v1/workflows/runs/{run_id}/cancel")).status_code == 202


async def test_openapi_documents_403(app: FastAPI) -> None:
    document = app.openapi()
    for path, item in document["paths"].items():
        if path.startswith("/v1/"):
            for method, operation in item.items():
                assert "403" in operation["responses"], (method, path)


def test_the_api_refuses_to_start_with_an_unknown_role(tmp_path: Path) -> None:
    refused = start(
        API,
        tmp_path,
        RUNLANE_API_KEYS="rl_secret_key:org_a:owner",
        RUNLANE_SECRETS_KEY=generate_key(),
    )
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "unknown role 'owner'" in output, output
    assert "rl_secret_key" not in output
