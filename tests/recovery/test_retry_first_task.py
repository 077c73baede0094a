"""A failure scheduled in the run's very first workflow task: the reset goes back to it.

When the `retry` signal lands in the new execution's first activation (as it did under the
benchmark's load), `run()` must not overwrite the attempts it recorded; this test cannot force
that ordering, but checks the attempts and calls either way."""

from __future__ import annotations

import httpx

from tests.api.helpers import create_published, wait_for_run
from tests.peer import Peer
from tests.recovery.support import (
    RUNS,
    chain,
    http_node,
    start_run,
    steps_of,
    wait_for_attempt,
)


async def test_retry_to_the_first_task_records_exactly_one_new_attempt(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    # Start and pure nodes are evaluated in the first task, which also schedules `call`.
    definition = {
        "nodes": [
            {"id": "note", "type": "start_text"},
            {"id": "shape", "type": "transform", "config": {"output": "{{note.text}}"}},
            http_node(peer.url, "call", once=True),
            {"id": "out", "type": "end", "config": {"outputs": "{{shape}}"}},
        ],
        "edges": chain("note", "shape", "call", "out"),
    }
    workflow_id = await create_published(api, definition)
    peer.fail("/call", 1, 500)
    run_id = (await start_run(api, workflow_id, text_inputs={"note": "x"}))["id"]
    assert (await wait_for_run(api, run_id))["status"] == "error"
    before = await steps_of(api, run_id)
    assert (await api.post(f"{RUNS}/{run_id}/retry")).status_code == 202
    done = await wait_for_attempt(api, run_id, 2)
    assert done["status"] == "completed" and done["final_outputs"] == "x"
    # The retry's own attempt only: no spurious "reset from the UI" attempt after a timeout.
    assert [a["attempt"] for a in done["attempts"]] == [1, 2]
    assert done["attempts"][1]["resumed_from_node_id"] == "call"
    assert peer.count("/call") == 2
    # The nodes evaluated in the reset task are reused, whichever came first in the new
    # execution, their evaluation or the `retry` signal: their steps read as before.
    after = await steps_of(api, run_id)
    assert after["note"] == before["note"] and after["shape"] == before["shape"]
    assert before["shape"]["attempt"] == 1
    assert after["call"]["attempt"] == 2 and after["out"]["attempt"] == 2
