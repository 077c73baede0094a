from __future__ import annotations

import uuid
from datetime import UTC, datetime

from temporalio.client import Client

from activities.registry import default_registry
from runlane.definition import validate_definition
from workflows.models import RunInput, RunInputs, WorkflowRef
from workflows.run_workflow import RunWorkflow


async def test_linear(client: Client, worker, task_queue: str) -> None:
    raw = {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {"id": "shape", "type": "transform", "config": {"output": {"c": "{{meta.customer}}"}}},
            {"id": "big", "type": "condition", "config": {"expression": "meta.amount > `10`"}},
            {"id": "yes", "type": "transform", "config": {"output": "big"}},
            {"id": "no", "type": "transform", "config": {"output": "small"}},
            {
                "id": "out",
                "type": "end",
                "config": {"outputs": {"c": "{{shape.c}}", "y": "{{yes}}"}},
            },
        ],
        "edges": [
            {"source": "meta", "target": "shape"},
            {"source": "shape", "target": "big"},
            {"source": "big", "target": "yes", "branch": "true"},
            {"source": "big", "target": "no", "branch": "false"},
            {"source": "yes", "target": "out"},
            {"source": "no", "target": "out"},
        ],
    }
    definition, problems = validate_definition(raw, default_registry())
    assert definition is not None, problems
    run_id = f"run_{uuid.uuid4().hex}"
    run_input = RunInput(
        run_id=run_id,
        organization_id="org_a",
        workflow=WorkflowRef(
            workflow_id="wf_x", snapshot_id=None, version=None, name_at_run_time="x"
        ),
        definition=definition,
        plans=default_registry().plans(definition),
        inputs=RunInputs(json_data={"meta": {"customer": "c1", "amount": 50}}),
        created_at=datetime.now(UTC),
    )
    state = await client.execute_workflow(
        RunWorkflow.run, run_input, id=run_id, task_queue=task_queue
    )
    assert state.status == "completed"
    assert state.final_outputs == {"c": "c1", "y": "big"}
    assert {s.node_id: s.status for s in state.steps}["no"] == "skipped"
