"""The `runlane` command line against the real stack: what a user sees on stdout and stderr,
and the exit codes (docs/cli-readme.md)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from tests.api.helpers import review_definition
from tests.cli.conftest import ROOT, Cli
from tests.peer import Peer

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVOICE = ROOT / "examples" / "invoice-processing.yaml"
# A small but real PDF: header, one empty page, trailer.
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def write_workflow(path: Path, name: str, definition: dict) -> Path:
    path.write_text(json.dumps({"name": name, "definition": definition}))
    return path


async def test_workflows_validate_push_list_show_publish(
    runlane: Cli, base_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "nodes:\n"
        "  - {id: in, type: start_json}\n"
        "  - {id: magic, type: teleport}\n"
        "  - {id: out, type: end, config: {outputs: '{{nowhere.x}}'}}\n"
        "edges:\n"
        "  - {source: in, target: magic}\n"
        "  - {source: magic, target: out}\n"
    )
    unreadable = tmp_path / "unreadable.yaml"
    unreadable.write_text("nodes: [unclosed\n")
    # Independent commands run at once: the machine has two cores.
    valid, as_json, invalid, listed, usage = await asyncio.gather(
        runlane("workflows", "validate", *map(str, EXAMPLES)),
        runlane("workflows", "validate", str(INVOICE), "-o", "json"),
        runlane("workflows", "validate", str(broken), str(INVOICE)),
        runlane("workflows", "validate", str(broken), "--output", "json"),
        runlane("workflows", "validate", str(unreadable)),
    )
    # Every example is valid for the API's validation endpoint.
    assert valid.code == 0, valid.stderr
    for path in EXAMPLES:
        assert f"{path}: valid" in valid.stdout
    assert as_json.json() == [{"file": str(INVOICE), "valid": True, "errors": []}]
    # An invalid definition: every problem, with its node, and exit code 1.
    assert invalid.code == 1
    assert "broken.yaml: " in invalid.stdout and "problem" in invalid.stdout
    assert "node magic: " in invalid.stdout and "node out: " in invalid.stdout
    assert f"{INVOICE}: valid" in invalid.stdout
    assert listed.code == 1
    [result] = listed.json()
    assert result["valid"] is False
    assert {"magic", "out"} <= {problem["node_id"] for problem in result["errors"]}
    assert usage.code == 2 and "not valid YAML" in usage.stderr

    # push creates the workflow named in the file, then replaces that workflow's draft.
    created = await runlane("workflows", "push", str(INVOICE), "-o", "json")
    assert created.code == 0, created.stderr
    workflow = created.json()
    assert (workflow["name"], workflow["action"], workflow["snapshot"]) == (
        "Invoice Processing",
        "created",
        None,
    )
    assert workflow["id"].startswith("wf_")
    pushed = await runlane("workflows", "push", str(INVOICE), "--publish")
    assert pushed.code == 0, pushed.stderr
    assert workflow["id"] in pushed.stdout and "updated" in pushed.stdout
    assert "version 1" in pushed.stdout
    # A bare definition (no name in the file) is named after the file.
    bare = tmp_path / "bare-linear.json"
    bare.write_text(json.dumps(review_definition()))
    named = await runlane("workflows", "push", str(bare), "--output", "json")
    assert named.json()["name"] == "bare-linear"

    (
        listed_table,
        listed_json,
        shown,
        snapshot,
        missing,
        missing_json,
        refused,
        keyless,
    ) = await asyncio.gather(
        runlane("workflows", "list"),
        runlane("workflows", "list", "-o", "json"),
        runlane("workflows", "show", "Invoice Processing"),
        runlane("workflows", "publish", workflow["id"], "-o", "json"),
        runlane("workflows", "show", "wf_" + "0" * 32),
        runlane("workflows", "show", "No such name", "-o", "json"),
        # The root group's options, over the variables (a closed port, had they been used).
        runlane(
            "--base-url",
            base_url,
            "--api-key",
            "not-a-key",
            "-o",
            "json",
            "workflows",
            "list",
            RUNLANE_BASE_URL="http://127.0.0.1:9",
        ),
        runlane("workflows", "list", RUNLANE_API_KEY=""),
    )
    assert listed_table.code == 0
    assert workflow["id"] in listed_table.stdout and "Invoice Processing" in listed_table.stdout
    assert {item["id"] for item in listed_json.json()["data"]} == {
        workflow["id"],
        named.json()["id"],
    }

    assert shown.code == 0
    assert workflow["id"] in shown.stdout
    assert "Over 1000?" in shown.stdout and "condition" in shown.stdout
    assert snapshot.code == 0 and snapshot.json()["version"] == 2

    # Errors: API.md's type, code and message on stderr, nothing on stdout, exit code 1.
    assert missing.code == 1 and missing.stdout == ""
    assert "not_found" in missing.stderr and "workflow_not_found" in missing.stderr
    assert missing_json.code == 1 and missing_json.stdout == ""
    assert missing_json.error()["type"] == "not_found"
    assert refused.code == 1 and refused.error()["code"] == "invalid_api_key", refused.stderr
    assert keyless.code == 1 and "missing_api_key" in keyless.stderr


async def test_runs_start_with_a_document_json_and_text_then_follow_restart_and_rerun(
    runlane: Cli, tmp_path: Path
) -> None:
    pushed = await runlane("workflows", "push", str(INVOICE), "--publish", "-o", "json")
    workflow_id = pushed.json()["id"]
    (tmp_path / "invoice.pdf").write_bytes(PDF)
    (tmp_path / "meta.json").write_text('{"customer_id": "cust_123", "amount": 1200}')

    started = await runlane(
        "runs", "start", "Invoice Processing",
        "--doc", "doc=invoice.pdf",
        "--json", "meta=@meta.json",
        "--text", "note=Process this invoice urgently",
        "--watch",
    )  # fmt: skip
    assert started.code == 0, started.stderr
    # The live table's last frame: every step, the untaken side skipped, then the run.
    assert "8/8 steps" in started.stdout
    assert "skipped" in started.stdout and "completed" in started.stdout
    run_id = next(word for word in started.stdout.split() if word.startswith("run_"))

    shown, table, steps, steps_json, listed, missing_doc, bad_option = await asyncio.gather(
        runlane("runs", "show", run_id, "--output", "json"),
        runlane("runs", "show", run_id),
        runlane("runs", "steps", run_id),
        runlane("runs", "steps", run_id, "-o", "json"),
        runlane("runs", "list", "--workflow", workflow_id, "--status", "completed"),
        # Inline JSON and text, no document: the API's 422 names the node.
        runlane(
            "runs", "start", workflow_id, "--json", 'meta={"customer_id": "c", "amount": 1}',
            "--text", "note=hi", "-o", "json",
        ),
        runlane("runs", "start", workflow_id, "--json", "meta"),
    )  # fmt: skip
    run = shown.json()
    assert run["status"] == "completed"
    assert run["final_outputs"] == {
        "manual": {"route": "manual", "customer": "cust_123"},
        "auto": None,
        "file": "invoice.pdf",
    }
    assert run["inputs"]["documents"]["doc"]["mime_type"] == "application/pdf"
    assert run["inputs"]["text_data"] == {"note": "Process this invoice urgently"}
    assert run_id in table.stdout and "completed" in table.stdout and "cust_123" in table.stdout

    assert steps.code == 0
    auto = next(line for line in steps.stdout.splitlines() if " auto " in f" {line} ")
    assert "skipped" in auto
    assert [step["node_id"] for step in steps_json.json()["data"]][:3] == ["doc", "meta", "note"]
    document = steps_json.json()["data"][0]["output"]  # the file's own bytes were sent
    assert (document["sha256"], document["size_bytes"]) == (
        hashlib.sha256(PDF).hexdigest(),
        len(PDF),
    )

    assert run_id in listed.stdout and "Invoice Processing" in listed.stdout
    assert missing_doc.code == 1 and missing_doc.stdout == ""
    assert missing_doc.error()["type"] == "invalid_request"
    assert "doc" in json.dumps(missing_doc.error())
    assert bad_option.code == 2 and "NODE=VALUE" in bad_option.stderr

    # Restart twice with one command id: one new run.
    first = await runlane(
        "runs", "restart", run_id, "--draft", "--command-id", "cli-restart", "-o", "json"
    )
    again = await runlane(
        "runs", "restart", run_id, "--draft", "--command-id", "cli-restart", "-o", "json"
    )
    assert first.code == 0 and again.code == 0, (first.stderr, again.stderr)
    assert first.json()["id"] == again.json()["id"] != run_id
    trigger = first.json()["trigger"]
    assert (trigger["type"], trigger["source_run_id"]) == ("restart", run_id)
    watched = await runlane("runs", "watch", first.json()["id"])
    assert watched.code == 0, watched.stderr
    assert first.json()["id"] in watched.stdout and "completed" in watched.stdout

    rerun = await runlane("runs", "rerun", run_id, "--watch", "-o", "json")
    assert rerun.code == 0, rerun.stderr
    rerun_run = rerun.json()  # --watch with JSON: only the run as it ended
    assert rerun_run["status"] == "completed"
    assert rerun_run["trigger"]["type"] == "rerun"
    assert rerun_run["trigger"]["source_run_id"] == run_id


async def test_a_failed_run_exits_non_zero_then_plan_and_retry(
    runlane: Cli, tmp_path: Path, peer: Peer
) -> None:
    peer.fail("/flaky", times=1, status=500)
    definition = {
        "nodes": [
            {"id": "meta", "type": "start_json"},
            {"id": "prep", "type": "transform", "config": {"output": {"n": "{{meta.n}}"}}},
            {
                "id": "call",
                "type": "http_request",
                "retry": {"max_attempts": 1},
                "config": {"method": "POST", "url": f"{peer.url}/flaky", "body": "{{prep}}"},
            },
            {"id": "out", "type": "end", "config": {"outputs": {"status": "{{call.status}}"}}},
        ],
        "edges": [
            {"source": "meta", "target": "prep"},
            {"source": "prep", "target": "call"},
            {"source": "call", "target": "out"},
        ],
    }
    path = write_workflow(tmp_path / "flaky.json", "Flaky call", definition)
    assert (await runlane("workflows", "push", str(path), "--publish")).code == 0

    started = await runlane("runs", "start", "Flaky call", "--json", 'meta={"n": 1}', "-o", "json")
    assert started.code == 0, started.stderr
    run_id = started.json()["id"]
    watched = await runlane("runs", "watch", run_id)
    assert watched.code == 3, watched.stderr
    assert "error" in watched.stdout and "call" in watched.stdout

    plan, plan_table = await asyncio.gather(
        runlane("runs", "plan", run_id, "-o", "json"), runlane("runs", "plan", run_id)
    )
    assert plan.code == 0, plan.stderr
    assert plan.json()["allowed"] is True
    assert "call" in plan.json()["rerun"] and "prep" in plan.json()["reuse"]
    assert plan.json()["plan_id"] in plan_table.stdout

    retried = await runlane("runs", "retry", run_id, "--plan", plan.json()["plan_id"], "--watch")
    assert retried.code == 0, retried.stderr
    assert run_id in retried.stdout and "completed" in retried.stdout
    shown = await runlane("runs", "show", run_id, "-o", "json")
    assert (shown.json()["attempt"], shown.json()["final_outputs"]) == (2, {"status": 200})

    # A run that is not in error may not be retried: 409 on stderr, exit code 1.
    refused = await runlane("runs", "retry", run_id)
    assert refused.code == 1 and "conflict" in refused.stderr

    # A start with --watch whose run fails exits 3 too.
    peer.fail("/flaky", times=1, status=500)
    failed = await runlane("runs", "start", "Flaky call", "--json", 'meta={"n": 2}', "--watch")
    assert failed.code == 3 and "error" in failed.stdout


async def test_reviews_list_approve_reject_and_cancel(runlane: Cli, tmp_path: Path) -> None:
    path = write_workflow(tmp_path / "review.json", "Payout review", review_definition())
    assert (await runlane("workflows", "push", str(path), "--publish")).code == 0

    async def start(amount: int) -> str:
        started = await runlane(
            "runs", "start", "Payout review", "--json", f'meta={{"amount": {amount}}}', "-w"
        )
        # The watch stops where the run waits for a reviewer, exit code 0.
        assert started.code == 0, started.stderr
        assert "waiting_for_human" in started.stdout
        assert "reviews approve" in started.stderr
        return next(word for word in started.stdout.split() if word.startswith("run_"))

    approved_run, rejected_run, cancelled_run = await asyncio.gather(start(250), start(9), start(1))

    inbox = await runlane("reviews", "list")
    assert inbox.code == 0
    assert approved_run in inbox.stdout and "Check the amount" in inbox.stdout
    inbox_json = await runlane("reviews", "list", "-o", "json")
    pending = {item["run_id"]: item for item in inbox_json.json()["data"]}
    assert pending.keys() == {approved_run, rejected_run, cancelled_run}
    assert pending[approved_run]["payload"] == {"amount": 250}

    approved = await runlane(
        "reviews", "approve", approved_run, "review",
        "--data", '{"amount": 200}', "--reviewer", "ann", "--comment", "capped",
    )  # fmt: skip
    assert approved.code == 0, approved.stderr
    assert approved_run in approved.stdout
    done = await runlane("runs", "watch", approved_run, "-o", "json")
    assert done.code == 0
    assert done.json()["final_outputs"] == {"approved": {"amount": 200}}
    twice = await runlane("reviews", "approve", approved_run, "review", "-o", "json")
    assert twice.code == 1 and twice.error()["type"] == "conflict"

    rejected = await runlane("reviews", "reject", rejected_run, "review", "--comment", "no")
    assert rejected.code == 0, rejected.stderr
    # No `rejected` branch: the run ends in error, and watching it exits 3.
    assert (await runlane("runs", "watch", rejected_run)).code == 3

    cancelled = await runlane("runs", "cancel", cancelled_run, "-o", "json")
    assert cancelled.code == 0, cancelled.stderr
    watched = await runlane("runs", "watch", cancelled_run)
    assert watched.code == 4 and "cancelled" in watched.stdout
    again = await runlane("runs", "cancel", cancelled_run)
    assert again.code == 1 and "conflict" in again.stderr
