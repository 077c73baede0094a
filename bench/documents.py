"""The documents scenario of `make bench`: what keeping documents in S3-compatible object
storage (RUNLANE_BLOB_URL=s3://...) costs an upload, a download and a run started with the
document, next to the local directory (the default).

Two APIs on the same Temporal, database and worker: the stack's (documents in its data dir)
and a second uvicorn whose documents are in a bucket of moto's S3 server (the tests' server,
from the dev extra, in a process of its own on 127.0.0.1). Rounds alternate between the two,
one request at a time, each with a fresh 1 MiB document (nothing deduplicated). moto is a
Python server: its share of the S3 figures is not what MinIO or AWS would take, so the figure
bounds Runlane's side (spooling, hashing, the S3 client) from above rather than predicting a
real store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx

from bench import scenarios
from bench.stack import REPO, free_port, wait_for_port

DOCUMENT_BYTES = 1024 * 1024
BUCKET = "runlane-bench-documents"
DEFINITION = {
    "nodes": [
        {"id": "doc", "type": "start"},
        {"id": "out", "type": "end", "config": {"outputs": "{{doc.sha256}}"}},
    ],
    "edges": [{"source": "doc", "target": "out"}],
}


async def _round(
    ctx: scenarios.Context, api: httpx.AsyncClient, workflow_id: str
) -> tuple[float, float, float]:
    """Milliseconds to upload, download, and start a run with the document and see it end."""
    content = os.urandom(DOCUMENT_BYTES)
    started = time.perf_counter()
    uploaded = await api.post(
        "/v1/files", files={"file": ("doc.bin", content, "application/octet-stream")}
    )
    uploaded.raise_for_status()
    file_id = uploaded.json()["id"]
    uploaded_at = time.perf_counter()
    download = await api.get(f"/v1/files/{file_id}/content")
    download.raise_for_status()
    assert download.content == content
    downloaded_at = time.perf_counter()
    run_id = await scenarios.start_run(
        ctx, workflow_id, {"documents": {"doc": {"file_id": file_id}}}
    )
    await scenarios.run_result(ctx, run_id)
    ended_at = time.perf_counter()
    return (
        (uploaded_at - started) * 1000,
        (downloaded_at - uploaded_at) * 1000,
        (ended_at - downloaded_at) * 1000,
    )


async def documents_s3(ctx: scenarios.Context) -> dict[str, Any]:
    rounds = 10 if ctx.quick else 40
    workdir = ctx.stack.workdir
    s3_port, api_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{s3_port}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (workdir / "moto.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_for_port(s3_port)
        httpx.put(f"{endpoint}/{BUCKET}").raise_for_status()
        env = ctx.stack.env() | {
            "RUNLANE_API_PORT": str(api_port),
            "RUNLANE_BLOB_URL": f"s3://{BUCKET}/documents",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
        }
        command = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1"]
        command += ["--port", str(api_port), "--log-level", "warning"]
        with (workdir / "api-s3.log").open("wb") as log:
            processes.append(
                subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        wait_for_port(api_port)
        workflow_id = await scenarios.publish(ctx, DEFINITION)
        samples: dict[str, list[tuple[float, float, float]]] = {"local": [], "s3": []}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Api-Key": ctx.stack.api_key},
            timeout=120,
        ) as s3_api:
            for api in (ctx.api, s3_api):  # warm-up, not counted
                await _round(ctx, api, workflow_id)
            for _ in range(rounds):
                samples["local"].append(await _round(ctx, ctx.api, workflow_id))
                samples["s3"].append(await _round(ctx, s3_api, workflow_id))
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    figures: dict[str, Any] = {"rounds": rounds, "document_bytes": DOCUMENT_BYTES}
    for index, what in enumerate(("upload", "download", "run")):
        for side in ("local", "s3"):
            values = [sample[index] for sample in samples[side]]
            figures[f"{side}_{what}_p50_ms"] = round(scenarios.percentile(values, 50), 1)
        figures[f"{what}_ratio_p50"] = round(
            figures[f"s3_{what}_p50_ms"] / figures[f"local_{what}_p50_ms"], 2
        )
    return figures
