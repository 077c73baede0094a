"""A custom node type with a secret-capable field (`NodeType.secret_fields`): the validator
takes `{{$secrets.name}}` there and nowhere else, and the activity resolves it through
`SecretScope` as http_request does, its output masked."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.client import Client

from activities.models import NodeTaskInput, NodeTaskOutput
from activities.registry import ActivityDeps, NodeRegistry, NodeType, build_registry
from activities.secret_scope import SecretResolver, SecretScope
from api.deps import get_registry
from runlane.settings import Settings
from runlane.templating import render
from store.db import Database
from store.secrets import SecretRepository
from tests.api.helpers import create_published, wait_for_run
from tests.conftest import ORG_A_KEY
from workflows.worker import create_worker


class SignConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    message: str


class Sign:
    def __init__(self, secrets: SecretResolver | None) -> None:
        self._secrets = secrets

    @activity.defn(name="sign")
    async def sign(self, task: NodeTaskInput) -> NodeTaskOutput:
        config = SignConfig.model_validate(task.node.config)
        scope = await SecretScope.open(task, ["key"], self._secrets)
        with scope.guarded():
            key = str(render(config.key, scope.context))
            message = str(render(config.message, scope.context))
            signature = hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()
        # `key_used` would leak the value: the scope's redactor masks it.
        return NodeTaskOutput.done(scope.redactor.value({"signature": signature, "key_used": key}))


SIGN = NodeType(
    name="sign",
    role="task",
    config_model=SignConfig,
    execution="remote",
    description="HMAC-SHA256 of a message with a secret key",
    make_activity=lambda deps: Sign(deps.secrets).sign,
    secret_fields=frozenset({"key"}),
)


@pytest.fixture
def registry() -> NodeRegistry:
    return build_registry([SIGN])


@pytest.fixture
async def signing_api(
    app: FastAPI,
    registry: NodeRegistry,
    client: Client,
    settings: Settings,
    http_client: httpx.AsyncClient,
    database: Database,
) -> AsyncIterator[httpx.AsyncClient]:
    app.dependency_overrides[get_registry] = lambda: registry
    deps = ActivityDeps(
        settings=settings,
        http_client=http_client,
        secrets=SecretRepository(database, settings.secret_keys()),
    )
    async with (
        create_worker(client, task_queue=settings.task_queue, activities=registry.activities(deps)),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://runlane.test",
            headers={"Api-Key": ORG_A_KEY},
        ) as api,
    ):
        yield api


def signing(key: str, message: str) -> dict:
    return {
        "nodes": [
            {"id": "note", "type": "start_text"},
            {"id": "sig", "type": "sign", "config": {"key": key, "message": message}},
            {"id": "out", "type": "end", "config": {"outputs": "{{sig}}"}},
        ],
        "edges": [{"source": "note", "target": "sig"}, {"source": "sig", "target": "out"}],
    }


async def test_a_plugins_secret_capable_field_is_resolved_in_its_activity(
    signing_api: httpx.AsyncClient,
) -> None:
    secret = f"canary-{uuid.uuid4()}"
    put = await signing_api.put("/v1/secrets/signing_key", json={"value": secret})
    assert put.status_code == 200
    workflow_id = await create_published(
        signing_api, signing("{{$secrets.signing_key}}", "{{note.text}}")
    )
    started = await signing_api.post(
        f"/v1/workflows/{workflow_id}/run", json={"text_inputs": {"note": "hello"}}
    )
    assert started.status_code == 202, started.text

    run = await wait_for_run(signing_api, started.json()["id"])

    assert run["status"] == "completed", run
    expected = hmac.new(secret.encode(), b"hello", hashlib.sha256).hexdigest()
    assert run["final_outputs"] == {"signature": expected, "key_used": "***"}
    listed = (await signing_api.get("/v1/node-types")).json()["data"]
    assert {t["type"]: t["secret_fields"] for t in listed}["sign"] == ["key"]


async def test_a_field_not_marked_secret_capable_is_refused(
    signing_api: httpx.AsyncClient,
) -> None:
    checked = await signing_api.post(
        "/v1/workflows/validate",
        json={"definition": signing("k", "{{$secrets.signing_key}}")},
    )
    assert checked.json()["valid"] is False
    [problem] = checked.json()["errors"]
    assert problem["node_id"] == "sig"
    assert problem["message"].startswith(
        "config.message: '{{$secrets.signing_key}}' is not allowed here: a sign node takes "
        "secrets only in key"
    )
