"""Two different retries of one failed run at the same moment reset it once, not twice."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.helpers import create_published, wait_for_run
from tests.peer import Peer
from tests.recovery.support import RUNS, chain, http_node, start_run, wait_for_attempt


async def test_concurrent_retries_without_command_id_reset_once(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    definition = {
        "nodes": [
            {"id": "note", "type": "start_text"},
            http_node(peer.url, "a"),
            http_node(peer.url, "b", once=True),
            {"id": "out", "type": "end"},
        ],
        "edges": chain("note", "a", "b", "out"),
    }
    workflow_id = await create_published(api, definition)
    peer.fail("/b", 1, 500)
    run_id = (await start_run(api, workflow_id, text_inputs={"note": "x"}))["id"]
    assert (await wait_for_run(api, run_id))["status"] == "error"

    answers = await asyncio.gather(*(api.post(f"{RUNS}/{run_id}/retry") for _ in range(5)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes.count(202) == 1, [a.text for a in answers]
    assert set(codes) <= {202, 409}
    refused = [a.json()["error"]["code"] for a in answers if a.status_code == 409]
    assert set(refused) <= {"retry_in_progress", "retry_not_allowed"}

    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed"
    assert len(done["attempts"]) == 2
    assert peer.count("/a") == 1 and peer.count("/b") == 2
