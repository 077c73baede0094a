"""The benchmark report judges targets from the figures alone (bench/run.py)."""

from __future__ import annotations

from typing import Any

from bench.run import markdown, verdicts

FULL = {
    "throughput_pure": {"ratio": 3.5},
    "throughput_io": {"ratio": 0.85},
    "latency": {"runlane_p50_ms": 60.0},
    "start_throughput": {"ratio": 0.55},
    "review_resume": {"runlane_p50_ms": 50.0},
    "retry_long": {
        "runlane_activities_reexecuted": 1,
        "runlane_steps_run_again": 2,
        "ratio": 0.2,
    },
    "waiting_memory": {"worker_kb_per_waiting_run": 40.0},
    "run_10000_nodes": {"status": "completed"},
    "run_10000_wide": {"status": "completed"},
}


def met(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {row["target"]: row["met"] for row in rows}


def test_each_target_is_judged_from_its_figure() -> None:
    verdict = met(verdicts(FULL))
    assert verdict["pure-node throughput ≥ 3× raw regular activities"] is True
    assert verdict["I/O-node throughput ≥ 0.9× raw"] is False
    assert verdict["REST starts/s ≥ 0.7× raw client.start_workflow (32 clients)"] is False
    assert verdict["… and steps the API shows run again"] is False
    assert verdict["a 10,000-node run completes (full mode)"] is True


def test_a_failed_scenario_misses_its_target_and_shows_why() -> None:
    results = {**FULL, "latency": {"failed": "ReadTimeout: no answer\nmore"}}
    rows = verdicts(results)
    assert met(rows)["REST end-to-end p50, 10 pure nodes ≤ 100 ms"] is False
    report = markdown(
        {
            "machine": {
                "date": "today",
                "cores": 2,
                "memory_gib": 24,
                "python": "3.11",
                "temporal": "temporal",
            },
            "quick": False,
            "results": results,
            "targets": rows,
        }
    )
    assert "| REST end-to-end p50, 10 pure nodes ≤ 100 ms | ReadTimeout: no answer | **no** |" in (
        report
    )


def test_quick_mode_leaves_full_mode_targets_unjudged() -> None:
    quick = {k: v for k, v in FULL.items() if not k.startswith("run_10000")}
    quick["waiting_memory"] = {"worker_kb_per_waiting_run": 225.8}
    verdict = met(verdicts(quick, quick=True))
    assert verdict["≤ 60 KB worker memory per waiting run (full mode)"] is None
    assert verdict["a 10,000-node run completes (full mode)"] is None
    assert verdict["pure-node throughput ≥ 3× raw regular activities"] is True


def test_a_partial_run_judges_only_what_it_ran() -> None:
    rows = verdicts({"retry_long": FULL["retry_long"]}, partial=True)
    assert {row["target"] for row in rows} == {
        "retry re-executes exactly 1 node: in history (activities, batch outcomes)",
        "… and steps the API shows run again",
        "retry ≤ 1.2× a raw reset's time",
    }
