"""A reused step keeps the times it was recorded with before the retry."""

from __future__ import annotations

import httpx

from tests.api.helpers import create_published
from tests.peer import Peer
from tests.recovery.support import (
    RUNS,
    chain,
    failed_run,
    http_node,
    retry_plan,
    steps_of,
    wait_for_attempt,
)


async def test_reused_step_keeps_its_completed_at(api: httpx.AsyncClient, peer: Peer) -> None:
    """`a` completes; in the workflow task that records its completion, `b` is scheduled and
    then fails. Retrying resets to that task: `a` is reused (the peer sees no second call) and
    keeps its times, because a step's `completed_at` is the activity's own finishing time,
    recorded in history with its result, not the clock of the re-executed task.
    """
    definition = {
        "nodes": [
            {"id": "note", "type": "start_text"},
            http_node(peer.url, "a"),
            http_node(peer.url, "b", once=True),
            {"id": "out", "type": "end", "config": {"outputs": {"b": "{{b.status}}"}}},
        ],
        "edges": chain("note", "a", "b", "out"),
    }
    workflow_id = await create_published(api, definition)
    peer.fail("/b", 1, 500)
    failed = await failed_run(api, workflow_id, text_inputs={"note": "x"})
    before = (await steps_of(api, failed["id"]))["a"]
    assert "a" in (await retry_plan(api, failed["id"]))["reuse"]

    assert (await api.post(f"{RUNS}/{failed['id']}/retry", json={})).status_code == 202
    done = await wait_for_attempt(api, failed["id"], 2)
    assert done["status"] == "completed", done
    assert peer.count("/a") == 1
    after = (await steps_of(api, failed["id"]))["a"]
    assert after["started_at"] == before["started_at"]
    assert after["output"] == before["output"]
    assert (after["completed_at"], after["duration_ms"]) == (
        before["completed_at"],
        before["duration_ms"],
    )
