"""API and worker on "different machines": each has its own data dir, and documents pass
between them only through S3-compatible object storage (RUNLANE_BLOB_URL=s3://...). A node
type that reads its document's bytes (as a plugin would, with `activities.documents`) proves
the worker got what the API stored; a store that goes down is a clear error on both sides."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.client import Client

from activities.documents import read_document
from activities.models import NodeTaskInput, NodeTaskOutput
from activities.registry import ActivityDeps, NodeRegistry, NodeType, build_registry
from api.deps import get_api_settings, get_registry
from runlane.settings import Settings
from runlane.templating import render
from store.db import Database
from tests.api.helpers import create_published, wait_for_run
from tests.conftest import ORG_A_KEY
from tests.s3 import S3Server
from workflows.worker import create_worker


class DigestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document: str


def make_digest(deps: ActivityDeps) -> Any:
    @activity.defn(name="document_digest")
    async def document_digest(task: NodeTaskInput) -> NodeTaskOutput:
        config = DigestConfig.model_validate(task.node.config)
        reference = render(config.document, task.template_context())
        content = await read_document(deps.blobs, reference)
        return NodeTaskOutput.done(
            {"text": content.decode(), "sha256": hashlib.sha256(content).hexdigest()}
        )

    return document_digest


DIGEST = NodeType(
    name="document_digest",
    role="task",
    config_model=DigestConfig,
    execution="remote",
    description="Reads a document's bytes",
    make_activity=make_digest,
)

DEFINITION = {
    "nodes": [
        {"id": "doc", "type": "start"},
        {
            "id": "digest",
            "type": "document_digest",
            "config": {"document": "{{doc}}"},
            "retry": {"max_attempts": 1},
        },
        {"id": "out", "type": "end", "config": {"outputs": "{{digest}}"}},
    ],
    "edges": [{"source": "doc", "target": "digest"}, {"source": "digest", "target": "out"}],
}


@pytest.fixture
def registry() -> NodeRegistry:
    return build_registry([DIGEST])


@pytest.fixture
def api_settings(settings: Settings, s3_url: str, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"blob_url": s3_url, "data_dir": tmp_path / "api-machine"})


@pytest.fixture
def worker_settings(settings: Settings, s3_url: str, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"blob_url": s3_url, "data_dir": tmp_path / "worker-machine"})


@pytest.fixture
def shared_app(app: FastAPI, api_settings: Settings, registry: NodeRegistry) -> FastAPI:
    app.dependency_overrides[get_api_settings] = lambda: api_settings
    app.dependency_overrides[get_registry] = lambda: registry
    return app


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, registry: NodeRegistry, http_client: httpx.AsyncClient
) -> AsyncIterator[None]:
    deps = ActivityDeps(settings=settings, http_client=http_client, blobs=settings.blob_store())
    async with create_worker(
        client, task_queue=settings.task_queue, activities=registry.activities(deps)
    ):
        yield


@pytest.fixture
async def shared_api(shared_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=shared_app),
        base_url="http://runlane.test",
        headers={"Api-Key": ORG_A_KEY},
    ) as http:
        yield http


def files_under(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file() and p.suffix != ".db")


async def test_a_document_uploaded_to_the_api_is_read_by_a_worker_elsewhere(
    shared_api: httpx.AsyncClient,
    client: Client,
    worker_settings: Settings,
    api_settings: Settings,
    registry: NodeRegistry,
    http_client: httpx.AsyncClient,
    database: Database,
) -> None:
    content = "Invoice 42: 1,234.56 EUR — café".encode()
    uploaded = await shared_api.post(
        "/v1/files", files={"file": ("invoice.txt", content, "text/plain")}
    )
    assert uploaded.status_code == 201, uploaded.text
    file_id = uploaded.json()["id"]
    workflow_id = await create_published(shared_api, DEFINITION)

    async with running_worker(client, worker_settings, registry, http_client):
        started = await shared_api.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"documents": {"doc": {"file_id": file_id}}},
        )
        assert started.status_code == 202, started.text
        done = await wait_for_run(shared_api, started.json()["id"])

        # An inline document goes the same way.
        inline = await shared_api.post(
            f"/v1/workflows/{workflow_id}/run",
            json={
                "documents": {
                    "doc": {"filename": "n.txt", "mime_type": "text/plain", "content": "aGk="}
                }
            },
        )
        assert inline.status_code == 202, inline.text
        inline_done = await wait_for_run(shared_api, inline.json()["id"])

    assert done["status"] == "completed", done
    assert done["final_outputs"] == {
        "text": content.decode(),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    assert inline_done["final_outputs"]["text"] == "hi"
    download = await shared_api.get(f"/v1/files/{file_id}/content")
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"] == "text/plain"
    assert download.headers["content-length"] == str(len(content))
    assert "invoice.txt" in download.headers["content-disposition"]
    # Neither "machine" kept a copy on its disk: the bytes are in the bucket only.
    assert list(files_under(api_settings.data_dir)) == []
    assert list(files_under(worker_settings.data_dir)) == []


async def test_a_store_that_is_down_is_a_503_and_a_node_error(
    s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    app: FastAPI,
    client: Client,
    settings: Settings,
    registry: NodeRegistry,
    http_client: httpx.AsyncClient,
) -> None:
    down = S3Server().start()
    down.use(monkeypatch)
    url = f"s3://{down.create_bucket()}"
    api_settings = settings.model_copy(update={"blob_url": url})
    app.dependency_overrides[get_api_settings] = lambda: api_settings
    app.dependency_overrides[get_registry] = lambda: registry
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://runlane.test",
        headers={"Api-Key": ORG_A_KEY},
    ) as api:
        uploaded = await api.post("/v1/files", files={"file": ("a.txt", b"kept", "text/plain")})
        assert uploaded.status_code == 201, uploaded.text
        file_id = uploaded.json()["id"]
        workflow_id = await create_published(api, DEFINITION)
        down.stop()

        refused = await api.post("/v1/files", files={"file": ("b.txt", b"new", "text/plain")})
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "blob_store_unavailable"
        assert url in error["message"]
        unreadable = await api.get(f"/v1/files/{file_id}/content")
        assert unreadable.status_code == 503
        assert unreadable.json()["error"]["code"] == "blob_store_unavailable"
        inline = await api.post(
            f"/v1/workflows/{workflow_id}/run",
            json={
                "documents": {"doc": {"filename": "n", "mime_type": "text/plain", "content": ""}}
            },
        )
        assert inline.status_code == 503
        assert inline.json()["error"]["code"] == "blob_store_unavailable"

        async with running_worker(client, api_settings, registry, http_client):
            started = await api.post(
                f"/v1/workflows/{workflow_id}/run",
                json={"documents": {"doc": {"file_id": file_id}}},
            )
            assert started.status_code == 202, started.text
            failed = await wait_for_run(api, started.json()["id"])

    assert failed["status"] == "error", failed
    assert failed["error"]["node_id"] == "digest"
    assert failed["error"]["type"] == "BlobStoreUnavailable"
    assert failed["error"]["message"] == (
        f"The document store ({url}) is unavailable: it cannot be reached"
    )
