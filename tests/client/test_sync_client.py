"""The sync client against the real stack (uvicorn, the app, a worker, Temporal): every
resource method, as a user's program sees it. The client blocks, so each scenario runs in
a thread while the test's loop serves the API."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from runlane.client import (
    AuthenticationError,
    EndEvent,
    NotFoundError,
    RunEvent,
    Runlane,
    StepEvent,
    UnprocessableEntityError,
    WaitTimeoutError,
)
from tests.api.helpers import linear_definition, review_definition
from tests.conftest import ORG_A_KEY
from tests.peer import Peer


def published(client: Runlane, definition: dict[str, Any], name: str = "wf") -> str:
    workflow = client.workflows.create(name=name, definition=definition)
    client.workflows.publish(workflow.id)
    return workflow.id


def document_definition() -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "doc", "type": "start", "config": {"accept": ["text/plain"]}},
            {"id": "meta", "type": "start_json"},
            {"id": "note", "type": "start_text"},
            {
                "id": "out",
                "type": "end",
                "config": {
                    "outputs": {
                        "file": "{{doc.filename}}",
                        "mime": "{{doc.mime_type}}",
                        "size": "{{doc.size_bytes}}",
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


async def test_workflows_create_read_list_validate_draft_publish(base_url: str) -> None:
    def scenario() -> None:
        with Runlane(api_key=ORG_A_KEY, base_url=base_url) as client:
            created = [
                client.workflows.create(
                    name=f"wf {i}", definition=linear_definition(), description="for the client"
                )
                for i in range(3)
            ]
            first = created[0]
            assert first.id.startswith("wf_") and first.description == "for the client"
            assert first.draft.definition["nodes"][0]["id"] == "meta"
            assert first.published_snapshot_id is None
            assert client.workflows.get(first.id).name == "wf 0"

            # One per page: the iterator follows next_cursor to the last page.
            listed = [w.id for w in client.workflows.list(limit=1)]
            assert listed == [w.id for w in reversed(created)]
            assert [w.id for w in client.workflows.list(limit=2, order="asc")] == [
                w.id for w in created
            ]

            check = client.workflows.validate(definition={"nodes": [], "edges": []})
            assert check.valid is False and check.errors
            assert client.workflows.validate(definition=linear_definition()).valid is True

            changed = linear_definition()
            changed["nodes"][2]["label"] = "Shape it"
            draft = client.workflows.update_draft(first.id, definition=changed)
            assert draft.draft.definition["nodes"][2]["label"] == "Shape it"

            v1 = client.workflows.publish(first.id)
            v2 = client.workflows.publish(first.id)
            assert (v1.version, v2.version) == (1, 2) and v1.id.startswith("snap_")
            assert client.workflows.get(first.id).published_snapshot_id == v2.id
            assert [s.version for s in client.workflows.snapshots(first.id, limit=1)] == [2, 1]

    await asyncio.to_thread(scenario)


async def test_a_run_with_a_document_from_a_path_followed_to_its_end(
    base_url: str, tmp_path: Path
) -> None:
    invoice = tmp_path / "invoice.txt"
    invoice.write_text("Invoice #42: 1200 EUR")

    def scenario() -> None:
        with Runlane(api_key=ORG_A_KEY, base_url=base_url) as client:
            workflow_id = published(client, document_definition())
            run = client.workflows.runs.create(
                workflow_id=workflow_id,
                documents={"doc": invoice},
                json_inputs={"meta": {"customer_id": "cust_123"}},
                text_inputs={"note": "urgent"},
            )
            assert run.id.startswith("run_") and run.workflow.workflow_id == workflow_id
            assert run.trigger.type == "api"

            # The events iterator yields typed events until the run's end.
            events = list(client.workflows.runs.events(run.id))
            assert isinstance(events[-1], EndEvent) and events[-1].status == "completed"
            assert any(isinstance(e, RunEvent) and e.run.id == run.id for e in events)
            done_steps = {e.step.node_id for e in events if isinstance(e, StepEvent)}
            assert done_steps == {"doc", "meta", "note", "out"}

            finished = client.workflows.runs.wait(run.id, timeout=30)
            assert finished.status == finished.lifecycle.kind == "completed"
            assert finished.final_outputs == {
                "file": "invoice.txt",
                "mime": "text/plain",
                "size": len("Invoice #42: 1200 EUR"),
                "customer": "cust_123",
                "note": "urgent",
            }
            stored = finished.input_documents["doc"]
            assert (stored.filename, stored.mime_type) == ("invoice.txt", "text/plain")
            assert client.files.content(stored.file_id) == invoice.read_bytes()
            assert client.workflows.runs.get(run.id).timing.completed_at is not None

            steps = client.workflows.runs.steps(run.id)
            assert [(s.node_id, s.status) for s in steps][-1] == ("out", "completed")
            assert client.workflows.runs.step(run.id, "doc").output["filename"] == "invoice.txt"

    await asyncio.to_thread(scenario)


async def test_restart_is_idempotent_and_runs_list_follows_cursors(base_url: str) -> None:
    def scenario() -> None:
        with Runlane(api_key=ORG_A_KEY, base_url=base_url) as client:
            runs = client.workflows.runs
            workflow_id = published(client, linear_definition())
            inputs: dict[str, Any] = {
                "json_inputs": {"meta": {"customer_id": "c1"}},
                "text_inputs": {"note": "n"},
            }
            source = runs.wait(runs.create(workflow_id, **inputs).id, timeout=30)
            assert source.status == "completed"

            command = f"restart-{uuid.uuid4()}"
            first = runs.restart(source.id, command_id=command)
            again = runs.restart(source.id, command_id=command)
            assert first.id == again.id != source.id  # the same new run both times
            assert first.trigger.type == "restart" and first.trigger.source_run_id == source.id
            rerun = runs.rerun(source.id)
            assert rerun.trigger.type == "rerun" and rerun.id not in (first.id, source.id)
            for run_id in (first.id, rerun.id):
                assert runs.wait(run_id, timeout=30).final_outputs == {"customer": "c1"}

            # Three runs of this workflow, one per page, newest first.
            listed = [r.id for r in runs.list(workflow_id=workflow_id, limit=1)]
            assert listed == [rerun.id, first.id, source.id]
            restarts = list(runs.list(workflow_id=workflow_id, trigger_type="restart"))
            assert [r.id for r in restarts] == [first.id]
            assert [r.id for r in runs.list(workflow_id=workflow_id, order="asc")][0] == source.id
            assert not list(
                runs.list(
                    workflow_id=workflow_id,
                    created_after=rerun.timing.created_at.replace(
                        year=rerun.timing.created_at.year + 1
                    ),
                )
            )
            source_again = runs.get(source.id)
            assert set(source_again.derived_run_ids or []) == {first.id, rerun.id}

    await asyncio.to_thread(scenario)


async def test_retry_plan_and_retry_of_a_failed_run(base_url: str, peer: Peer) -> None:
    peer.fail("/flaky", times=1, status=500)
    definition = {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {
                "id": "call",
                "type": "http_request",
                "retry": {"max_attempts": 1},
                "config": {"method": "POST", "url": f"{peer.url}/flaky"},
            },
            {"id": "out", "type": "end", "config": {"outputs": {"status": "{{call.status}}"}}},
        ],
        "edges": [{"source": "meta", "target": "call"}, {"source": "call", "target": "out"}],
    }

    def scenario() -> None:
        with Runlane(api_key=ORG_A_KEY, base_url=base_url) as client:
            runs = client.workflows.runs
            run = runs.create(published(client, definition), json_inputs={"meta": {}})
            failed = runs.wait(run.id, timeout=30)
            assert failed.status == "error" and failed.error is not None
            assert failed.error.node_id == "call"

            plan = runs.retry_plan(run.id)
            assert plan.allowed and plan.from_ == "failure_point"
            assert "meta" in plan.reuse and "call" in plan.rerun
            retried = runs.retry(run.id, plan_id=plan.plan_id)
            assert retried.id == run.id
            done = runs.wait(run.id, timeout=30)
            assert (done.status, done.attempt, done.final_outputs) == (
                "completed",
                2,
                {"status": 200},
            )
            assert peer.count("/flaky") == 2

            # From a node, on a completed run: that node and what follows run again.
            node_plan = runs.retry_plan(run.id, from_="node", node_id="out")
            assert node_plan.rerun == ["out"] and "call" in node_plan.reuse
            runs.retry(run.id, from_="node", node_id="out")
            again = runs.wait(run.id, timeout=30)
            assert (again.status, again.attempt) == ("completed", 3)

    await asyncio.to_thread(scenario)


async def test_reviews_decide_cancel_and_wait_for_a_human(base_url: str) -> None:
    def scenario() -> None:
        with Runlane(api_key=ORG_A_KEY, base_url=base_url) as client:
            runs = client.workflows.runs
            workflow_id = published(client, review_definition())
            waiting = runs.wait(
                runs.create(workflow_id, json_inputs={"meta": {"amount": 250}}).id, timeout=30
            )
            assert waiting.status == "waiting_for_human"
            assert waiting.waiting_for_node_ids == ["review"]
            other = runs.create(workflow_id, json_inputs={"meta": {"amount": 7}})
            assert runs.wait(other.id, timeout=30).status == "waiting_for_human"

            inbox = list(client.reviews.list(limit=1))
            assert {(r.run_id, r.node_id) for r in inbox} == {
                (waiting.id, "review"),
                (other.id, "review"),
            }
            mine = next(r for r in inbox if r.run_id == waiting.id)
            assert mine.instructions == "Check the amount" and mine.payload == {"amount": 250}

            decided = client.reviews.decide(
                waiting.id, "review", decision="approve", data={"amount": 200}, reviewer="ann"
            )
            assert decided.id == waiting.id
            done = runs.wait(waiting.id, timeout=30)
            assert done.final_outputs == {"approved": {"amount": 200}}
            review = runs.step(waiting.id, "review").review
            assert review is not None and review.reviewer == "ann"

            assert runs.cancel(other.id).id == other.id
            assert runs.wait(other.id, timeout=30).status == "cancelled"

            slow = {
                "nodes": [
                    {"id": "meta", "type": "start_json"},
                    {"id": "pause", "type": "delay", "config": {"seconds": 600}},
                    {"id": "out", "type": "end"},
                ],
                "edges": [
                    {"source": "meta", "target": "pause"},
                    {"source": "pause", "target": "out"},
                ],
            }
            sleeping = runs.create(published(client, slow), json_inputs={"meta": {}})
            with pytest.raises(WaitTimeoutError) as timed_out:
                runs.wait(sleeping.id, timeout=0.5)
            assert timed_out.value.run.id == sleeping.id
            assert timed_out.value.run.status in ("pending", "running")
            runs.cancel(sleeping.id, command_id=f"cancel-{sleeping.id}")
            assert runs.wait(sleeping.id, timeout=30).status == "cancelled"

    await asyncio.to_thread(scenario)


async def test_files_upload_get_content_and_run_by_file_id(base_url: str, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hello")

    def scenario() -> None:
        with Runlane(api_key=ORG_A_KEY, base_url=base_url) as client:
            uploaded = client.files.upload(note)
            assert (uploaded.filename, uploaded.mime_type, uploaded.size_bytes) == (
                "note.txt",
                "text/plain",
                5,
            )
            assert client.files.get(uploaded.id).sha256 == uploaded.sha256
            assert client.files.content(uploaded.id) == b"hello"
            raw = client.files.upload(b"raw", filename="r.txt")
            assert raw.mime_type == "text/plain"

            run = client.workflows.runs.create(
                published(client, document_definition()),
                documents={"doc": uploaded},
                json_inputs={"meta": {"customer_id": "c"}},
                text_inputs={"note": "x"},
            )
            done = client.workflows.runs.wait(run.id, timeout=30)
            assert done.input_documents["doc"].file_id == uploaded.id
            assert done.final_outputs["file"] == "note.txt"

    await asyncio.to_thread(scenario)


async def test_typed_errors_carry_the_api_error_body(base_url: str) -> None:
    def scenario() -> None:
        with Runlane(api_key=ORG_A_KEY, base_url=base_url) as client:
            with pytest.raises(NotFoundError) as missing:
                client.workflows.runs.get("run_0123456789abcdef")
            error = missing.value
            assert (error.status, error.type, error.code) == (404, "not_found", "run_not_found")
            assert "run_0123456789abcdef" in error.message

            bad = {"nodes": [{"id": "x", "type": "no_such_type"}], "edges": []}
            with pytest.raises(UnprocessableEntityError) as invalid:
                client.workflows.create(name="bad", definition=bad)
            unprocessable = invalid.value
            assert (unprocessable.status, unprocessable.type, unprocessable.code) == (
                422,
                "invalid_request",
                "invalid_definition",
            )
            assert any(p.get("node_id") == "x" for p in unprocessable.errors)
            assert unprocessable.param == "x"

            workflow_id = published(client, linear_definition())
            with pytest.raises(UnprocessableEntityError) as bad_input:
                client.workflows.runs.create(workflow_id, json_inputs={"nope": {}})
            assert bad_input.value.code and bad_input.value.message

        with Runlane(api_key="not-a-key", base_url=base_url) as stranger:
            with pytest.raises(AuthenticationError) as refused:
                stranger.workflows.get("wf_x")
            assert (refused.value.status, refused.value.type) == (401, "authentication")

    await asyncio.to_thread(scenario)
