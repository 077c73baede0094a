"""What the client does around the calls: retries (a real 429 from the app's rate limit, a
real 503 from a peer server), the same command_id across retries, transport errors, where
the key and base URL come from, and that importing it brings no server code."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client

from api.deps import get_api_settings, get_database, get_temporal_client
from api.main import create_app
from runlane.client import (
    APIConnectionError,
    MissingAPIKeyError,
    Runlane,
    ServiceUnavailableError,
    _base,
)
from runlane.settings import DEV_KEY_FILENAME, Settings
from store.db import Database
from tests.api.helpers import create_published, linear_definition
from tests.conftest import ORG_A_KEY
from tests.live_api import served
from tests.peer import Peer

SERVER_PACKAGES = (
    "fastapi",
    "temporalio",
    "sqlalchemy",
    "api",
    "runs",
    "store",
    "workflows",
    "activities",
    "worker",
)


def test_importing_the_client_brings_no_server_code() -> None:
    code = (
        "import json, sys; import runlane.client; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    loaded = set(json.loads(ran.stdout))
    assert "runlane" in loaded and "httpx" in loaded
    assert not loaded & set(SERVER_PACKAGES), loaded & set(SERVER_PACKAGES)


@pytest.fixture
async def limited_url(settings: Settings, client: Client, database: Database) -> AsyncIterator[str]:
    """The real app with a rate limit of one request a second, bursts of one."""
    limited = settings.model_copy(update={"rate_limit_per_s": 1.0, "rate_limit_burst": 1})
    app: FastAPI = create_app()
    app.dependency_overrides[get_api_settings] = lambda: limited
    app.dependency_overrides[get_temporal_client] = lambda: client
    app.dependency_overrides[get_database] = lambda: database
    async with served(app) as url:
        yield url


async def test_a_429_is_retried_after_retry_after(limited_url: str) -> None:
    statuses: list[int] = []

    def scenario() -> list[str]:
        hooks = {"response": [lambda response: statuses.append(response.status_code)]}
        with httpx.Client(event_hooks=hooks) as http:
            client = Runlane(api_key=ORG_A_KEY, base_url=limited_url, http_client=http)
            created = client.workflows.create(name="limited", definition=linear_definition())
            # The bucket is empty now: this read is refused once, then answered.
            return [w.id for w in client.workflows.list()] + [created.id]

    listed = await asyncio.to_thread(scenario)
    assert listed[0] == listed[-1]
    assert statuses == [201, 429, 200]


async def test_a_503_is_retried_for_a_command_with_the_same_command_id(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    # A real run record for the peer to answer with, once it has refused the first attempt.
    workflow_id = await create_published(api, linear_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"json_inputs": {"meta": {}}, "text_inputs": {"note": ""}},
    )
    record = started.json()
    path = f"/v1/workflows/{workflow_id}/run"
    peer.fail(path, times=1, status=503)
    peer.respond(path, record)

    def scenario() -> str:
        with Runlane(api_key=ORG_A_KEY, base_url=peer.url) as client:
            return client.workflows.runs.create(workflow_id, json_inputs={"meta": {}}).id

    assert await asyncio.to_thread(scenario) == record["id"]
    first, second = peer.calls_to(path)
    assert first.body["command_id"] == second.body["command_id"]
    assert first.body["command_id"].startswith("cmd_")


async def test_a_503_is_not_retried_for_a_write_without_idempotency_key(peer: Peer) -> None:
    peer.fail("/v1/workflows/wf_x/publish", times=1, status=503)
    peer.fail("/v1/files/file_x/content", times=1, status=503)

    def scenario() -> bytes:
        with Runlane(api_key="k", base_url=peer.url) as client:
            with pytest.raises(ServiceUnavailableError) as refused:
                client.workflows.publish("wf_x")
            assert refused.value.status == 503
            return client.files.content("file_x")  # a read: retried

    content = await asyncio.to_thread(scenario)
    assert peer.count("/v1/workflows/wf_x/publish") == 1
    assert peer.count("/v1/files/file_x/content") == 2
    assert json.loads(content)["path"] == "/v1/files/file_x/content"


def test_no_answer_is_an_api_connection_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with Runlane(api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=0) as client:
        with pytest.raises(APIConnectionError):
            client.workflows.get("wf_x")


def test_backoff_is_capped_exponential_with_jitter() -> None:
    assert _base.retry_delay(0, rand=lambda: 0.0) == 0.5
    assert _base.retry_delay(3, rand=lambda: 0.0) == 4.0
    assert _base.retry_delay(10, rand=lambda: 0.0) == _base.MAX_RETRY_DELAY_S
    assert _base.retry_delay(1, rand=lambda: 1.0) == 0.75
    assert _base.retry_delay(5, retry_after=2.0) == 2.0


def test_key_and_base_url_come_from_the_environment_then_the_dev_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNLANE_API_KEY", raising=False)
    monkeypatch.delenv("RUNLANE_BASE_URL", raising=False)
    monkeypatch.setenv("RUNLANE_DATA_DIR", str(tmp_path))
    with pytest.raises(MissingAPIKeyError, match="RUNLANE_API_KEY"):
        Runlane()
    # The file `make run` writes (runlane.settings names it; the client does not import it).
    assert _base.DEV_KEY_FILENAME == DEV_KEY_FILENAME
    (tmp_path / DEV_KEY_FILENAME).write_text("rl_dev_abc\n")
    with Runlane() as client:
        assert (client.api_key, client.base_url) == ("rl_dev_abc", "http://127.0.0.1:8000")
    monkeypatch.setenv("RUNLANE_API_KEY", "from_env")
    monkeypatch.setenv("RUNLANE_BASE_URL", "http://api.example:9000/v1/")
    with Runlane() as client:
        assert (client.api_key, client.base_url) == ("from_env", "http://api.example:9000")
    with Runlane(api_key="given", base_url="http://h:1") as client:
        assert (client.api_key, client.base_url) == ("given", "http://h:1")
