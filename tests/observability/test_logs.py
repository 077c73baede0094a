"""Log lines are JSON objects carrying `run_id` and `node_id` where they apply, and never a
secret's value or a document's bytes (API.md "Observability")."""

from __future__ import annotations

import base64
import logging
import uuid

import httpx
import pytest
from fastapi import FastAPI

from runlane.logs import configure_logging, log_context
from tests.api.helpers import create_published, wait_for_run
from tests.conftest import ORG_A_KEY
from tests.live_api import served
from tests.observability.conftest import JsonLines
from tests.peer import Peer


async def test_a_run_logs_its_ids_and_neither_secrets_nor_documents(
    api: httpx.AsyncClient, peer: Peer, json_lines: JsonLines
) -> None:
    secret = f"canary-{uuid.uuid4()}"
    document = f"document-bytes-{uuid.uuid4()}".encode()
    assert (await api.put("/v1/secrets/token", json={"value": secret})).status_code == 200
    definition = {
        "nodes": [
            {"id": "doc", "type": "start"},
            {
                "id": "call",
                "type": "http_request",
                "config": {
                    "method": "POST",
                    "url": f"{peer.url}/hook?key={{{{$secrets.token}}}}",
                    "headers": {"Authorization": "Bearer {{$secrets.token}}"},
                    "body": {"file": "{{doc.file_id}}", "token": "{{$secrets.token}}"},
                },
            },
            {"id": "out", "type": "end", "config": {"outputs": {"status": "{{call.status}}"}}},
        ],
        "edges": [{"source": "doc", "target": "call"}, {"source": "call", "target": "out"}],
    }
    workflow_id = await create_published(api, definition)
    inline = {"filename": "a.txt", "mime_type": "text/plain"}
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"documents": {"doc": {**inline, "content": base64.b64encode(document).decode()}}},
    )
    assert started.status_code == 202, started.text
    run = await wait_for_run(api, started.json()["id"], timeout=60)
    assert run["status"] == "completed", run
    [call] = peer.calls_to(f"/hook?key={secret}")
    assert call.headers["Authorization"] == f"Bearer {secret}"  # it was sent

    lines = json_lines()
    assert lines, "nothing was logged"
    # The node's activity logged (httpx and httpcore at DEBUG), each line with its ids.
    node_lines = [line for line in lines if line.get("node_id") == "call"]
    assert node_lines, "no line carries the node's id"
    assert all(line["run_id"] == run["id"] for line in node_lines)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    text = "\n".join(map(str, lines))
    assert secret not in text
    assert document.decode() not in text
    assert base64.b64encode(document).decode() not in text


def test_log_lines_outside_a_node_carry_no_ids(
    json_lines: JsonLines, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger("runlane.test").info("plain %s", "line")
    with log_context(run_id="run_1", node_id="fetch"):
        logging.getLogger("runlane.test").warning("in a node")
    plain, in_node = json_lines()[-2:]
    assert plain["message"] == "plain line" and "run_id" not in plain
    assert (in_node["level"], in_node["run_id"], in_node["node_id"]) == (
        "WARNING",
        "run_1",
        "fetch",
    )


def test_configure_logging_writes_json_lines_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    # The configuration is the process's: put back what it changes for the other tests.
    loggers = [logging.getLogger(name) for name in ("", "httpx", "uvicorn", "uvicorn.access")]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    try:
        configure_logging()
        logging.getLogger("runlane.worker").info("worker polling")
        # At INFO httpx writes a line per request; the configuration keeps it at WARNING.
        logging.getLogger("httpx").info("HTTP Request: GET https://example.test/")
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
    [line] = capsys.readouterr().err.splitlines()
    assert '"message": "worker polling"' in line and '"logger": "runlane.worker"' in line


async def test_a_failed_node_is_logged_with_its_ids(
    api: httpx.AsyncClient, peer: Peer, json_lines: JsonLines
) -> None:
    peer.fail("/down", times=1, status=500)
    definition = {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {
                "id": "call",
                "type": "http_request",
                "retry": {"max_attempts": 1},
                "config": {"method": "POST", "url": f"{peer.url}/down"},
            },
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "meta", "target": "call"}, {"source": "call", "target": "out"}],
    }
    workflow_id = await create_published(api, definition)
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {}}})
    assert started.status_code == 202, started.text
    run = await wait_for_run(api, started.json()["id"], timeout=60)
    assert run["status"] == "error", run

    # The SDK logs the activity's failure after the activity returned, with its own extras.
    failures = [
        line
        for line in json_lines()
        if line["logger"] == "temporalio.activity" and line["level"] == "WARNING"
    ]
    assert failures, "the failure was not logged"
    assert {(line.get("run_id"), line.get("node_id")) for line in failures} == {(run["id"], "call")}


async def test_the_access_line_of_a_request_about_a_run_carries_its_id(
    app: FastAPI, json_lines: JsonLines
) -> None:
    """Through a real uvicorn server, which writes the access lines."""
    async with (
        served(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers={"Api-Key": ORG_A_KEY}) as http,
    ):
        missing = await http.get("/v1/workflows/runs/run_0123456789abcdef/steps")
        listed = await http.get("/v1/workflows/runs")
    assert (missing.status_code, listed.status_code) == (404, 200)
    access = {
        line["message"].split('"')[1]: line
        for line in json_lines()
        if line["logger"] == "uvicorn.access"
    }
    about_run = access["GET /v1/workflows/runs/run_0123456789abcdef/steps HTTP/1.1"]
    assert about_run["run_id"] == "run_0123456789abcdef"
    assert "run_id" not in access["GET /v1/workflows/runs HTTP/1.1"]
