"""What the run workflow does for a node (wait on a timer, hand it a run input, send it the
ancestors its expression names) comes from its node type, frozen into the run's plan, not from
the type's name. Plans frozen before they carried it keep what the name gave them then."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from activities.node_type import NodeBehaviour, NodePlan
from activities.registry import default_registry
from runlane.definition import Definition
from workflows.models import RunInput, RunInputs, WorkflowRef, node_behaviour
from workflows.run_workflow import RunWorkflow


def test_plans_carry_each_node_types_behaviour() -> None:
    definition = Definition.model_validate(
        {
            "nodes": [
                {"id": "doc", "type": "start"},
                {"id": "meta", "type": "start_json"},
                {"id": "note", "type": "start_text"},
                {"id": "big", "type": "condition", "config": {"expression": "meta.n"}},
                {"id": "wait", "type": "delay", "config": {"seconds": 1}},
                {"id": "out", "type": "end"},
            ],
            "edges": [],
        }
    )
    plans = default_registry().plans(definition)
    assert {node_id: plan.behaviour for node_id, plan in plans.items()} == {
        "doc": NodeBehaviour(run_input="document"),
        "meta": NodeBehaviour(run_input="json"),
        "note": NodeBehaviour(run_input="text"),
        "big": NodeBehaviour(expression_field="expression"),
        "wait": NodeBehaviour(timer=True),
        "out": NodeBehaviour(),
    }


NEWER_THAN_BEHAVIOURS = {"map", "subworkflow"}


def test_a_plan_frozen_before_behaviours_gets_what_its_type_name_gave() -> None:
    # Runs in flight froze plans without `behaviour`: each core type keeps its behaviour.
    # (Types added since plans carry behaviours, such as map and subworkflow, were never frozen
    # without one.)
    for name, node_type in default_registry().items():
        if name in NEWER_THAN_BEHAVIOURS:
            continue
        old = NodePlan.model_validate(
            {"role": node_type.role, "execution": node_type.execution, "timeout_s": 30}
        )
        assert old.behaviour is None
        assert node_behaviour(old, name) == node_type.behaviour, name
    # A frozen behaviour is taken as it is, whatever the type's name.
    plan = NodePlan(role="task", execution="workflow", timeout_s=30, behaviour=NodeBehaviour())
    assert node_behaviour(plan, "delay") == NodeBehaviour()


async def test_a_node_of_any_type_name_waits_on_a_timer_when_its_plan_says_so(
    client: Client, worker: Worker, task_queue: str
) -> None:
    definition = Definition.model_validate(
        {
            "nodes": [
                {"id": "note", "type": "start_text"},
                {"id": "hold", "type": "hold_on", "config": {"seconds": 0.2}},
                {"id": "out", "type": "end", "config": {"outputs": "{{note.text}}"}},
            ],
            "edges": [{"source": "note", "target": "hold"}, {"source": "hold", "target": "out"}],
        }
    )
    plans = default_registry().plans(
        Definition.model_validate(
            {"nodes": [{"id": "note", "type": "start_text"}, {"id": "out", "type": "end"}]}
        )
    )
    plans["hold"] = NodePlan(
        role="task", execution="workflow", timeout_s=30, behaviour=NodeBehaviour(timer=True)
    )
    run_id = f"run_{uuid.uuid4().hex}"
    state = await client.execute_workflow(
        RunWorkflow.run,
        RunInput(
            run_id=run_id,
            organization_id="org_a",
            workflow=WorkflowRef(
                workflow_id="wf_x", snapshot_id=None, version=None, name_at_run_time="x"
            ),
            definition=definition,
            plans=plans,
            inputs=RunInputs(text_data={"note": "hi"}),
            created_at=datetime.now(UTC),
        ),
        id=run_id,
        task_queue=task_queue,
    )
    assert state.status == "completed" and state.final_outputs == "hi"
    history = await client.get_workflow_handle(run_id).fetch_history()
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert len(timers) == 1
