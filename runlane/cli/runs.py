"""`runlane runs`: start runs with documents, JSON and text; list, show and follow them; cancel,
restart, rerun and retry them."""

from __future__ import annotations

from typing import Any

import click
from rich.live import Live

import runlane.cli.render as render
from runlane.cli.common import (
    EXIT_OK,
    EXIT_RUN_CANCELLED,
    EXIT_RUN_ERROR,
    Invocation,
    command_options,
    first,
    limit_option,
    resolve_workflow,
)
from runlane.cli.inputs import document_files, json_inputs, text_inputs
from runlane.client import EndEvent, RunEvent, Runlane, StepEvent

STATUSES = ("pending", "running", "waiting_for_human", "completed", "error", "cancelled")
TRIGGERS = ("api", "restart", "rerun", "schedule", "webhook", "parent")
# Where `runs watch` stops: the run ended, or it waits for a person.
WATCH_STOPS = {"completed", "error", "cancelled", "waiting_for_human"}
EXIT_CODES = {"error": EXIT_RUN_ERROR, "cancelled": EXIT_RUN_CANCELLED}

command_id_option = click.option(
    "--command-id",
    metavar="KEY",
    help="Idempotency key: the same key again answers the first call's run, starts nothing.",
)
watch_option = click.option(
    "--watch", "-w", is_flag=True, help="Then follow the run as `runs watch` does."
)
json_option = click.option(
    "--json",
    "json_values",
    multiple=True,
    metavar="NODE=JSON",
    help="A start_json node's input: NODE='{\"a\": 1}', NODE=@file.json or NODE=@- (stdin).",
)
text_option = click.option(
    "--text",
    "text_values",
    multiple=True,
    metavar="NODE=TEXT",
    help="A start_text node's input: NODE='some text', NODE=@file.txt or NODE=@- (stdin).",
)
doc_option = click.option(
    "--doc",
    "doc_values",
    multiple=True,
    metavar="NODE=PATH",
    help="A start node's document, read from PATH (MIME type from its name).",
)


@click.group()
def runs() -> None:
    """Runs: start, list, show, steps, watch, cancel, restart, rerun, retry, plan."""


def _after_command(invocation: Invocation, client: Runlane, run: Any, watch: bool) -> None:
    """A command's new or changed run: shown, or followed with --watch."""
    if watch:
        render.note(invocation.json, f"run {run.id}: following it (Ctrl-C stops watching)")
        raise SystemExit(follow(invocation, client, run.id))
    render.emit(invocation.json, run, render.run_view)


@runs.command()
@command_options
@click.argument("workflow")
@json_option
@text_option
@doc_option
@click.option("--draft", is_flag=True, help="Run the current draft, not the published snapshot.")
@command_id_option
@watch_option
def start(
    invocation: Invocation,
    workflow: str,
    json_values: tuple[str, ...],
    text_values: tuple[str, ...],
    doc_values: tuple[str, ...],
    draft: bool,
    command_id: str | None,
    watch: bool,
) -> None:
    """Start a run of WORKFLOW (its wf_ id or its name), each input keyed by its start node."""
    inputs = (
        json_inputs(json_values),
        text_inputs(text_values),
        document_files(doc_values),
    )
    client = invocation.client()
    run = client.workflows.runs.create(
        resolve_workflow(client, workflow),
        json_inputs=inputs[0] or None,
        text_inputs=inputs[1] or None,
        documents=inputs[2] or None,
        config_source="draft" if draft else "published",
        command_id=command_id,
    )
    _after_command(invocation, client, run, watch)


@runs.command("list")
@command_options
@click.option("--workflow", "workflow", metavar="WF", help="Only runs of this workflow (id/name).")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--trigger", "trigger_type", type=click.Choice(TRIGGERS))
@limit_option
def list_(
    invocation: Invocation,
    workflow: str | None,
    status: Any,
    trigger_type: Any,
    limit: int,
) -> None:
    """Runs, newest first."""
    client = invocation.client()
    found = client.workflows.runs.list(
        workflow_id=resolve_workflow(client, workflow) if workflow else None,
        status=status,
        trigger_type=trigger_type,
        limit=min(limit, 200),
    )
    render.emit(invocation.json, first(found, limit), render.runs_table)


@runs.command()
@command_options
@click.argument("run_id", metavar="RUN")
def show(invocation: Invocation, run_id: str) -> None:
    """One run: status, inputs' workflow, outputs or error, its Temporal UI link."""
    render.emit(invocation.json, invocation.client().workflows.runs.get(run_id), render.run_view)


@runs.command()
@command_options
@click.argument("run_id", metavar="RUN")
def steps(invocation: Invocation, run_id: str) -> None:
    """A run's steps, one per node, in topological order."""
    found = invocation.client().workflows.runs.steps(run_id)
    render.emit(invocation.json, {"data": found}, render.steps)


@runs.command()
@command_options
@click.argument("run_id", metavar="RUN")
def watch(invocation: Invocation, run_id: str) -> None:
    """Follow a run live (its steps and a progress bar) until it ends or waits for a human.

    Exit code 0 when it completed or waits for a human, 3 when it ended in error, 4 when it was
    cancelled. With --output json, only the run's last record is written.
    """
    raise SystemExit(follow(invocation, invocation.client(), run_id))


def follow(invocation: Invocation, client: Runlane, run_id: str) -> int:
    """Follow the run's events; show where it stopped; its exit code."""
    view = render.WatchView(run_id)
    console = render.out()
    # Live frames only on a terminal; a pipe or a file gets the last frame, once.
    live = Live(view, console=console, auto_refresh=False, redirect_stderr=False)
    animated = console.is_terminal and not invocation.json
    if animated:
        live.start()
    try:
        for event in client.workflows.runs.events(run_id):
            if isinstance(event, StepEvent):
                view.update_step(render.as_data(event.step))
            elif isinstance(event, RunEvent):
                view.update_run(render.as_data(event.run))
            if animated:
                live.refresh()
            # The stream ends with the run; a run waiting for a person stops the watch too.
            if isinstance(event, EndEvent) or view.run["status"] == "waiting_for_human":
                break
    finally:
        if animated:
            live.stop()
    # The stream's last record may be older than its `end`: read the run as it ended.
    run = render.as_data(client.workflows.runs.get(run_id))
    if invocation.json:
        render.emit(True, run, render.run_view)
    else:
        if not animated:
            console.print(view)
        console.print(render.run_view(run))
        if run["status"] == "waiting_for_human":
            nodes = " ".join(run.get("waiting_for_node_ids") or [])
            render.note(False, f"waiting for a review: runlane reviews approve {run_id} {nodes}")
    return EXIT_CODES.get(run["status"], EXIT_OK)


@runs.command()
@command_options
@click.argument("run_id", metavar="RUN")
@command_id_option
def cancel(invocation: Invocation, run_id: str, command_id: str | None) -> None:
    """Cancel a run that has not ended."""
    run = invocation.client().workflows.runs.cancel(run_id, command_id=command_id)
    render.emit(invocation.json, run, render.run_view)


@runs.command()
@command_options
@click.argument("run_id", metavar="RUN")
@click.option("--draft", is_flag=True, help="Use the workflow's draft, not its published one.")
@command_id_option
@watch_option
def restart(
    invocation: Invocation, run_id: str, draft: bool, command_id: str | None, watch: bool
) -> None:
    """A new run with RUN's inputs and the workflow's current published definition."""
    client = invocation.client()
    run = client.workflows.runs.restart(
        run_id, config_source="draft" if draft else "published", command_id=command_id
    )
    _after_command(invocation, client, run, watch)


@runs.command()
@command_options
@click.argument("run_id", metavar="RUN")
@command_id_option
@watch_option
def rerun(invocation: Invocation, run_id: str, command_id: str | None, watch: bool) -> None:
    """A new run with RUN's inputs and the same snapshot RUN ran."""
    client = invocation.client()
    run = client.workflows.runs.rerun(run_id, command_id=command_id)
    _after_command(invocation, client, run, watch)


@runs.command()
@command_options
@click.argument("run_id", metavar="RUN")
@click.option("--from-start", is_flag=True, help="Run everything again, in place.")
@click.option("--node", metavar="NODE", help="Run NODE and what is downstream of it again.")
@click.option("--plan", "plan_id", metavar="PLAN_ID", help="Do exactly what `runs plan` said.")
@json_option
@text_option
@doc_option
@command_id_option
@watch_option
def retry(
    invocation: Invocation,
    run_id: str,
    from_start: bool,
    node: str | None,
    plan_id: str | None,
    json_values: tuple[str, ...],
    text_values: tuple[str, ...],
    doc_values: tuple[str, ...],
    command_id: str | None,
    watch: bool,
) -> None:
    """The same run continues: from its failure point (default), from the start, or from a
    node; inputs given override the run's (with --from-start or --node)."""
    if sum([from_start, node is not None, plan_id is not None]) > 1:
        raise click.UsageError("give at most one of --from-start, --node and --plan")
    client = invocation.client()
    run = client.workflows.runs.retry(
        run_id,
        from_="start" if from_start else ("node" if node else None),
        node_id=node,
        plan_id=plan_id,
        json_inputs=json_inputs(json_values) or None,
        text_inputs=text_inputs(text_values) or None,
        documents=document_files(doc_values) or None,
        command_id=command_id,
    )
    _after_command(invocation, client, run, watch)


@runs.command()
@command_options
@click.argument("run_id", metavar="RUN")
@click.option("--from-start", is_flag=True, help="Plan a retry from the start.")
@click.option("--node", metavar="NODE", help="Plan a retry from NODE.")
def plan(invocation: Invocation, run_id: str, from_start: bool, node: str | None) -> None:
    """What a retry would reuse, run again and repeat of side effects; changes nothing. Its
    plan id makes `runs retry --plan` do exactly that."""
    if from_start and node:
        raise click.UsageError("give --from-start or --node, not both")
    found = invocation.client().workflows.runs.retry_plan(
        run_id, from_="start" if from_start else ("node" if node else None), node_id=node
    )
    render.emit(invocation.json, found, render.plan_view)
