"""`make bench` (`python -m bench.run [--quick]`): Runlane against raw Temporal, side by side.

Starts its own dev server, worker and API on free ports, runs every scenario paired with a
raw-temporalio baseline on the same server, and writes bench/results/latest.json and
BENCHMARKS.md. Every figure in those files comes from this code; none is edited by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from bench import (
    api_overhead,
    bulk,
    cache_sizes,
    documents,
    events,
    raw,
    raw_activities,
    scenarios,
    tracing,
)
from bench.stack import REPO, TEMPORAL_BIN, Stack
from runlane.converter import data_converter
from tests.peer import Peer

RESULTS = REPO / "bench" / "results" / "latest.json"
REPORT = REPO / "BENCHMARKS.md"
ONLY_RESULTS = REPO / "bench" / "results" / "only.json"
# What the figures of the last full run mean where a target is missed: written by hand after
# the run (the figures themselves never are), appended to the report as it is generated.
NOTES = REPO / "bench" / "notes.md"
# The scenarios on the shared stack, in the order they run; `waiting_memory` follows on a
# stack of its own (run_all).
SCENARIOS: dict[str, Callable[[scenarios.Context], Awaitable[dict[str, Any]]]] = {
    "throughput_pure": lambda ctx: scenarios.throughput(ctx, "pure"),
    "throughput_io": lambda ctx: scenarios.throughput(ctx, "io"),
    "fan_out": scenarios.fan_out,
    "latency": scenarios.latency,
    "post_latency": scenarios.post_latency,
    "start_throughput": scenarios.start_throughput,
    "review_resume": scenarios.review_resume,
    "retry_long": scenarios.retry_long,
    "retry_from_node": scenarios.retry_from_node,
    "run_1000_nodes": lambda ctx: scenarios.big_run(ctx, 1000),
    "run_10000_nodes": lambda ctx: scenarios.big_run(ctx, 10_000),
    "run_10000_wide": lambda ctx: scenarios.big_run(ctx, 10_000, shape="wide"),
    "map_io": scenarios.map_io,
    "map_10000_pure": scenarios.map_pure,
    "dry_run": scenarios.dry_run,
    "bulk_retry": bulk.bulk_retry,
    "documents_s3": documents.documents_s3,
    "api_overhead": api_overhead.api_overhead,
    # Last: its endpoints subscribe the whole organization while it runs.
    "event_delivery": events.event_delivery,
}
QUICK_SKIPS = {"run_10000_nodes", "run_10000_wide"}
# Scenarios that start stacks of their own (`quick` is their argument), after the shared ones.
OWN_STACKS: dict[str, Callable[[bool], Awaitable[dict[str, Any]]]] = {
    "tracing_cost": tracing.tracing_cost,
}

# (scenario, figure, comparison, target, human description)
TARGETS = [
    ("throughput_pure", "ratio", ">=", 3.0, "pure-node throughput ≥ 3× raw regular activities"),
    ("throughput_io", "ratio", ">=", 0.9, "I/O-node throughput ≥ 0.9× raw"),
    ("latency", "runlane_p50_ms", "<=", 100.0, "REST end-to-end p50, 10 pure nodes ≤ 100 ms"),
    (
        "start_throughput",
        "ratio",
        ">=",
        0.7,
        "REST starts/s ≥ 0.7× raw client.start_workflow (32 clients)",
    ),
    ("review_resume", "runlane_p50_ms", "<=", 60.0, "review → resumed p50 ≤ 60 ms"),
    (
        "retry_long",
        "runlane_activities_reexecuted",
        "==",
        1,
        "retry re-executes exactly 1 node: in history (activities, batch outcomes)",
    ),
    (
        "retry_long",
        "runlane_steps_run_again",
        "==",
        1,
        "… and steps the API shows run again",
    ),
    ("retry_long", "ratio", "<=", 1.2, "retry ≤ 1.2× a raw reset's time"),
    (
        "retry_from_node",
        "exactly_downstream",
        "==",
        True,
        "retry from the middle node of 1,000 re-runs exactly it and what is downstream",
    ),
    ("retry_from_node", "ratio", "<=", 1.2, "… in ≤ 1.2× a raw reset's time (same shape)"),
    (
        "waiting_memory",
        "worker_kb_per_waiting_run",
        "<=",
        60.0,
        "≤ 60 KB worker memory per waiting run (full mode)",
    ),
    ("run_10000_nodes", "status", "==", "completed", "a 10,000-node run completes (full mode)"),
    (
        "run_10000_wide",
        "status",
        "==",
        "completed",
        "… and a 10,000-node fan-out (full mode)",
    ),
    (
        "map_io",
        "ratio",
        ">=",
        0.9,
        "map of 1,000 I/O items at concurrency 50 ≥ 0.9× raw Temporal items/s",
    ),
    (
        "map_10000_pure",
        "status",
        "==",
        "completed",
        "a map of 10,000 pure items completes (full mode; quick: 1,000 items)",
    ),
    (
        "bulk_retry",
        "latency_ratio_p95",
        "<=",
        1.5,
        "GET p95 during a bulk retry of 500 runs ≤ 1.5× without",
    ),
    (
        "event_delivery",
        "throughput_ratio",
        ">=",
        0.95,
        "run throughput with 3 subscribed endpoints ≥ 0.95× without (deliveries included)",
    ),
]
# Not judged in --quick mode: the 10,000-node run does not run, and 200 waiting runs are too
# few for a per-run memory figure (the worker's fixed costs swamp it).
FULL_MODE_ONLY = QUICK_SKIPS | {"waiting_memory", "map_10000_pure"}


def machine() -> dict[str, Any]:
    memory_kb = int(
        next(
            line
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ).split()[1]
    )
    version = subprocess.run([str(TEMPORAL_BIN), "--version"], capture_output=True, text=True)
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "temporal": version.stdout.strip(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


async def run_all(quick: bool, only: set[str] | None = None) -> dict[str, Any]:
    stack = Stack()
    stack.start()
    peer = Peer()
    peer.start()
    results: dict[str, Any] = {}
    try:
        client = await Client.connect(stack.temporal_address, data_converter=data_converter())
        raw_queue = f"raw-{uuid.uuid4().hex}"
        async with (
            httpx.AsyncClient() as http,
            stack.api_client() as api,
        ):
            raw_http = raw_activities.RawHttp(http, f"{peer.url}/raw")
            async with Worker(
                client,
                task_queue=raw_queue,
                workflows=raw.WORKFLOWS,
                activities=[raw_activities.raw_step, raw_activities.raw_flaky, raw_http.raw_http],
            ):
                ctx = scenarios.Context(stack, client, api, raw_queue, peer, quick)
                plan = [
                    (name, scenario)
                    for name, scenario in SCENARIOS.items()
                    if not (quick and name in QUICK_SKIPS) and (only is None or name in only)
                ]
                for name, scenario in plan:
                    started = time.perf_counter()
                    sys.stdout.write(f"{name} ... ")
                    sys.stdout.flush()
                    try:
                        results[name] = await scenario(ctx)
                    except Exception as exc:  # noqa: BLE001 - a failed scenario is a result
                        results[name] = {"failed": f"{type(exc).__name__}: {exc}"[:500]}
                    sys.stdout.write(f"{time.perf_counter() - started:.1f}s {results[name]}\n")
    finally:
        peer.stop()
        stack.stop()
    for name, own in OWN_STACKS.items():
        if only is not None and name not in only:
            continue
        sys.stdout.write(f"{name} (stacks of its own) ... ")
        sys.stdout.flush()
        try:
            results[name] = await own(quick)
        except Exception as exc:  # noqa: BLE001 - a failed scenario is a result
            results[name] = {"failed": f"{type(exc).__name__}: {exc}"[:500]}
        sys.stdout.write(f"{results[name]}\n")
    if only is not None and "waiting_memory" not in only:
        return results
    # On a stack of its own: after the scenarios above (the 10,000-node run above all), the
    # worker reuses memory it freed and the per-run delta comes out near zero or negative.
    sys.stdout.write("waiting_memory (fresh stack) ... ")
    sys.stdout.flush()
    try:
        results["waiting_memory"] = await cache_sizes.measure(None, quick)
    except Exception as exc:  # noqa: BLE001 - a failed scenario is a result
        results["waiting_memory"] = {"failed": f"{type(exc).__name__}: {exc}"[:500]}
    sys.stdout.write(f"{results['waiting_memory']}\n")
    return results


def verdicts(
    results: dict[str, Any], *, quick: bool = False, partial: bool = False
) -> list[dict[str, Any]]:
    """Each target met or not; a partial run (`--only`) judges only the scenarios it ran."""
    rows = []
    for scenario, figure, op, target, text in TARGETS:
        if partial and scenario not in results:
            continue
        figures = results.get(scenario, {})
        value = figures.get(figure, figures.get("failed"))
        if quick and scenario in FULL_MODE_ONLY:
            rows.append({"target": text, "value": value, "met": None, "why": "quick mode"})
            continue
        if isinstance(value, int | float) and "memory" in text and value < 0:
            # RSS fell while runs were added: below what this count can measure.
            rows.append({"target": text, "value": value, "met": None, "why": "noise"})
            continue
        if op == "==":
            met = value == target
        elif not isinstance(value, int | float) or not isinstance(target, int | float):
            met = False  # the scenario failed: `value` is its error
        else:
            met = value >= target if op == ">=" else value <= target
        rows.append({"target": text, "value": value, "met": met})
    return rows


def markdown(document: dict[str, Any]) -> str:
    m = document["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench{' BENCH_ARGS=--quick' if document['quick'] else ''}` "
        f"on {m['date']}: {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
        f"{m['temporal']}. Dev server with a SQLite file (WAL), worker and API as separate "
        "processes, the raw-temporalio baselines on the same server in the same run "
        "(throughput and fan-out alternate Runlane and raw batches in four rounds; "
        "`start_throughput` alternates REST starts and `client.start_workflow` of the same "
        "input, 32 clients each, in eight ABBA rounds, and `python -m bench.start_path` "
        "profiles where a REST start spends its time). "
        "Figures are noisy on shared machines; compare the ratios. CPU seconds per run are "
        "per process; `bench` is the benchmark process itself, which holds both sides' "
        "clients, the HTTP peer and the raw baseline's worker. The throughput scenarios also "
        "start the same Runlane runs with the Temporal client (`runlane_without_rest`): "
        "the REST facade's share of the cost. Worker memory per waiting run "
        "against the workflow cache size: `.venv/bin/python -m bench.cache_sizes 1000 250`. "
        "Every node's outcome is recorded in history: pure nodes in batches, one local "
        "activity (marker) per ready stretch; `throughput_pure` also runs the same runs on the "
        "engine of runs started before recording (pure nodes evaluated in the workflow, no "
        "marker): `recorded_vs_unrecorded` is what recording costs, both without REST, and "
        "`latency` reports the history of a 10-pure-node run. Retry counts what runs again: "
        "activities the new execution scheduled and outcomes its batches evaluated again, "
        "for nodes that had run before, and steps the API shows with the new attempt; the "
        "reset task's batch takes the outcomes the failed execution recorded back from its "
        "history (`runlane_outcomes_taken_from_history`). `event_delivery` subscribes three "
        "receivers on 127.0.0.1 to every event type: latency is a `run.completed` event's "
        "receipt minus the run's `completed_at`, one run at a time; throughput alternates "
        "rounds with the endpoints enabled and disabled, and a round with them ends only when "
        "every receiver has every `run.completed` of it.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for row in document["targets"]:
        met = {True: "yes", False: "**no**"}.get(row["met"], f"n/a ({row.get('why')})")
        value = str(row["value"]).splitlines()[0][:90]  # one table row, even for an error
        lines.append(f"| {row['target']} | {value} | {met} |")
    lines += ["", "## Scenarios", ""]
    for name, figures in document["results"].items():
        lines.append(f"### {name}")
        lines.append("")
        lines.append("| figure | value |")
        lines.append("|---|---|")
        for key, value in figures.items():
            lines.append(f"| {key} | {json.dumps(value)} |")
        lines.append("")
    if NOTES.exists():  # hand-written readings of the figures, kept apart from them
        lines += ["## Notes", "", NOTES.read_text().strip(), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts (< 3 minutes)")
    parser.add_argument(
        "--render", action="store_true", help="rewrite BENCHMARKS.md from latest.json only"
    )
    parser.add_argument(
        "--only",
        help="comma-separated scenarios to run (e.g. throughput_io,retry_long); their figures "
        f"go to {ONLY_RESULTS.relative_to(REPO)}, and BENCHMARKS.md is left as it is",
    )
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    # The raw retry baseline fails an activity on purpose; the SDK logs each such failure
    # with a traceback, which is no news here.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    known = [*SCENARIOS, *OWN_STACKS, "waiting_memory"]
    if only is not None and (unknown := only - set(known)):
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(known)}")
    if args.render:
        document = json.loads(RESULTS.read_text())
        document["targets"] = verdicts(document["results"], quick=document["quick"])
        RESULTS.write_text(json.dumps(document, indent=2) + "\n")
        REPORT.write_text(markdown(document) + "\n")
        return
    started = time.perf_counter()
    results = asyncio.run(run_all(args.quick, only))
    document = {
        "machine": machine(),
        "quick": args.quick,
        "wall_s": round(time.perf_counter() - started, 1),
        "results": results,
        "targets": verdicts(results, quick=args.quick, partial=only is not None),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if only is not None:  # a partial run is no report
        ONLY_RESULTS.write_text(json.dumps(document, indent=2) + "\n")
        sys.stdout.write(f"wrote {ONLY_RESULTS} in {document['wall_s']} s\n")
        return
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    REPORT.write_text(markdown(document) + "\n")
    sys.stdout.write(f"wrote {RESULTS} and {REPORT} in {document['wall_s']} s\n")


if __name__ == "__main__":
    main()
