"""`/v1/secrets`: create, replace, list (names only), delete; per organization; values never
answered back, and stored only as ciphertext bound to their organization and name."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from runlane.secret_box import Sealed, SecretDecryptError
from runlane.settings import Settings
from store.db import Database
from store.tables import SecretRow


def canary() -> str:
    return f"canary-{uuid.uuid4()}"


async def test_put_creates_then_replaces_and_never_answers_the_value(
    api: httpx.AsyncClient,
) -> None:
    first, second = canary(), canary()
    created = await api.put("/v1/secrets/stripe_key", json={"value": first})
    assert created.status_code == 200, created.text
    body = created.json()
    assert set(body) == {"name", "created_at", "updated_at"}
    assert body["name"] == "stripe_key"
    assert body["created_at"] == body["updated_at"]

    replaced = await api.put("/v1/secrets/stripe_key", json={"value": second})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["created_at"] == body["created_at"]
    assert replaced.json()["updated_at"] > body["updated_at"]

    read = await api.get("/v1/secrets/stripe_key")
    listed = await api.get("/v1/secrets")
    assert read.status_code == 200 and listed.status_code == 200
    assert read.json() == replaced.json()
    assert [s["name"] for s in listed.json()["data"]] == ["stripe_key"]
    for response in (created, replaced, read, listed):
        assert first not in response.text and second not in response.text

    deleted = await api.delete("/v1/secrets/stripe_key")
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await api.get("/v1/secrets/stripe_key")).status_code == 404
    again = await api.delete("/v1/secrets/stripe_key")
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "secret_not_found"
    assert (await api.get("/v1/secrets")).json()["data"] == []


@pytest.mark.parametrize(
    "name", ["a" * 65, "with-dash", "dot.ted", "space d", "caf\u00e9", "%24secrets"]
)
async def test_names_outside_the_pattern_are_refused(api: httpx.AsyncClient, name: str) -> None:
    for response in (
        await api.put(f"/v1/secrets/{name}", json={"value": "v"}),
        await api.get(f"/v1/secrets/{name}"),
        await api.delete(f"/v1/secrets/{name}"),
    ):
        assert response.status_code == 422, (name, response.text)
        assert response.json()["error"]["code"] == "validation_failed"


async def test_names_of_the_pattern_are_taken_case_sensitively(api: httpx.AsyncClient) -> None:
    for name in ("a" * 64, "A", "a", "_", "Token_2"):
        response = await api.put(f"/v1/secrets/{name}", json={"value": "v"})
        assert response.status_code == 200, (name, response.text)
    listed = await api.get("/v1/secrets", params={"order": "asc"})
    assert [s["name"] for s in listed.json()["data"]] == ["a" * 64, "A", "a", "_", "Token_2"]


async def test_bad_values_are_refused_without_echoing_them(api: httpx.AsyncClient) -> None:
    value = canary()
    for body in (
        {},
        {"value": ""},
        {"value": 42},
        {"value": None},
        {"value": value, "extra": value},
        {"value": value * 2000},  # over 65,536 characters
    ):
        response = await api.put("/v1/secrets/token", json=body)
        assert response.status_code == 422, (body, response.text)
        assert value not in response.text
    # A lone surrogate is not text any store or request can carry.
    lone = await api.put(
        "/v1/secrets/token",
        content=b'{"value": "\\ud800' + value.encode() + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert lone.status_code == 422, lone.text
    assert value not in lone.text
    form = await api.put("/v1/secrets/token", data={"value": value})
    assert form.status_code == 415
    assert (await api.get("/v1/secrets")).json()["data"] == []


async def test_values_at_rest_are_ciphertext_bound_to_organization_and_name(
    api: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    value = canary()
    assert (await api.put("/v1/secrets/token", json={"value": value})).status_code == 200
    async with database.session() as session:
        [row] = (await session.scalars(select(SecretRow))).all()
    assert value.encode() not in row.ciphertext
    assert row.key_id == settings.secret_keys().current_id
    keys = settings.secret_keys()
    sealed = Sealed(row.key_id, row.ciphertext)
    assert keys.open(row.organization_id, "token", sealed) == value
    # Copied under another name or into another organization, it no longer decrypts.
    with pytest.raises(SecretDecryptError):
        keys.open(row.organization_id, "other", sealed)
    with pytest.raises(SecretDecryptError):
        keys.open(row.organization_id + "x", "token", sealed)


async def test_another_organizations_secret_is_not_found(
    api: httpx.AsyncClient, org_b: httpx.AsyncClient
) -> None:
    assert (await api.put("/v1/secrets/token", json={"value": canary()})).status_code == 200

    assert (await org_b.get("/v1/secrets")).json()["data"] == []
    for response in (await org_b.get("/v1/secrets/token"), await org_b.delete("/v1/secrets/token")):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "secret_not_found"
    # Its own secret of the same name is another secret.
    assert (await org_b.put("/v1/secrets/token", json={"value": canary()})).status_code == 200
    assert (await org_b.delete("/v1/secrets/token")).status_code == 204
    assert (await api.get("/v1/secrets/token")).status_code == 200


async def test_list_pages_by_creation_in_both_orders(api: httpx.AsyncClient) -> None:
    names = [f"s{index}" for index in range(5)]
    for name in names:
        assert (await api.put(f"/v1/secrets/{name}", json={"value": "v"})).status_code == 200
    # Replacing a value does not move it: the list is by creation time.
    assert (await api.put("/v1/secrets/s0", json={"value": "w"})).status_code == 200

    for order, expected in (("desc", names[::-1]), ("asc", names)):
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, "order": order, **({"cursor": cursor} if cursor else {})}
            page = (await api.get("/v1/secrets", params=params)).json()
            seen += [s["name"] for s in page["data"]]
            assert page["list_metadata"]["after"] == page["next_cursor"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, order

    bad = await api.get("/v1/secrets", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_cursor"
    first = (await api.get("/v1/secrets", params={"limit": 2})).json()["next_cursor"]
    mismatch = await api.get("/v1/secrets", params={"cursor": first, "order": "asc"})
    assert mismatch.status_code == 422


async def test_secrets_need_an_api_key(app: FastAPI) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://runlane.test"
    ) as anonymous:
        assert (await anonymous.get("/v1/secrets")).status_code == 401
        assert (await anonymous.put("/v1/secrets/x", json={"value": "v"})).status_code == 401
        assert (await anonymous.delete("/v1/secrets/x")).status_code == 401
