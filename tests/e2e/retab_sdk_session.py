"""What a Retab user does with the official SDK, pointed at Runlane (run by
tests/e2e/test_retab_sdk.py with the SDK's own Python 3.12, never the project's).

Takes one JSON argument (base URL, API key, workflow ids, a document's path) and writes one
JSON object of what it saw to stdout. Only the SDK and the standard library are imported.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pydantic
from retab import Retab
from retab.exceptions import APIError


def until(read: Any, done: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {value!r}")
        time.sleep(0.2)


def outcome(call: Any) -> dict[str, Any]:
    """How a call the SDK makes ends: accepted, an HTTP error, or an answer its models cannot
    read (with the top-level fields that did not fit; "" for the answer as a whole)."""
    try:
        call()
    except pydantic.ValidationError as error:
        return {
            "unreadable": sorted({str(e["loc"][0]) if e["loc"] else "" for e in error.errors()})
        }
    except APIError as error:
        return {"http_error": error.status_code}
    return {"accepted": True}


def main() -> None:
    given = json.loads(sys.argv[1])
    # Only the base URL differs from a Retab user's code.
    client = Retab(api_key=given["api_key"], base_url=given["base_url"])
    runs = client.workflows.runs
    seen: dict[str, Any] = {}

    run = runs.create(
        workflow_id=given["workflow_id"],
        documents={"start-node-1": Path(given["document"])},
        json_inputs={"json-node-1": {"customer_id": "cust_123", "priority": "high"}},
    )
    seen["created"] = {
        "id": run.id,
        "status": run.status,
        "workflow_id": run.workflow_id,
        "workflow_name": run.workflow_name,
        "input_documents": {k: d.model_dump() for k, d in (run.input_documents or {}).items()},
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat(),
    }

    done = runs.wait_for_completion(run.id, poll_interval_seconds=0.2, timeout_seconds=60)
    got = runs.get(run.id)
    seen["got"] = {
        "id": got.id,
        "status": got.status,
        "final_outputs": got.final_outputs,
        "duration_ms": got.duration_ms,
        "completed_at": got.completed_at.isoformat() if got.completed_at else None,
        "updated_at": got.updated_at.isoformat(),
        "waited_status": done.status,
    }

    first = runs.restart(run.id, command_id="sdk-restart-1")
    again = runs.restart(run.id, command_id="sdk-restart-1")
    seen["restarted"] = {"first": first.id, "again": again.id, "status": first.status}
    runs.wait_for_completion(first.id, poll_interval_seconds=0.2, timeout_seconds=60)

    # The SDK sends order=desc&sort_by=created_at (and limit=20); visibility catches up.
    page = until(
        lambda: runs.list(workflow_id=given["workflow_id"]),
        lambda p: len(p.data) == 2 and all(r.status == "completed" for r in p.data),
    )
    pages = [runs.list(workflow_id=given["workflow_id"], limit=1)]
    while pages[-1].has_more:
        pages.append(
            runs.list(
                workflow_id=given["workflow_id"], limit=1, after=pages[-1].list_metadata.after
            )
        )
    oldest_first = runs.list(workflow_id=given["workflow_id"], order="asc")
    seen["listed"] = {
        "ids": [r.id for r in page.data],
        "has_more": page.has_more,
        "before": page.list_metadata.before,
        "one_by_one": [r.id for p in pages for r in p.data],
        "oldest_first": [r.id for r in oldest_first.data],
    }

    step = runs.steps.get(run.id, "transform-node-1")
    seen["step"] = {
        "block_id": step.block_id,
        "block_type": step.block_type,
        "block_label": step.block_label,
        "status": step.status,
        "error": step.error,
    }
    seen["missing_step"] = outcome(lambda: runs.steps.get(run.id, "no-such-node"))

    # Where Runlane keeps its own contract, the SDK cannot read the answer.
    seen["steps_list"] = outcome(lambda: runs.steps.list(run.id))
    slow = runs.create(workflow_id=given["slow_workflow_id"], json_inputs={"json-node-1": {}})
    seen["cancel"] = outcome(lambda: runs.cancel(slow.id, command_id="sdk-cancel-1"))
    seen["cancelled"] = until(lambda: runs.get(slow.id).status, lambda s: s == "cancelled")
    failing = runs.create(workflow_id=given["failing_workflow_id"], json_inputs={"json-node-1": {}})
    seen["failing_created"] = failing.status
    seen["failed_get"] = until(
        lambda: outcome(lambda: runs.get(failing.id)), lambda r: "accepted" not in r
    )
    seen["workflows_list"] = outcome(lambda: client.workflows.list())

    sys.stdout.write(json.dumps(seen) + "\n")


if __name__ == "__main__":
    main()
