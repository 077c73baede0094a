"""Starting runs: inputs checked per start node, documents stored once and never in history."""

from __future__ import annotations

import base64
import json

import httpx
from temporalio.client import Client

from runlane.settings import Settings
from tests.api.helpers import create_published, review_definition, wait_for_run, wait_until
from tests.peer import Peer

DOCUMENT = b"%PDF-1.7 distinctive-invoice-bytes-4242"


def inputs_definition() -> dict:
    return {
        "nodes": [
            {"id": "doc", "type": "start", "config": {"accept": ["application/pdf"]}},
            {
                "id": "meta",
                "type": "start_json",
                "config": {
                    "schema": {
                        "type": "object",
                        "required": ["customer_id"],
                        "properties": {"amount": {"type": "number"}},
                    }
                },
            },
            {"id": "note", "type": "start_text"},
            {
                "id": "out",
                "type": "end",
                "config": {
                    "outputs": {
                        "file": "{{doc.filename}}",
                        "sha": "{{doc.sha256}}",
                        "customer": "{{meta.customer_id}}",
                        "note": "{{note.text}}",
                    }
                },
            },
        ],
        "edges": [
            {"source": "doc", "target": "out"},
            {"source": "meta", "target": "out"},
            {"source": "note", "target": "out"},
        ],
    }


def good_body(**overrides: object) -> dict:
    body: dict = {
        "documents": {
            "doc": {
                "filename": "invoice.pdf",
                "mime_type": "application/pdf",
                "content": base64.b64encode(DOCUMENT).decode(),
            }
        },
        "json_inputs": {"meta": {"customer_id": "cust_1", "amount": 5}},
        "text_inputs": {"note": "urgent"},
    }
    body.update(overrides)
    return body


def blob_count(settings: Settings) -> int:
    root = settings.files_dir
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


async def test_inline_document_json_and_text(api: httpx.AsyncClient, client: Client) -> None:
    workflow_id = await create_published(api, inputs_definition())
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json=good_body())
    assert started.status_code == 202, started.text
    run = started.json()
    document = run["inputs"]["documents"]["doc"]
    assert document["id"].startswith("file_") and document["filename"] == "invoice.pdf"
    assert run["inputs"]["json_data"] == {"meta": {"customer_id": "cust_1", "amount": 5}}
    assert run["inputs"]["text_data"] == {"note": "urgent"}
    done = await wait_for_run(api, run["id"])
    assert done["final_outputs"]["file"] == "invoice.pdf"
    assert done["final_outputs"]["customer"] == "cust_1"
    content = await api.get(f"/v1/files/{document['id']}/content")
    assert content.content == DOCUMENT

    # The claim check: the bytes (raw or base64) appear nowhere in the run's history.
    history = await client.get_workflow_handle(run["id"]).fetch_history()
    recorded = b"".join(event.SerializeToString() for event in history.events)
    assert document["id"].encode() in recorded
    assert DOCUMENT not in recorded
    assert base64.b64encode(DOCUMENT) not in recorded


async def test_document_by_file_id(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, inputs_definition())
    uploaded = await api.post(
        "/v1/files", files={"file": ("scan.pdf", DOCUMENT, "application/pdf")}
    )
    file_id = uploaded.json()["id"]
    body = good_body(documents={"doc": {"file_id": file_id}})
    started = await api.post(f"/v1/workflows/{workflow_id}/run", json=body)
    assert started.status_code == 202
    assert started.json()["inputs"]["documents"]["doc"]["id"] == file_id
    done = await wait_for_run(api, started.json()["id"])
    assert done["final_outputs"]["file"] == "scan.pdf"


async def test_bad_inputs_are_422_naming_the_node_and_store_nothing(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    workflow_id = await create_published(api, inputs_definition())
    inline = good_body()["documents"]["doc"]
    cases = {
        "missing": (good_body(text_inputs={}), "note"),
        "unknown key": (good_body(text_inputs={"note": "x", "ghost": "y"}), "ghost"),
        "wrong kind": (good_body(text_inputs={"note": "x", "meta": "y"}), "meta"),
        "bad base64": (good_body(documents={"doc": {**inline, "content": "***"}}), "doc"),
        "schema": (good_body(json_inputs={"meta": {"amount": "lots"}}), "meta"),
        "mime": (good_body(documents={"doc": {**inline, "mime_type": "image/png"}}), "doc"),
        "unknown file": (good_body(documents={"doc": {"file_id": "file_nope"}}), "doc"),
    }
    before = blob_count(settings)
    for name, (body, node_id) in cases.items():
        response = await api.post(f"/v1/workflows/{workflow_id}/run", json=body)
        assert response.status_code == 422, (name, response.text)
        errors = response.json()["error"]["details"]["errors"]
        assert any(e.get("node_id") == node_id for e in errors), (name, errors)
        assert node_id in response.json()["error"]["message"], name
    # A request with a valid document but another bad input stores nothing either...
    assert blob_count(settings) == before
    # ...while the same document in a good request is stored (the count is no vacuous check).
    accepted = await api.post(f"/v1/workflows/{workflow_id}/run", json=good_body())
    assert accepted.status_code == 202
    assert blob_count(settings) == before + 1
    await wait_for_run(api, accepted.json()["id"])

    async def listed() -> list[str]:
        page = await api.get("/v1/workflows/runs", params={"workflow_id": workflow_id})
        return [run["id"] for run in page.json()["data"]]

    # Once the accepted run is visible, it is the only run: the refusals started nothing.
    assert await wait_until(listed) == [accepted.json()["id"]]


async def test_draft_runs_and_unpublished_409(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/v1/workflows", json={"name": "draft only", "definition": inputs_definition()}
    )
    workflow_id = created.json()["id"]
    refused = await api.post(f"/v1/workflows/{workflow_id}/run", json=good_body())
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "workflow_not_published"
    drafted = await api.post(
        f"/v1/workflows/{workflow_id}/run", json=good_body(config_source="draft")
    )
    assert drafted.status_code == 202
    assert drafted.json()["workflow"]["snapshot_id"] is None
    assert (await wait_for_run(api, drafted.json()["id"]))["status"] == "completed"


async def test_oversized_inline_document_is_413(app, api: httpx.AsyncClient, settings) -> None:
    from api.deps import get_api_settings

    small = settings.model_copy(update={"max_upload_bytes": 16})
    app.dependency_overrides[get_api_settings] = lambda: small
    workflow_id = await create_published(api, inputs_definition())
    response = await api.post(f"/v1/workflows/{workflow_id}/run", json=good_body())
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "payload_too_large"
    assert json.loads(response.text)["error"]["code"] == "document_too_large"


async def test_a_schema_referring_outside_itself_is_never_fetched(
    api: httpx.AsyncClient, peer: Peer
) -> None:
    """A start_json schema's remote $ref is the definition's problem (422), not a request the
    API makes on the definition's behalf."""
    definition = {
        "nodes": [
            {
                "id": "meta",
                "type": "start_json",
                "config": {"schema": {"$ref": f"{peer.url}/schema.json"}},
            },
            {"id": "out", "type": "end"},
        ],
        "edges": [{"source": "meta", "target": "out"}],
    }
    workflow_id = await create_published(api, definition)
    response = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"meta": {}}}
    )
    assert response.status_code == 422, response.text
    problem = response.json()["error"]["details"]["errors"][0]
    assert problem["node_id"] == "meta" and "cannot be resolved" in problem["message"]
    assert peer.count("/schema.json") == 0


def _with_escape(body: dict, escaped: str) -> bytes:
    """`body` as JSON with every "@" replaced by a raw JSON escape (json.dumps would write a
    lone surrogate as the escape too, but names it clearly here)."""
    return json.dumps(body).replace("@", escaped).encode()


async def test_lone_surrogates_in_inputs_are_422_never_500(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    """JSON may escape a lone surrogate ("\\ud800") that no UTF-8 answer, store or Temporal
    payload can hold: each place a run's inputs carry text is a 422 naming it, nothing is
    stored or started, and no answer tries to echo the surrogate back."""
    workflow_id = await create_published(api, inputs_definition())
    inline = good_body()["documents"]["doc"]
    cases = {
        "json value": good_body(json_inputs={"meta": {"customer_id": "@"}}),
        "json key": good_body(json_inputs={"meta": {"customer_id": "c", "@": 1}}),
        "json node": good_body(json_inputs={"meta": {"customer_id": "c"}, "@": {}}),
        "text value": good_body(text_inputs={"note": "@"}),
        "text node": good_body(text_inputs={"note": "n", "@": "x"}),
        "document node": good_body(documents={"doc": inline, "@": inline}),
        # Also invalid itself: pydantic's own error names the key in its location.
        "bad document's node": good_body(documents={"doc": inline, "@": {"file_id": 5}}),
        "file id": good_body(documents={"doc": {"file_id": "@"}}),
        "file id prefixed": good_body(documents={"doc": {"file_id": "file_@"}}),
    }
    before = blob_count(settings)
    for escaped in ("\\ud800", "\\udfff", "\\udc00x\\ud83d"):
        for name, body in cases.items():
            response = await api.post(
                f"/v1/workflows/{workflow_id}/run",
                content=_with_escape(body, escaped),
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 422, (name, escaped, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request", (name, error)
            assert error["details"]["errors"], (name, error)
            response.content.decode("utf-8")  # the answer itself is valid UTF-8
    assert blob_count(settings) == before

    # The same for retry overrides (a run in error first: its review rejected).
    reviewed = await create_published(api, review_definition())
    started = await api.post(
        f"/v1/workflows/{reviewed}/run", json={"json_inputs": {"meta": {"amount": 1}}}
    )
    run_id = started.json()["id"]
    await wait_for_run(api, run_id, until={"waiting_for_human"})
    for data in ({"note": "@"}, {"@": 1}):
        decision = await api.post(
            f"/v1/workflows/runs/{run_id}/reviews/review",
            content=_with_escape({"decision": "approve", "data": data}, "\\ud800"),
            headers={"Content-Type": "application/json"},
        )
        assert decision.status_code == 422, decision.text
        assert decision.json()["error"]["details"]["errors"][0]["loc"] == ["body", "data"]
    rejected = await api.post(
        f"/v1/workflows/runs/{run_id}/reviews/review", json={"decision": "reject"}
    )
    assert rejected.status_code == 202, rejected.text
    assert (await wait_for_run(api, run_id))["status"] == "error"
    for overrides in ({"json_inputs": {"meta": {"amount": "@"}}}, {"text_inputs": {"@": "x"}}):
        retried = await api.post(
            f"/v1/workflows/runs/{run_id}/retry",
            content=_with_escape({"from": "start", **overrides}, "\\ud800"),
            headers={"Content-Type": "application/json"},
        )
        assert retried.status_code == 422, retried.text
    run = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
    assert run["status"] == "error" and run["attempt"] == 1
