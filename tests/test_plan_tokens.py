"""Plan tokens name the retry they planned and the run as the plan saw it; anything else given
as a plan_id is refused as invalid input, never a 5xx."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runlane.errors import Conflict, InvalidInput
from runs import plan_tokens
from workflows.models import RunInputs, RunState, Timing, Trigger, WorkflowRef


def state(status: str = "completed", attempt: int = 1) -> RunState:
    return RunState(
        run_id="run_1",
        organization_id="org_a",
        workflow=WorkflowRef(
            workflow_id="wf_1", snapshot_id="snap_1", version=1, name_at_run_time="w"
        ),
        trigger=Trigger(type="api"),
        inputs=RunInputs(),
        status=status,
        timing=Timing(created_at=datetime(2026, 1, 1, tzinfo=UTC)),
        attempt=attempt,
    )


def test_a_token_names_its_retry_and_is_fresh_for_the_same_run() -> None:
    token = plan_tokens.plan_id(state(), "t-run-1", "node", "b")
    planned = plan_tokens.parse(token)
    assert (planned.from_, planned.node_id) == ("node", "b")
    plan_tokens.check_fresh(planned, state(), "t-run-1")


@pytest.mark.parametrize(
    "changed",
    [
        {"temporal_run_id": "t-run-2"},
        {"state": state(attempt=2)},
        {"state": state(status="error")},
    ],
)
def test_a_token_is_stale_once_the_run_changed(changed: dict) -> None:
    planned = plan_tokens.parse(plan_tokens.plan_id(state(), "t-run-1", "failure_point", None))
    with pytest.raises(Conflict) as refused:
        plan_tokens.check_fresh(
            planned, changed.get("state", state()), changed.get("temporal_run_id", "t-run-1")
        )
    assert refused.value.code == "plan_stale"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "plan_",
        "plan_.",
        "nope_eyJmcm9tIjoic3RhcnQifQ." + "0" * 32,
        "plan_%%%." + "0" * 32,
        "plan_eyJmcm9tIjoic3RhcnQifQ.short",
        "plan_bnVsbA." + "0" * 32,  # null
        "plan_eyJmcm9tIjoid2hlcmV2ZXIifQ." + "0" * 32,  # {"from": "wherever"}
        "plan_eyJmcm9tIjoibm9kZSJ9." + "0" * 32,  # {"from": "node"}: no node_id
        "plan_eyJmcm9tIjoic3RhcnQiLCJub2RlX2lkIjoxfQ." + "0" * 32,  # node_id: 1
        "plan_" + "A" * 5000 + "." + "0" * 32,
    ],
)
def test_anything_else_is_invalid_input(token: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        plan_tokens.parse(token)
    assert refused.value.code == "invalid_plan_id"
