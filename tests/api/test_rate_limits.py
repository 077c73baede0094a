"""Per-organization rate limits: 429 with Retry-After, one limit shared by every replica."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from api.deps import get_api_settings, get_database
from api.main import create_app
from runlane.secret_box import generate_key
from runlane.settings import Settings
from store.db import Database
from store.migrate import upgrade_to_head

KEY_A, KEY_B = "limits_key_a", "limits_key_b"


@pytest.fixture
def limited(tmp_path: Path) -> Settings:
    # A bucket of 3 that refills one token every 100 s: nothing refills during a test.
    return Settings(
        api_keys=f"{KEY_A}:org_limits_a,{KEY_B}:org_limits_b",
        data_dir=tmp_path / "data",
        secrets_key=SecretStr(generate_key()),
        rate_limit_per_s=0.01,
        rate_limit_burst=3,
    )


@pytest.fixture
async def replicas(limited: Settings) -> AsyncIterator[list[FastAPI]]:
    """Two API processes' apps over one database, each with its own engine, as two replicas
    behind a load balancer would run."""
    databases = [Database(limited.resolved_database_url) for _ in range(2)]
    await upgrade_to_head(limited.resolved_database_url)
    apps = []
    for database in databases:
        app = create_app()
        app.dependency_overrides[get_api_settings] = lambda: limited
        app.dependency_overrides[get_database] = provider(database)
        apps.append(app)
    try:
        yield apps
    finally:
        for database in databases:
            await database.dispose()


def provider(database: Database) -> Callable[[], Database]:
    return lambda: database


def client_for(app: FastAPI, key: str | None) -> httpx.AsyncClient:
    headers = {"Api-Key": key} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
    )


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["type"] == "rate_limited" and error["code"] == "rate_limited"
    # Whole seconds until a token is back: one token every 100 s at most 100 s away.
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 100
    assert error["details"]["retry_after_s"] == retry_after


async def test_over_the_burst_is_429_with_retry_after(replicas: list[FastAPI]) -> None:
    app = replicas[0]
    async with client_for(app, KEY_A) as org_a, client_for(app, None) as anonymous:
        # Without a valid key nothing is spent: 401 as before, however many.
        for _ in range(5):
            assert (await anonymous.get("/v1/workflows")).status_code == 401
            bad = await anonymous.get("/v1/workflows", headers={"Api-Key": "nope"})
            assert bad.status_code == 401
        for _ in range(3):
            assert (await org_a.get("/v1/workflows")).status_code == 200
        assert_rate_limited(await org_a.get("/v1/workflows"))
        # Every API-key route spends the same bucket, writes included (refused before reading).
        assert_rate_limited(await org_a.post("/v1/workflows", json={"name": "x"}))
        assert_rate_limited(await org_a.get("/v1/node-types"))
        # Unauthenticated routes are not limited.
        assert (await anonymous.get("/openapi.json")).status_code == 200
    # Another organization has its own limit.
    async with client_for(app, KEY_B) as org_b:
        assert (await org_b.get("/v1/workflows")).status_code == 200


async def test_replicas_share_one_limit(replicas: list[FastAPI]) -> None:
    first, second = replicas
    async with client_for(first, KEY_A) as via_first, client_for(second, KEY_A) as via_second:
        assert (await via_first.get("/v1/workflows")).status_code == 200
        assert (await via_second.get("/v1/workflows")).status_code == 200
        assert (await via_first.get("/v1/workflows")).status_code == 200
        # The organization's third request spent its burst, whichever replica took it.
        assert_rate_limited(await via_second.get("/v1/workflows"))
        assert_rate_limited(await via_first.get("/v1/workflows"))
