from __future__ import annotations

import httpx

from tests.api.helpers import create_published, linear_definition, wait_for_run


async def test_start_run_and_read_it_back(api: httpx.AsyncClient) -> None:
    workflow_id = await create_published(api, linear_definition(), name="Invoice Processing")
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"json_inputs": {"meta": {"customer_id": "cust_123"}}, "text_inputs": {"note": "hi"}},
    )
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["id"].startswith("run_")
    assert run["workflow"]["version"] == 1
    assert run["workflow"]["name_at_run_time"] == "Invoice Processing"
    done = await wait_for_run(api, run["id"])
    assert done["status"] == "completed" == done["lifecycle"]["kind"]
    assert done["final_outputs"] == {"customer": "cust_123"}
    assert done["lifecycle"]["final_outputs"] == {"customer": "cust_123"}
    assert done["timing"]["duration_ms"] is not None
    assert done["temporal"]["ui_url"].endswith(
        f"/workflows/{run['id']}/{done['temporal']['run_id']}/history"
    )
    steps = (await api.get(f"/v1/workflows/runs/{run['id']}/steps")).json()["data"]
    assert [s["node_id"] for s in steps] == ["meta", "note", "shape", "out"]
    assert all(s["status"] == "completed" for s in steps)
    assert steps[2]["output"] == {"customer": "cust_123", "note": "hi"}
