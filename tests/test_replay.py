"""Replays recorded histories with today's workflow code: the guard that a change does not
break runs already in flight. Record new ones with `python -m scripts.record_histories`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from activities import evaluation
from runlane.converter import data_converter
from tests.api.helpers import create_published, linear_definition, wait_for_run
from workflows.run_workflow import RunWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_present() -> None:
    # An empty folder would make the replay test below vacuous.
    assert len(HISTORIES) >= 27, HISTORIES


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[RunWorkflow], data_converter=data_converter())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_a_run_whose_batch_failed_replays_and_names_the_failure(
    api: httpx.AsyncClient, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a node's error (those are outcomes) but the batch activity failing every try: the
    run ends in error on the batch's first node, and its history replays (replayed from its
    marker, the failure reaches the workflow in another shape than live)."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("evaluator crashed")

    monkeypatch.setattr(evaluation, "evaluate_batch", broken)
    workflow_id = await create_published(api, linear_definition())
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"json_inputs": {"meta": {"customer_id": "c"}}, "text_inputs": {"note": "n"}},
    )
    run = await wait_for_run(api, started.json()["id"])
    assert run["status"] == "error", run
    assert run["error"]["node_id"] == "meta" and "evaluator crashed" in run["error"]["message"]

    history = await client.get_workflow_handle(run["id"]).fetch_history()
    replayer = Replayer(workflows=[RunWorkflow], data_converter=data_converter())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
