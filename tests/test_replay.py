"""Replays recorded histories with today's workflow code: the guard that a change does not
break runs already in flight. Record new ones with `python -m scripts.record_histories`."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from runlane.converter import data_converter
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
