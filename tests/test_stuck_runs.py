"""No run stays `pending` or `running` for ever (issue #13): a definition that passed validation
either finishes or ends in `error` naming the node and the reason, and cancel ends any run,
even one whose workflow task keeps failing. Each case is small, yet crosses the limit it tests."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.api.helpers import create_published, wait_for_run, wait_until
from tests.peer import Peer
from workflows import batches


def _chain(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    ids = [node["id"] for node in nodes]
    return {
        "nodes": nodes,
        "edges": [{"source": a, "target": b} for a, b in zip(ids, ids[1:], strict=False)],
    }


async def _run(api: httpx.AsyncClient, definition: dict[str, Any], **inputs: Any) -> str:
    workflow_id = await create_published(api, definition)
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json=inputs)
    assert started.status_code == 202, started.text
    return str(started.json()["id"])


async def test_a_transform_output_over_the_payload_limit_is_the_node_error(
    api: httpx.AsyncClient,
) -> None:
    """Was: 10 MB of text in, a 22.8 MB payload out, the run pending for ever."""
    text = secrets.token_urlsafe(500_000)  # incompressible, so three copies are over 1 MiB
    definition = _chain(
        [
            {"id": "in", "type": "start_text"},
            {"id": "t", "type": "transform", "config": {"output": ["{{in.text}}"] * 3}},
            {"id": "out", "type": "end"},
        ]
    )
    run_id = await _run(api, definition, text_inputs={"in": text})
    run = await wait_for_run(api, run_id, timeout=60)
    assert run["status"] == "error", run
    assert run["error"]["node_id"] == "t" and run["error"]["type"] == "OutputTooLarge"


async def test_a_doubling_transform_chain_ends_in_a_node_error(api: httpx.AsyncClient) -> None:
    """Was: 14 doublings of a 1 KB input, 16 MB of output and a 49 MB steps response."""
    nodes: list[dict[str, Any]] = [{"id": "t0", "type": "start_json"}]
    for level in range(1, 15):
        ref = f"{{{{t{level - 1}}}}}"
        nodes.append({"id": f"t{level}", "type": "transform", "config": {"output": [ref, ref]}})
    nodes.append({"id": "out", "type": "end", "config": {"outputs": "{{t14}}"}})
    run_id = await _run(api, _chain(nodes), json_inputs={"t0": secrets.token_hex(512)})
    run = await wait_for_run(api, run_id, timeout=60)
    assert run["status"] == "error", run
    assert run["error"]["type"] == "OutputTooLarge", run["error"]
    assert run["error"]["node_id"] in {f"t{level}" for level in range(10, 15)}
    steps = await api.get(f"/v1/workflows/runs/{run_id}/steps")
    assert steps.status_code == 200
    assert len(steps.content) < 12 * 1024 * 1024


async def test_a_template_that_multiplies_its_input_stops_at_the_limit(
    api: httpx.AsyncClient,
) -> None:
    """Interpolating a large value many times into one string is refused while rendering, not
    after gigabytes were built."""
    template = "{{in.text}}" * 2_000  # 2,000 copies of 100 KB: 200 MB if rendered
    definition = _chain(
        [
            {"id": "in", "type": "start_text"},
            {"id": "t", "type": "transform", "config": {"output": {"all": template}}},
            {"id": "out", "type": "end"},
        ]
    )
    started = time.monotonic()
    run_id = await _run(api, definition, text_inputs={"in": "z" * 100_000})
    run = await wait_for_run(api, run_id, timeout=60)
    assert run["status"] == "error", run
    assert run["error"]["node_id"] == "t" and run["error"]["type"] == "OutputTooLarge"
    assert time.monotonic() - started < 30


async def test_a_run_whose_outputs_together_are_too_large_to_record_ends_in_error(
    api: httpx.AsyncClient,
) -> None:
    """Each output fits on its own; together they are more than Temporal takes as the run's
    final state (one 2 MB payload), which used to fail the last workflow task for ever."""
    text = secrets.token_urlsafe(450_000)
    nodes: list[dict[str, Any]] = [{"id": "in", "type": "start_text"}]
    nodes += [
        {"id": f"copy{i}", "type": "transform", "config": {"output": {"copy": "{{in.text}}"}}}
        for i in range(4)
    ]
    nodes.append({"id": "out", "type": "end", "config": {"outputs": {"done": True}}})
    run_id = await _run(api, _chain(nodes), text_inputs={"in": text})
    run = await wait_for_run(api, run_id, timeout=60)
    assert run["status"] == "error", run
    assert run["error"]["type"] in ("RunStateTooLarge", "OutputTooLarge"), run["error"]
    assert run["error"]["node_id"] in {"in", "copy0", "copy1", "copy2", "copy3"}


async def test_a_node_reading_more_than_temporal_takes_ends_in_error(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    """Each output fits; the http_request node reads all of them, an activity input Temporal
    would refuse (the SDK failed the workflow task scheduling it, at every retry)."""
    text = secrets.token_urlsafe(450_000)
    nodes: list[dict[str, Any]] = [{"id": "in", "type": "start_text"}]
    nodes += [
        {"id": f"copy{i}", "type": "transform", "config": {"output": {"copy": "{{in.text}}"}}}
        for i in range(4)
    ]
    body = "{{in.text}}" + "".join(f"{{{{copy{i}.copy}}}}" for i in range(4))
    nodes.append(
        {
            "id": "call",
            "type": "http_request",
            "config": {"method": "POST", "url": f"{peer.url}/big", "body": body},
        }
    )
    nodes.append({"id": "out", "type": "end", "config": {"outputs": {"done": True}}})
    run_id = await _run(api, _chain(nodes), text_inputs={"in": text})
    run = await wait_for_run(api, run_id, timeout=60)
    assert run["status"] == "error", run
    assert run["error"]["node_id"] == "call", run["error"]
    assert run["error"]["type"] == "InputTooLarge", run["error"]
    assert peer.count("/big") == 0


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        # The peer echoes the body: 1.1 MB back is more than a node's output may be.
        ("{{in.text}}", "ResponseTooLarge"),
        # Rendered five times over: more than a template may render to.
        ("{{in.text}}" * 5, "RequestTooLarge"),
    ],
)
async def test_an_http_request_too_large_either_way_is_the_node_error(
    api: httpx.AsyncClient, peer: Peer, body: str, error_type: str
) -> None:
    nodes: list[dict[str, Any]] = [
        {"id": "in", "type": "start_text"},
        {
            "id": "call",
            "type": "http_request",
            "config": {"method": "POST", "url": f"{peer.url}/echo", "body": body},
        },
        {"id": "out", "type": "end", "config": {"outputs": {"done": True}}},
    ]
    run_id = await _run(api, _chain(nodes), text_inputs={"in": secrets.token_urlsafe(825_000)})
    run = await wait_for_run(api, run_id, timeout=60)
    assert run["status"] == "error", run
    assert (run["error"]["node_id"], run["error"]["type"]) == ("call", error_type), run["error"]
    assert "documents" in run["error"]["message"]


@pytest.fixture
def failing_workflow_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch result the run workflow applies raises, as a bug in workflow code would:
    the workflow task fails, and Temporal retries it for ever."""

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in the workflow")

    monkeypatch.setattr(batches.Batches, "apply", broken)


def _definition() -> dict[str, Any]:
    return _chain(
        [
            {"id": "in", "type": "start_json"},
            {"id": "out", "type": "end", "config": {"outputs": "{{in}}"}},
        ]
    )


async def _task_attempt(client: Client, run_id: str) -> int:
    """How many times the run's current workflow task was tried (the API does not say)."""
    description = await client.get_workflow_handle(run_id).describe()
    raw = description.raw_description
    return raw.pending_workflow_task.attempt if raw.HasField("pending_workflow_task") else 0


async def test_cancel_ends_a_run_whose_workflow_task_keeps_failing(
    api: httpx.AsyncClient, client: Client, failing_workflow_task: None
) -> None:
    run_id = await _run(api, _definition(), json_inputs={"in": {"a": 1}})
    await wait_until(lambda: _attempt_over(client, run_id, 1), timeout=60)

    started = time.monotonic()
    read = await api.get(f"/v1/workflows/runs/{run_id}")
    assert read.status_code == 200, read.text
    assert read.json()["status"] in ("pending", "running")
    assert time.monotonic() - started < 3  # no query left to time out

    cancelled = await api.post(f"/v1/workflows/runs/{run_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    run = await wait_for_run(api, run_id, timeout=15)
    assert run["status"] == "cancelled", run
    again = await api.post(f"/v1/workflows/runs/{run_id}/cancel")
    assert again.status_code == 409, again.text


async def _attempt_over(client: Client, run_id: str, attempt: int) -> bool:
    return await _task_attempt(client, run_id) > attempt


async def test_a_recursion_error_in_workflow_code_ends_the_run_in_error(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that raises RecursionError in the workflow (what a 2,000-term OR chain did) fails
    the run visibly instead of its workflow task for ever."""

    def broken(*args: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(batches.Batches, "apply", broken)
    run_id = await _run(api, _definition(), json_inputs={"in": {"a": 1}})
    started = time.monotonic()
    run = await wait_for_run(api, run_id, timeout=30)
    assert run["status"] == "error", run
    assert run["error"]["type"] == "WorkflowFailed"
    assert time.monotonic() - started < 15
