"""Restart (new run, same inputs, current definition) and rerun (new run, same snapshot)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import create_published, wait_for_run, wait_until
from tests.peer import Peer
from tests.recovery.support import RUNS, get_run, http_node, start_run, steps_of


def tagged_definition(peer: Peer, tag: str) -> dict[str, Any]:
    """Every input kind feeds `shape`; `tag` tells which definition a run executed."""
    return {
        "nodes": [
            {"id": "doc", "type": "start", "label": "Invoice"},
            {
                "id": "meta",
                "type": "start_json",
                "config": {"schema": {"type": "object", "required": ["customer_id"]}},
            },
            {"id": "note", "type": "start_text"},
            {
                "id": "shape",
                "type": "transform",
                "config": {
                    "output": {
                        "tag": tag,
                        "customer": "{{meta.customer_id}}",
                        "note": "{{note.text}}",
                        "file_id": "{{doc.file_id}}",
                    }
                },
            },
            http_node(peer.url, "call", body={"tag": tag}),
            {"id": "out", "type": "end", "config": {"outputs": {"shape": "{{shape}}"}}},
        ],
        "edges": [
            {"source": "doc", "target": "shape"},
            {"source": "meta", "target": "shape"},
            {"source": "note", "target": "shape"},
            {"source": "shape", "target": "call"},
            {"source": "call", "target": "out"},
        ],
    }


async def upload(api: httpx.AsyncClient) -> str:
    stored = await api.post(
        "/v1/files", files={"file": ("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf")}
    )
    assert stored.status_code == 201, stored.text
    return stored.json()["id"]


async def completed_source(api: httpx.AsyncClient, peer: Peer) -> tuple[str, dict[str, Any]]:
    """A workflow published as v1 and one completed run of it with a document, JSON and text."""
    workflow_id = await create_published(api, tagged_definition(peer, "v1"), name="Invoices")
    file_id = await upload(api)
    run = await start_run(
        api,
        workflow_id,
        documents={"doc": {"file_id": file_id}},
        json_inputs={"meta": {"customer_id": "cust_1"}},
        text_inputs={"note": "urgent"},
    )
    source = await wait_for_run(api, run["id"])
    assert source["status"] == "completed", source
    assert source["final_outputs"]["shape"]["tag"] == "v1"
    return workflow_id, source


async def publish(api: httpx.AsyncClient, workflow_id: str, definition: dict[str, Any]) -> int:
    replaced = await api.put(f"/v1/workflows/{workflow_id}/draft", json={"definition": definition})
    assert replaced.status_code == 200, replaced.text
    published = await api.post(f"/v1/workflows/{workflow_id}/publish")
    assert published.status_code == 201, published.text
    return published.json()["version"]


def same_inputs(run: dict[str, Any], source: dict[str, Any]) -> None:
    assert run["inputs"] == source["inputs"]
    assert run["inputs"]["documents"]["doc"]["id"] == source["inputs"]["documents"]["doc"]["id"]
    assert run["inputs"]["json_data"] == {"meta": {"customer_id": "cust_1"}}
    assert run["inputs"]["text_data"] == {"note": "urgent"}


def unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    """The source's record, ignoring its (growing) list of derived runs."""
    assert {k: v for k, v in after.items() if k != "derived_run_ids"} == {
        k: v for k, v in before.items() if k != "derived_run_ids"
    }


async def test_restart_uses_current_published_definition_and_same_inputs(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id, source = await completed_source(api, peer)
    source_steps = await steps_of(api, source["id"])
    assert await publish(api, workflow_id, tagged_definition(peer, "v2")) == 2

    answer = await api.post(f"{RUNS}/{source['id']}/restart", json={})
    assert answer.status_code == 202, answer.text
    restarted = answer.json()
    assert restarted["id"] != source["id"] and restarted["id"].startswith("run_")
    assert restarted["trigger"] == {"type": "restart", "source_run_id": source["id"]}
    assert restarted["attempt"] == 1

    done = await wait_for_run(api, restarted["id"])
    assert done["status"] == "completed", done
    assert done["workflow"]["version"] == 2
    assert done["workflow"]["snapshot_id"] != source["workflow"]["snapshot_id"]
    same_inputs(done, source)
    assert done["final_outputs"] == {
        "shape": {
            "tag": "v2",
            "customer": "cust_1",
            "note": "urgent",
            "file_id": source["inputs"]["documents"]["doc"]["id"],
        }
    }
    assert [c.body for c in peer.calls_to("/call")] == [{"tag": "v1"}, {"tag": "v2"}]

    # The source is untouched, and lists the run derived from it once visibility catches up.
    async def derived() -> dict[str, Any] | None:
        run = await get_run(api, source["id"])
        return run if run["derived_run_ids"] else None

    after = await wait_until(derived)
    assert after["derived_run_ids"] == [restarted["id"]]
    unchanged(source, after)
    assert await steps_of(api, source["id"]) == source_steps


async def test_restart_from_draft_runs_the_unpublished_draft(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id, source = await completed_source(api, peer)
    draft = tagged_definition(peer, "draft")
    replaced = await api.put(f"/v1/workflows/{workflow_id}/draft", json={"definition": draft})
    assert replaced.status_code == 200, replaced.text

    answer = await api.post(f"{RUNS}/{source['id']}/restart", json={"config_source": "draft"})
    assert answer.status_code == 202, answer.text
    done = await wait_for_run(api, answer.json()["id"])
    assert done["status"] == "completed", done
    assert done["trigger"] == {"type": "restart", "source_run_id": source["id"]}
    assert done["workflow"]["snapshot_id"] is None and done["workflow"]["version"] is None
    assert done["final_outputs"]["shape"]["tag"] == "draft"
    same_inputs(done, source)


async def test_rerun_keeps_the_source_snapshot_after_a_newer_publish(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    workflow_id, source = await completed_source(api, peer)
    assert await publish(api, workflow_id, tagged_definition(peer, "v2")) == 2

    answer = await api.post(f"{RUNS}/{source['id']}/rerun")
    assert answer.status_code == 202, answer.text
    rerun = answer.json()
    assert rerun["id"] != source["id"]
    assert rerun["trigger"] == {"type": "rerun", "source_run_id": source["id"]}

    done = await wait_for_run(api, rerun["id"])
    assert done["status"] == "completed", done
    assert done["workflow"] == source["workflow"]
    assert done["workflow"]["version"] == 1
    assert done["final_outputs"] == source["final_outputs"]
    assert done["final_outputs"]["shape"]["tag"] == "v1"
    same_inputs(done, source)
    assert [c.body for c in peer.calls_to("/call")] == [{"tag": "v1"}, {"tag": "v1"}]

    async def derived() -> dict[str, Any] | None:
        run = await get_run(api, source["id"])
        return run if run["derived_run_ids"] else None

    after = await wait_until(derived)
    assert after["derived_run_ids"] == [rerun["id"]]
    unchanged(source, after)


async def test_restart_and_rerun_refuse_a_source_still_running(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    definition = {
        "nodes": [
            {"id": "note", "type": "start_text"},
            {"id": "wait", "type": "delay", "config": {"seconds": 600}},
            {"id": "out", "type": "end", "config": {"outputs": {"note": "{{note.text}}"}}},
        ],
        "edges": [{"source": "note", "target": "wait"}, {"source": "wait", "target": "out"}],
    }
    workflow_id = await create_published(api, definition)
    run = await start_run(api, workflow_id, text_inputs={"note": "x"})
    await wait_for_run(api, run["id"], until={"running"})

    for operation in ("restart", "rerun"):
        refused = await api.post(f"{RUNS}/{run['id']}/{operation}", json={})
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["type"] == "conflict"
        assert "running" in error["message"] and "cancel" in error["message"]

    # Once it ended (cancelled), it can be restarted.
    cancelled = await api.post(f"{RUNS}/{run['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert (await wait_for_run(api, run["id"]))["status"] == "cancelled"
    restarted = await api.post(f"{RUNS}/{run['id']}/restart", json={})
    assert restarted.status_code == 202, restarted.text
    new_id = restarted.json()["id"]
    assert (await wait_for_run(api, new_id, until={"running"}))["trigger"]["type"] == "restart"
    assert (await api.post(f"{RUNS}/{new_id}/cancel")).status_code == 202
    await wait_for_run(api, new_id)
