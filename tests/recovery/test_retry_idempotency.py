"""command_id on restart, rerun, retry and cancel: a replay answers 200 with the first result
and enqueues nothing new; a misused key is refused."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.api.helpers import create_published, wait_for_run, wait_until
from tests.peer import Peer
from tests.recovery.support import (
    RUNS,
    chain,
    failed_run,
    failing_chain,
    get_run,
    http_node,
    start_run,
    wait_for_attempt,
    wait_for_step,
)


def key() -> str:
    return f"cmd-{uuid.uuid4().hex}"


def simple(peer: Peer) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "note", "type": "start_text"},
            http_node(peer.url, "call"),
            {"id": "out", "type": "end", "config": {"outputs": {"note": "{{note.text}}"}}},
        ],
        "edges": chain("note", "call", "out"),
    }


async def completed_source(api: httpx.AsyncClient, peer: Peer) -> dict[str, Any]:
    workflow_id = await create_published(api, simple(peer))
    run = await start_run(api, workflow_id, text_inputs={"note": "x"})
    done = await wait_for_run(api, run["id"])
    assert done["status"] == "completed", done
    return done


async def test_restart_and_rerun_replays(api: httpx.AsyncClient, peer: Peer) -> None:
    source = await completed_source(api, peer)
    for operation in ("restart", "rerun"):
        command_id = key()
        url = f"{RUNS}/{source['id']}/{operation}"
        first = await api.post(url, json={"command_id": command_id})
        assert first.status_code == 202, first.text
        new_id = first.json()["id"]
        assert new_id != source["id"]
        replay = await api.post(url, json={"command_id": command_id})
        assert replay.status_code == 200, replay.text
        assert replay.json()["id"] == new_id
        assert replay.json()["trigger"] == {"type": operation, "source_run_id": source["id"]}
        assert (await wait_for_run(api, new_id))["status"] == "completed"
        late = await api.post(url, json={"command_id": command_id})
        assert late.status_code == 200 and late.json()["id"] == new_id
        assert late.json()["status"] == "completed"

        # Same key, different body / operation / target.
        other_op = "rerun" if operation == "restart" else "restart"
        refused = await api.post(
            f"{RUNS}/{source['id']}/{other_op}", json={"command_id": command_id}
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "command_id_reused"
        other_target = await api.post(
            f"{RUNS}/{new_id}/{operation}", json={"command_id": command_id}
        )
        assert other_target.status_code == 409, other_target.text

    mismatch_key = key()
    url = f"{RUNS}/{source['id']}/restart"
    assert (await api.post(url, json={"command_id": mismatch_key})).status_code == 202
    mismatch = await api.post(url, json={"command_id": mismatch_key, "config_source": "draft"})
    assert mismatch.status_code == 422, mismatch.text
    assert mismatch.json()["error"]["code"] == "command_id_body_mismatch"

    # The source run, the restart, the rerun and the last restart: nothing more was started.
    async def all_derived() -> list[str] | None:
        ids = (await get_run(api, source["id"]))["derived_run_ids"]
        return ids if len(ids) >= 3 else None

    derived = await wait_until(all_derived)
    assert len(derived) == 3
    for run_id in derived:
        await wait_for_run(api, run_id)
    assert peer.count("/call") == 4


async def test_retry_replays_do_not_retry_twice(api: httpx.AsyncClient, peer: Peer) -> None:
    workflow_id = await create_published(api, failing_chain(peer))
    peer.fail("/b", 1, 500)
    failed = await failed_run(api, workflow_id, text_inputs={"note": "x"})
    run_id = failed["id"]
    command_id = key()
    url = f"{RUNS}/{run_id}/retry"

    first = await api.post(url, json={"command_id": command_id})
    assert first.status_code == 202, first.text
    replay = await api.post(url, json={"command_id": command_id})
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == run_id
    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed", done
    late = await api.post(url, json={"command_id": command_id})
    assert late.status_code == 200, late.text
    assert late.json()["attempt"] == 2 and late.json()["status"] == "completed"
    assert (await get_run(api, run_id))["attempt"] == 2
    assert len(done["attempts"]) == 2
    assert peer.count("/a") == 1 and peer.count("/b") == 2

    different_body = await api.post(url, json={"command_id": command_id, "from": "start"})
    assert different_body.status_code == 422, different_body.text
    assert different_body.json()["error"]["code"] == "command_id_body_mismatch"
    other_operation = await api.post(f"{RUNS}/{run_id}/rerun", json={"command_id": command_id})
    assert other_operation.status_code == 409, other_operation.text
    assert (await get_run(api, run_id))["attempt"] == 2


@pytest.mark.parametrize(
    ("body", "calls_after"),
    [({}, {"a": 1, "b": 2}), ({"from": "start"}, {"a": 2, "b": 2})],
    ids=["failure_point", "start"],
)
async def test_concurrent_identical_retries_retry_once(
    api: httpx.AsyncClient, peer: Peer, body: dict[str, Any], calls_after: dict[str, int]
) -> None:
    workflow_id = await create_published(api, failing_chain(peer))
    peer.fail("/b", 1, 500)
    failed = await failed_run(api, workflow_id, text_inputs={"note": "x"})
    run_id = failed["id"]
    command_id = key()

    answers = await asyncio.gather(
        *(
            api.post(f"{RUNS}/{run_id}/retry", json={**body, "command_id": command_id})
            for _ in range(20)
        )
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 19 + [202], [a.text for a in answers if a.status_code >= 300]
    assert {answer.json()["id"] for answer in answers} == {run_id}

    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed", done
    assert [a["attempt"] for a in done["attempts"]] == [1, 2]
    assert {"a": peer.count("/a"), "b": peer.count("/b")} == calls_after
    # Nothing else is still going to happen: a replay now sees the one retry.
    replay = await api.post(f"{RUNS}/{run_id}/retry", json={**body, "command_id": command_id})
    assert replay.status_code == 200 and replay.json()["attempt"] == 2


async def test_cancel_replays(api: httpx.AsyncClient, peer: Peer) -> None:
    definition = {
        "nodes": [
            {"id": "note", "type": "start_text"},
            {"id": "wait", "type": "delay", "config": {"seconds": 600}},
            {"id": "out", "type": "end", "config": {"outputs": {"note": "{{note.text}}"}}},
        ],
        "edges": chain("note", "wait", "out"),
    }
    workflow_id = await create_published(api, definition)
    run = await start_run(api, workflow_id, text_inputs={"note": "x"})
    await wait_for_step(api, run["id"], "wait", "running")
    command_id = key()
    url = f"{RUNS}/{run['id']}/cancel"

    first = await api.post(url, json={"command_id": command_id})
    assert first.status_code == 202, first.text
    replay = await api.post(url, json={"command_id": command_id})
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == run["id"]
    assert (await wait_for_run(api, run["id"]))["status"] == "cancelled"
    # After the run ended a replay still answers 200 (a new command would get 409).
    late = await api.post(url, json={"command_id": command_id})
    assert late.status_code == 200, late.text
    assert late.json()["status"] == "cancelled"
    assert (await api.post(url, json={"command_id": key()})).status_code == 409

    # The same key for another operation on this run, or for another run: 409.
    retry = await api.post(f"{RUNS}/{run['id']}/retry", json={"command_id": command_id})
    assert retry.status_code == 409, retry.text
    assert retry.json()["error"]["code"] == "command_id_reused"
    assert (await get_run(api, run["id"]))["status"] == "cancelled"
    other = await start_run(api, workflow_id, text_inputs={"note": "y"})
    elsewhere = await api.post(f"{RUNS}/{other['id']}/cancel", json={"command_id": command_id})
    assert elsewhere.status_code == 409, elsewhere.text
    assert (await get_run(api, other["id"]))["status"] in {"pending", "running"}
    assert (await api.post(f"{RUNS}/{other['id']}/cancel")).status_code == 202
    await wait_for_run(api, other["id"])
