"""AsyncRunlane: the same surface, awaited, on the loop that also serves the API."""

from __future__ import annotations

import uuid

import pytest

from runlane.client import (
    AsyncRunlane,
    ConflictError,
    EndEvent,
    NotFoundError,
    StepEvent,
    UnprocessableEntityError,
)
from tests.api.helpers import linear_definition, review_definition
from tests.client.test_sync_client import document_definition
from tests.conftest import ORG_A_KEY


async def test_the_async_client_end_to_end(base_url: str) -> None:
    async with AsyncRunlane(api_key=ORG_A_KEY, base_url=base_url) as client:
        workflows, runs = client.workflows, client.workflows.runs
        assert (await workflows.validate(definition=linear_definition())).valid
        created = await workflows.create(name="async", definition=document_definition())
        await workflows.update_draft(created.id, definition=document_definition())
        assert (await workflows.publish(created.id)).version == 1
        assert (await workflows.get(created.id)).published_snapshot_id is not None
        assert [w.id async for w in workflows.list(limit=1)][0] == created.id
        assert [s.version async for s in workflows.snapshots(created.id)] == [1]

        uploaded = await client.files.upload(b"bytes", filename="b.txt")
        assert (await client.files.get(uploaded.id)).size_bytes == 5
        assert await client.files.content(uploaded.id) == b"bytes"

        run = await runs.create(
            created.id,
            documents={"doc": {"file_id": uploaded.id}},
            json_inputs={"meta": {"customer_id": "a"}},
            text_inputs={"note": "t"},
        )
        events = [event async for event in runs.events(run.id)]
        assert isinstance(events[-1], EndEvent) and events[-1].status == "completed"
        assert any(isinstance(e, StepEvent) and e.step.node_id == "out" for e in events)
        done = await runs.wait(run.id, timeout=30)
        assert done.final_outputs["file"] == "b.txt"
        assert (await runs.get(run.id)).status == "completed"
        assert [s.node_id for s in await runs.steps(run.id)][-1] == "out"
        assert (await runs.step(run.id, "note")).output == {"text": "t"}

        command = f"rerun-{uuid.uuid4()}"
        rerun = await runs.rerun(run.id, command_id=command)
        assert (await runs.rerun(run.id, command_id=command)).id == rerun.id
        restarted = await runs.restart(run.id, config_source="draft")
        assert restarted.trigger.type == "restart"
        listed = [r.id async for r in runs.list(workflow_id=created.id, limit=1)]
        assert listed == [restarted.id, rerun.id, run.id]
        with pytest.raises(ConflictError):
            await runs.cancel(run.id)  # it ended
        assert not (await runs.retry_plan(run.id, from_="start")).allowed  # it completed
        plan = await runs.retry_plan(run.id, from_="node", node_id="note")
        assert plan.allowed and "note" in plan.rerun and "doc" in plan.reuse
        again = await runs.retry(
            run.id, from_="node", node_id="note", text_inputs={"note": "again"}
        )
        assert again.id == run.id
        assert (await runs.wait(run.id, timeout=30)).final_outputs["note"] == "again"

        review_wf = await workflows.create(name="review", definition=review_definition())
        await workflows.publish(review_wf.id)
        waiting = await runs.create(review_wf.id, json_inputs={"meta": {"amount": 1}})
        assert (await runs.wait(waiting.id, timeout=30)).status == "waiting_for_human"
        inbox = [r async for r in client.reviews.list()]
        assert [(r.run_id, r.node_id) for r in inbox] == [(waiting.id, "review")]
        await client.reviews.decide(waiting.id, "review", decision="reject", comment="no")
        rejected = await runs.wait(waiting.id, timeout=30)
        assert rejected.status == "error"
        assert rejected.error is not None and rejected.error.node_id == "review"

        with pytest.raises(NotFoundError) as missing:
            await workflows.get("wf_missing")
        assert missing.value.code == "workflow_not_found"
        with pytest.raises(UnprocessableEntityError) as invalid:
            await client.reviews.decide(waiting.id, "review", decision="maybe")  # type: ignore[arg-type]
        assert invalid.value.errors
