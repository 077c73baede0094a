"""Secrets in the store: per organization, values only as ciphertext, one row per name
whoever writes it at once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from runlane.secret_box import SecretDecryptError, generate_key, parse_secret_keys
from store.db import Database
from store.secrets import SecretRepository
from store.tables import SecretRow

KEYS = parse_secret_keys(generate_key())


@pytest.fixture
def secrets(db: Database) -> SecretRepository:
    return SecretRepository(db, KEYS)


async def test_put_get_values_delete(secrets: SecretRepository, db: Database) -> None:
    created = await secrets.put("org_a", "token", "v1")
    replaced = await secrets.put("org_a", "token", "v2")
    assert replaced.created_at == created.created_at < replaced.updated_at
    assert await secrets.get("org_a", "token") == replaced
    assert await secrets.values("org_a", ["token", "missing"]) == {"token": "v2"}
    async with db.session() as session:
        [row] = (await session.scalars(select(SecretRow))).all()
    assert b"v2" not in row.ciphertext and row.key_id == KEYS.current_id

    assert await secrets.delete("org_a", "token")
    assert not await secrets.delete("org_a", "token")
    assert await secrets.get("org_a", "token") is None
    assert await secrets.values("org_a", ["token"]) == {}


async def test_every_read_is_scoped_to_the_organization(secrets: SecretRepository) -> None:
    await secrets.put("org_a", "token", "a")
    await secrets.put("org_b", "other", "b")
    assert await secrets.get("org_b", "token") is None
    assert await secrets.missing("org_b", ["token", "other", "token"]) == ["token"]
    assert await secrets.values("org_b", ["token", "other"]) == {"other": "b"}
    assert not await secrets.delete("org_b", "token")
    assert [r.name for r in (await secrets.list("org_a", limit=10, cursor=None)).items] == ["token"]


async def test_names_outside_the_pattern_are_never_queried(secrets: SecretRepository) -> None:
    # NUL would fail on PostgreSQL; such a name cannot exist anyway.
    for name in ("bad\x00name", "with-dash", "", "a" * 65):
        assert await secrets.get("org_a", name) is None
        assert not await secrets.delete("org_a", name)
        assert await secrets.values("org_a", [name]) == {}
        assert await secrets.missing("org_a", [name]) == [name]
        with pytest.raises(ValueError):
            await secrets.put("org_a", name, "v")


async def test_concurrent_puts_of_a_new_name_leave_one_secret(
    secrets: SecretRepository,
) -> None:
    values = [f"v{i}" for i in range(8)]
    await asyncio.gather(*(secrets.put("org_a", "token", value) for value in values))
    page = await secrets.list("org_a", limit=10, cursor=None)
    assert [r.name for r in page.items] == ["token"]
    assert (await secrets.values("org_a", ["token"]))["token"] in values


async def test_another_key_cannot_read_the_values(db: Database) -> None:
    await SecretRepository(db, KEYS).put("org_a", "token", "v")
    other = SecretRepository(db, parse_secret_keys(generate_key()))
    with pytest.raises(SecretDecryptError):
        await other.values("org_a", ["token"])
    # Names are readable without the key that sealed the values.
    assert await other.missing("org_a", ["token"]) == []
