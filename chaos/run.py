"""`make chaos` (`python -m chaos.run [--quick]`): Runlane's fault suite.

Starts its own dev server, worker and API on free ports (bench/stack.py) with two
organizations and an HTTP peer of its own, runs every fault scenario against them in turn, and
writes chaos/results/latest.json and RELIABILITY.md: each expectation beside the figure that
judges it. Every figure in those files comes from this code; none is edited by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client

from bench.run import machine
from bench.stack import REPO, Stack
from chaos import events, scenarios
from chaos.peer import CountingPeer
from runlane.converter import data_converter
from runlane.payload_crypto import parse_payload_keys

RESULTS = REPO / "chaos" / "results" / "latest.json"
ONLY_RESULTS = REPO / "chaos" / "results" / "only.json"
REPORT = REPO / "RELIABILITY.md"
# Readings of the last full run's figures, written by hand after it and appended to the report.
NOTES = REPO / "chaos" / "notes.md"
# In the order they run: the scenarios that only read and replay first, on a quiet stack;
# then those that kill processes, each leaving every process running again (ensure_up).
SCENARIOS: dict[str, Callable[[scenarios.Context], Awaitable[dict[str, Any]]]] = {
    "cross_org": scenarios.cross_org,
    "concurrent_replays": scenarios.concurrent_replays,
    "api_restart": scenarios.api_restart,
    "temporal_restart": scenarios.temporal_restart,
    "worker_kills": scenarios.worker_kills,
    "event_restarts": events.event_restarts,
}
DESCRIPTIONS = {
    "event_restarts": "Runs of a pure workflow whose organization has one endpoint, "
    "subscribed to `run.started` and `run.completed`, on a receiver that answers 503 until "
    "every event has been refused once (each delivery then waits on a durable retry timer, "
    "1-2 s apart); the worker is SIGKILLed and restarted, the dev server stopped (SIGTERM) "
    "and started again, and only then does the receiver answer 204. Events are counted by "
    "(run, type) as accepted, with the `webhook-id`s they came under.",
    "worker_kills": "Runs of `start_json → transform → http_request (to the suite's peer, "
    "answering after 0.3 s) → transform → end`, started over REST (16 at a time) while the "
    "worker is SIGKILLed and started again; the kills are spread over the work by the number "
    "of runs the peer has seen. A run is lost if it has not ended by the deadline. The peer "
    "counts calls per run (a token from the run's input): a duplicate is a run whose node "
    "called more than once, and it carried its key when every call had "
    "`Idempotency-Key: <run_id>:call`.",
    "temporal_restart": "Runs waiting on a `human_review` and runs waiting on a `delay` timer; "
    "the dev server is stopped (SIGTERM). While it is down every review is decided over REST "
    "(a reviewer who does not know); once it is started again on the same SQLite file each "
    "decision is sent again, as a client retries a 503 (retried while the API answers 5xx): "
    "half of them with a `command_id`, half without. Decisions are counted as `review` "
    "signals in each run's history.",
    "api_restart": "Clients start runs of a pure workflow, one request at a time each, while "
    "the API is SIGKILLed and started again; a client sends a failed start again (connection "
    "refused or reset, 5xx) until it is answered. Once with a `command_id` per start, once "
    "without; runs created are counted in the workflow's run listing. Without a `command_id`, "
    "a start whose answer was lost with the API and then sent again makes a second run: "
    "reported, not judged, to show what `command_id` is for.",
    "concurrent_replays": "For each command, that many identical requests at once with one "
    "`command_id`. Effects: runs listed for the workflow (start) or with that trigger "
    "(restart, rerun); `review` signals (review), cancel requests (cancel) and resets "
    "(retry) in the target run's Temporal history.",
    "cross_org": "Every operation of `GET /openapi.json`, called with org B's key on org A's "
    "objects (a workflow, its snapshot, a file, a waiting and an ended run, a review node), "
    "and again on ids of the same shape that name nothing. Org A's objects must be answered "
    "exactly as missing ones, and no answer may carry org A's ids or a canary string from "
    "org A's data (base64 in codec answers decoded). The codec endpoints get the payloads of "
    "org A's run start event (payloads are encrypted: the stack runs with "
    "`RUNLANE_PAYLOAD_KEY`). Positive controls: org A reading its own run and decoding its own "
    "payloads must show the canary to the same detector.",
}

# (scenario, figure, comparison, expected, what it means); comparison `reported` is shown,
# not judged.
EXPECTATIONS: list[tuple[str, str, str, Any, str]] = [
    ("worker_kills", "lost", "==", 0, "runs lost through worker SIGKILLs"),
    ("worker_kills", "error", "==", 0, "… runs ending in error"),
    ("worker_kills", "kills_missed", "==", 0, "… planned kills not made"),
    (
        "worker_kills",
        "duplicate_peer_calls",
        "reported",
        None,
        "duplicate peer calls (a call made again after its worker died)",
    ),
    (
        "worker_kills",
        "duplicates_without_matching_key",
        "==",
        0,
        "… of them without the run's Idempotency-Key",
    ),
    ("worker_kills", "calls_without_key", "==", 0, "peer calls without an Idempotency-Key"),
    ("temporal_restart", "lost", "==", 0, "runs lost through a Temporal restart"),
    ("temporal_restart", "lost_decisions", "==", 0, "… decisions lost"),
    ("temporal_restart", "duplicate_decisions", "==", 0, "… decisions delivered twice"),
    (
        "temporal_restart",
        "slowest_answer_while_down_s",
        "<=",
        1.0,
        "… slowest answer (s) to a decision while Temporal is down",
    ),
    (
        "api_restart",
        "with_command_id_duplicate_runs",
        "==",
        0,
        "API restarts, starts with command_id: duplicate runs",
    ),
    ("api_restart", "with_command_id_lost_starts", "==", 0, "… starts never answered"),
    (
        "api_restart",
        "without_command_id_duplicate_runs",
        "reported",
        None,
        "API restarts, starts without command_id: duplicate runs",
    ),
    ("api_restart", "without_command_id_lost_starts", "==", 0, "… starts never answered"),
    *[
        item
        for kind, effect in [
            ("start", "runs"),
            ("restart", "new runs"),
            ("rerun", "new runs"),
            ("review", "review signals"),
            ("cancel", "cancel requests"),
            ("retry", "resets"),
        ]
        for item in [
            (
                "concurrent_replays",
                f"{kind}_effects",
                "==",
                1,
                f"concurrent replays of one {kind} command_id: {effect}",
            ),
            ("concurrent_replays", f"{kind}_distinct_runs", "==", 1, "… distinct runs answered"),
            (
                "concurrent_replays",
                f"{kind}_not_2xx",
                "==",
                0,
                "… answers other than 202 or 200",
            ),
        ]
    ],
    (
        "event_restarts",
        "events_lost",
        "==",
        0,
        "events lost across a worker kill and a Temporal restart",
    ),
    (
        "event_restarts",
        "events_under_several_ids",
        "==",
        0,
        "… events delivered under more than one webhook-id",
    ),
    ("event_restarts", "duplicate_receipts", "reported", None, "… events accepted more than once"),
    ("cross_org", "cross_org_reads", "==", 0, "cross-organization reads"),
    ("cross_org", "cross_org_writes", "==", 0, "cross-organization writes"),
    (
        "cross_org",
        "answered_unlike_missing",
        "==",
        0,
        "another organization's objects answered unlike missing ones",
    ),
    ("cross_org", "unprobed", "==", 0, "operations in the OpenAPI schema not probed"),
    (
        "cross_org",
        "detector_controls_seen",
        "==",
        2,
        "… the detector sees org A's canary in org A's own run and decoded payloads",
    ),
]


async def run_all(quick: bool, only: set[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    # Payloads encrypted, as a deployment holding other organizations' data runs: the codec
    # endpoints are then probed for what encryption hides.
    payload_key = f"chaos:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    stack = Stack(
        task_queue="runlane-chaos",
        api_key=scenarios.ORG_A_KEY,
        settings={
            "RUNLANE_API_KEYS": scenarios.API_KEYS,
            "RUNLANE_PAYLOAD_KEY": payload_key,
            **events.RETRY_SETTINGS,
        },
    )
    stack.start()
    peer = CountingPeer(delay_s=0.3)
    peer.start()
    results: dict[str, Any] = {}
    faults: list[str] = []
    try:
        client = await Client.connect(
            stack.temporal_address,
            data_converter=data_converter(parse_payload_keys(payload_key)),
        )
        async with stack.api_client() as api:
            ctx = scenarios.Context(stack, client, api, peer, quick, faults)
            for name, scenario in SCENARIOS.items():
                if only is not None and name not in only:
                    continue
                started = time.perf_counter()
                sys.stdout.write(f"{name} ... ")
                sys.stdout.flush()
                try:
                    results[name] = await scenario(ctx)
                except Exception as exc:  # noqa: BLE001 - a failed scenario is a result
                    results[name] = {"failed": f"{type(exc).__name__}: {exc}"[:500]}
                results[name]["scenario_s"] = round(time.perf_counter() - started, 1)
                shown = {k: v for k, v in results[name].items() if k != "matrix"}
                sys.stdout.write(f"{results[name]['scenario_s']}s {shown}\n")
                sys.stdout.flush()
                await scenarios.ensure_up(ctx)
    finally:
        peer.stop()
        stack.stop()
    return results, faults


def verdicts(results: dict[str, Any], *, partial: bool = False) -> list[dict[str, Any]]:
    """Each expectation against its figure; a partial run (`--only`) judges only what it ran."""
    rows = []
    for scenario, figure, op, expected, text in EXPECTATIONS:
        if partial and scenario not in results:
            continue
        figures = results.get(scenario, {})
        value = figures.get(figure, figures.get("failed", "missing"))
        if op == "reported":
            rows.append({"expectation": text, "expected": "reported", "value": value, "met": None})
            continue
        if op == "==":
            met = value == expected
        elif not isinstance(value, int | float):
            met = False  # the scenario failed: `value` is its error
        else:
            met = value <= expected if op == "<=" else value >= expected
        rows.append(
            {
                "expectation": text,
                "expected": f"{op} {expected}" if op != "==" else expected,
                "value": value,
                "met": met,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return lines


def markdown(document: dict[str, Any]) -> str:
    m = document["machine"]
    args = " CHAOS_ARGS=--quick" if document["quick"] else ""
    lines = [
        "# Reliability",
        "",
        f"Generated by `make chaos{args}` on {m['date']} in {document.get('wall_s', '?')} s: "
        f"{m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, {m['temporal']}. "
        "The suite starts its own stack (dev server on a SQLite file with WAL, `python "
        "worker.py`, uvicorn `api.main:app`, two organizations) and an HTTP peer on "
        "127.0.0.1, does to it what each scenario below describes, and counts what happened "
        "from the clients' answers, the peer's log and the runs' Temporal histories. "
        "Not part of `make test`.",
        "",
        "## Expectations",
        "",
        "| expectation | expected | measured | met |",
        "|---|---|---|---|",
    ]
    for row in document["expectations"]:
        met = {True: "yes", False: "**no**"}.get(row["met"], "n/a (reported)")
        value = str(row["value"]).splitlines()[0][:90]  # one table row, even for an error
        lines.append(f"| {row['expectation']} | {row['expected']} | {value} | {met} |")
    lines += ["", "## Scenarios", ""]
    for name, figures in document["results"].items():
        lines += [f"### {name}", ""]
        if name in DESCRIPTIONS:
            lines += [DESCRIPTIONS[name], ""]
        lines += ["| figure | value |", "|---|---|"]
        tables = {}
        for key, value in figures.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                tables[key] = value
                continue
            lines.append(f"| {key} | {json.dumps(value)} |")
        lines.append("")
        for key, rows in tables.items():
            lines += [f"{key}:", "", *table(rows), ""]
    if document.get("faults"):
        lines += ["## Faults injected", "", *[f"- {fault}" for fault in document["faults"]], ""]
    if NOTES.exists():  # hand-written readings of the figures, kept apart from them
        lines += ["## Notes", "", NOTES.read_text().strip(), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument(
        "--render", action="store_true", help="rewrite RELIABILITY.md from latest.json only"
    )
    parser.add_argument(
        "--only",
        help="comma-separated scenarios to run; their figures go to "
        f"{ONLY_RESULTS.relative_to(REPO)}, and RELIABILITY.md is left as it is",
    )
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    if only is not None and (unknown := only - set(SCENARIOS)):
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    # Kills make the SDK log reconnection failures at length; the figures say what happened.
    logging.getLogger("temporalio").setLevel(logging.CRITICAL)
    if args.render:
        document = json.loads(RESULTS.read_text())
        document["expectations"] = verdicts(document["results"])
        RESULTS.write_text(json.dumps(document, indent=2) + "\n")
        REPORT.write_text(markdown(document) + "\n")
        return
    started = time.perf_counter()
    results, faults = asyncio.run(run_all(args.quick, only))
    document = {
        "machine": machine(),
        "quick": args.quick,
        "wall_s": round(time.perf_counter() - started, 1),
        "results": results,
        "faults": faults,
        "expectations": verdicts(results, partial=only is not None),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    target = ONLY_RESULTS if only is not None else RESULTS
    target.write_text(json.dumps(document, indent=2) + "\n")
    if only is None:  # a partial run is no report
        REPORT.write_text(markdown(document) + "\n")
    missed = [row["expectation"] for row in document["expectations"] if row["met"] is False]
    sys.stdout.write(
        f"wrote {target}{'' if only else f' and {REPORT}'} in {document['wall_s']} s; "
        f"{len(missed)} expectations missed\n"
    )


if __name__ == "__main__":
    main()
