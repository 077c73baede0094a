"""Everything the CLI writes: rich tables for people on stdout, plain JSON for scripts on
stdout (and nothing else there), errors on stderr. Commands hand in the API's JSON shapes
(API.md), as dicts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

STATUS_STYLES = {
    "completed": "green",
    "error": "bold red",
    "cancelled": "red",
    "running": "yellow",
    "pending": "cyan",
    "waiting_for_human": "magenta",
    "skipped": "dim",
}
ENDED_STEP = {"completed", "error", "skipped", "cancelled"}
# Wide enough that ids are never folded when the output is a pipe or a file.
PIPE_WIDTH = 200


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=PIPE_WIDTH)
    return console


def out() -> Console:
    return _console()


def err() -> Console:
    return _console(stderr=True)


def as_data(value: Any) -> Any:
    """The API's JSON shape of a client result (field names as API.md spells them)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [as_data(item) for item in value]
    if isinstance(value, Mapping):
        return {key: as_data(item) for key, item in value.items()}
    return value


def emit(as_json: bool, data: Any, table: Callable[[Any], RenderableType]) -> None:
    """JSON on stdout for --output json, else the rich rendering."""
    data = as_data(data)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        out().print(table(data))


def note(as_json: bool, message: str) -> None:
    """A hint for people (next page, what to do next): on stderr, never in JSON output."""
    if not as_json:
        err().print(message, style="dim")


def error(
    as_json: bool,
    *,
    type_: str,
    code: str | None,
    message: str,
    status: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """API.md's error on stderr: `{"error": {...}}` with --output json, else a readable line
    and, for validation errors, one line per problem."""
    body: dict[str, Any] = {
        "type": type_,
        "code": code,
        "message": message,
        "details": dict(details or {}),
    }
    if as_json:
        sys.stderr.write(json.dumps({"error": body}, ensure_ascii=False) + "\n")
        return
    console = err()
    head = Text("Error: ", style="bold red")
    head.append(f"{type_}" + (f" ({code})" if code else "") + (f" [{status}]" if status else ""))
    head.append(f": {message}")
    console.print(head)
    for problem in body["details"].get("errors") or []:
        console.print(Text(f"  - {problem_line(problem)}"))


def problem_line(problem: Mapping[str, Any]) -> str:
    """One validation problem: `node big: ...` for definitions, `loc: ...` for requests."""
    where = problem.get("node_id")
    if where:
        return f"node {where}: {problem.get('message', '')}"
    loc = problem.get("loc")
    if loc:
        return f"{'.'.join(map(str, loc))}: {problem.get('message', '')}"
    return str(problem.get("message", problem))


def status(value: str | None) -> Text:
    return Text(value or "-", style=STATUS_STYLES.get(value or "", ""))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _short_json(value: Any, limit: int = 60) -> str:
    text = _cell(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fields(rows: Iterable[tuple[str, Any]], title: str | None = None) -> Table:
    table = Table(show_header=False, title=title, title_justify="left", box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value if isinstance(value, Text) else _cell(value))
    return table


# ------------------------------------------------------------------ workflows


def workflows_table(page: Mapping[str, Any]) -> Table:
    table = Table("id", "name", "published snapshot", "updated", title="Workflows")
    for workflow in page["data"]:
        table.add_row(
            workflow["id"],
            workflow["name"],
            _cell(workflow.get("published_snapshot_id")),
            _cell(workflow.get("updated_at")),
        )
    return table


def workflow_view(workflow: Mapping[str, Any]) -> RenderableType:
    definition = (workflow.get("draft") or {}).get("definition") or {}
    head = _fields(
        [
            ("id", workflow["id"]),
            ("name", workflow["name"]),
            ("description", workflow.get("description") or ""),
            ("published snapshot", workflow.get("published_snapshot_id")),
            ("draft updated", (workflow.get("draft") or {}).get("updated_at")),
        ]
    )
    nodes = Table("node", "type", "label", title="Draft nodes", title_justify="left")
    for node in definition.get("nodes", []):
        nodes.add_row(node.get("id", "?"), node.get("type", "?"), node.get("label") or "")
    return Group(head, nodes)


def pushed(result: Mapping[str, Any]) -> RenderableType:
    """What `workflows push` did: created or updated, and published."""
    rows: list[tuple[str, Any]] = [
        ("id", result["id"]),
        ("name", result["name"]),
        ("draft", result["action"]),
    ]
    if result.get("snapshot"):
        snapshot = result["snapshot"]
        rows.append(("published", f"version {snapshot['version']} ({snapshot['id']})"))
    return _fields(rows)


def snapshot_view(snapshot: Mapping[str, Any]) -> RenderableType:
    return _fields(
        [
            ("workflow", snapshot["workflow_id"]),
            ("snapshot", snapshot["id"]),
            ("version", str(snapshot["version"])),
        ]
    )


def validation(results: list[Mapping[str, Any]]) -> RenderableType:
    """`workflows validate`: per file, valid or its problems."""
    lines: list[RenderableType] = []
    for result in results:
        if result["valid"]:
            lines.append(Text.assemble((f"{result['file']}: ", "bold"), ("valid", "green")))
            continue
        problems = result["errors"]
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        lines.append(Text.assemble((f"{result['file']}: ", "bold"), (count, "bold red")))
        lines += [Text(f"  - {problem_line(problem)}") for problem in problems]
    return Group(*lines)


# ------------------------------------------------------------------ runs


def runs_table(page: Mapping[str, Any]) -> Table:
    table = Table("id", "status", "workflow", "version", "trigger", "created", title="Runs")
    for run in page["data"]:
        workflow = run.get("workflow") or {}
        table.add_row(
            run["id"],
            status(run["status"]),
            workflow.get("name_at_run_time") or workflow.get("workflow_id") or "-",
            _cell(workflow.get("version")),
            (run.get("trigger") or {}).get("type", "-"),
            _cell((run.get("timing") or {}).get("created_at")),
        )
    return table


def run_view(run: Mapping[str, Any]) -> RenderableType:
    workflow = run.get("workflow") or {}
    timing = run.get("timing") or {}
    trigger = run.get("trigger") or {}
    rows: list[tuple[str, Any]] = [
        ("id", run["id"]),
        ("status", status(run["status"])),
        (
            "workflow",
            f"{workflow.get('name_at_run_time', '')} ({workflow.get('workflow_id')}, "
            f"version {workflow.get('version')})",
        ),
        (
            "trigger",
            trigger.get("type", "-")
            + (f" from {trigger['source_run_id']}" if trigger.get("source_run_id") else ""),
        ),
        ("attempt", str(run.get("attempt", 1))),
        ("created", timing.get("created_at")),
        ("completed", timing.get("completed_at")),
        ("duration", _duration(timing.get("duration_ms"))),
    ]
    if run.get("waiting_for_node_ids"):
        rows.append(("waiting for", ", ".join(run["waiting_for_node_ids"])))
    if run.get("final_outputs") is not None:
        rows.append(("outputs", run["final_outputs"]))
    if run.get("error"):
        failure = run["error"]
        rows.append(
            (
                "error",
                Text(
                    f"{failure.get('type')} at {failure.get('node_id') or failure.get('stage')}: "
                    f"{failure.get('message')}",
                    style="red",
                ),
            )
        )
    if (run.get("temporal") or {}).get("ui_url"):
        rows.append(("temporal", run["temporal"]["ui_url"]))
    return _fields(rows)


def steps_table(steps: list[Mapping[str, Any]], title: str | None = "Steps") -> Table:
    table = Table("node", "type", "status", "attempt", "duration", "output / error", title=title)
    for step in steps:
        if step.get("error"):
            detail = Text(
                f"{step['error'].get('type')}: {step['error'].get('message')}", style="red"
            )
        elif step.get("review"):
            review = step["review"]
            detail = Text(f"{review.get('decision')} by {review.get('reviewer') or '-'}")
        else:
            detail = Text(_short_json(step.get("output")))
        table.add_row(
            step["node_id"],
            step.get("node_type", ""),
            status(step["status"]),
            _cell(step.get("attempt") or None),  # 0: not run
            _duration(step.get("duration_ms")),
            detail,
        )
    return table


def steps(page: Mapping[str, Any]) -> Table:
    return steps_table(list(page["data"]))


def plan_view(plan: Mapping[str, Any]) -> RenderableType:
    allowed = Text("yes", style="green") if plan["allowed"] else Text("no", style="red")
    rows: list[tuple[str, Any]] = [
        ("plan", plan.get("plan_id")),
        ("from", f"{plan.get('from')}" + (f" {plan['node_id']}" if plan.get("node_id") else "")),
        ("allowed", allowed),
    ]
    if plan.get("reason"):
        rows.append(("reason", plan["reason"]))
    rows += [
        ("reuse", ", ".join(plan.get("reuse") or []) or "-"),
        ("run again", ", ".join(plan.get("rerun") or []) or "-"),
        ("repeated side effects", ", ".join(plan.get("repeated_side_effects") or []) or "-"),
    ]
    return _fields(rows)


class WatchView:
    """`runs watch`: the run's status, a progress bar of ended steps and a table of the steps,
    kept up to date from the run's events."""

    def __init__(self, run_id: str) -> None:
        self.run: dict[str, Any] = {"id": run_id, "status": None}
        self.steps: dict[str, Mapping[str, Any]] = {}

    def update_run(self, run: Mapping[str, Any]) -> None:
        self.run = dict(run)

    def update_step(self, step: Mapping[str, Any]) -> None:
        self.steps[step["node_id"]] = step

    def __rich__(self) -> RenderableType:
        total = len(self.steps)
        ended = sum(1 for step in self.steps.values() if step["status"] in ENDED_STEP)
        head = Text.assemble(
            (f"{self.run['id']} ", "bold"),
            status(self.run["status"]),
            f"  {ended}/{total} steps",
        )
        bar = ProgressBar(total=max(total, 1), completed=ended, width=60)
        # A grid puts each part on its own lines (a bare bar ends without a newline).
        grid = Table.grid()
        grid.add_row(head)
        grid.add_row(bar)
        grid.add_row(steps_table(list(self.steps.values()), title=None))
        return grid


# ------------------------------------------------------------------ reviews


def reviews_table(page: Mapping[str, Any]) -> Table:
    table = Table(
        "run", "node", "label", "instructions", "payload", "approvals", "waiting since",
        title="Reviews",
    )  # fmt: skip
    for review in page["data"]:
        approvals = review.get("approvals") or []
        table.add_row(
            review["run_id"],
            review["node_id"],
            review.get("label") or "",
            review.get("instructions") or "",
            _short_json(review.get("payload")),
            f"{len(approvals)}/{review.get('approvals_required', 1)}",
            _cell(review.get("waiting_since")),
        )
    return table
