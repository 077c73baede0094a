"""Large runs: payloads over the threshold are compressed, and long stretches of pure nodes are
split across batches (each batch's result is one payload, which Temporal limits to 2 MB)."""

from __future__ import annotations

import httpx
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.scenarios import transform_chain
from runlane.converter import COMPRESS_OVER_BYTES, ZLIB_ENCODING, CompressLargePayloads
from tests.api.helpers import create_published, wait_for_run
from workflows.batches import MAX_BATCH_NODES


async def test_codec_compresses_only_large_payloads_and_restores_them_exactly() -> None:
    codec = CompressLargePayloads()
    small = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a": 1}')
    large = Payload(
        metadata={"encoding": b"json/plain"}, data=b"[" + b"1," * COMPRESS_OVER_BYTES + b"1]"
    )
    encoded_small, encoded_large = await codec.encode([small, large])
    assert encoded_small == small  # readable as-is in the Temporal UI
    assert encoded_large.metadata["encoding"] == ZLIB_ENCODING
    assert encoded_large.ByteSize() < large.ByteSize() // 50
    assert await codec.decode([encoded_small, encoded_large]) == [small, large]


async def test_a_long_chain_of_pure_nodes_completes_in_several_batches(
    api: httpx.AsyncClient, client: Client
) -> None:
    length = 2 * MAX_BATCH_NODES + 100
    workflow_id = await create_published(api, transform_chain(length))
    started = await api.post(
        f"/v1/workflows/{workflow_id}/run", json={"json_inputs": {"in": {"n": 7}}}
    )
    assert started.status_code == 202, started.text
    run = await wait_for_run(api, started.json()["id"], timeout=60)
    assert run["status"] == "completed" and run["final_outputs"] == {"n": 7}

    steps = (await api.get(f"/v1/workflows/runs/{run['id']}/steps")).json()["data"]
    assert len(steps) == length + 2 and {s["status"] for s in steps} == {"completed"}

    history = await client.get_workflow_handle(run["id"]).fetch_history()
    # Three batches (1,000 + 1,000 + 102 nodes), each a local activity's marker.
    batches = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert len(batches) == 3
    # The input (definition of 2,102 nodes) and the result travel compressed.
    started_event, completed_event = history.events[0], history.events[-1]
    [input_payload] = started_event.workflow_execution_started_event_attributes.input.payloads
    [result] = completed_event.workflow_execution_completed_event_attributes.result.payloads
    assert input_payload.metadata["encoding"] == ZLIB_ENCODING
    assert result.metadata["encoding"] == ZLIB_ENCODING
