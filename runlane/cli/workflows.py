"""`runlane workflows`: push definition files, validate them, list and show workflows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import runlane.cli.render as render
from runlane.cli.common import (
    EXIT_FAILED,
    Failure,
    Invocation,
    command_options,
    first,
    limit_option,
    resolve_workflow,
    workflows_named,
)
from runlane.cli.inputs import workflow_file

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def workflows() -> None:
    """Workflow definitions: push, validate, list, show, publish."""


@workflows.command()
@command_options
@click.argument("file", type=FILE)
@click.option("--publish", is_flag=True, help="Publish the draft as the next snapshot.")
@click.option("--name", help="The workflow's name (default: the file's `name`, else its stem).")
@click.option(
    "--id", "workflow_id", metavar="WF", help="Update this workflow's draft, whatever its name."
)
def push(
    invocation: Invocation,
    file: Path,
    publish: bool,
    name: str | None,
    workflow_id: str | None,
) -> None:
    """Create a workflow from FILE (YAML or JSON), or replace the draft of the workflow with
    the same name; print its id.

    FILE holds `name`, `description` and `definition`, or just a definition (`nodes`,
    `edges`), named after the file. The name finds the workflow: none with it, one is
    created; one, its draft is replaced; several, give --id.
    """
    wanted = workflow_file(file)
    name = name or wanted.name
    client = invocation.client()
    if workflow_id is None:
        matches = workflows_named(client, name)
        if len(matches) > 1:
            raise Failure(
                "invalid_request",
                "ambiguous_workflow_name",
                f"{len(matches)} workflows are named {name!r} ({', '.join(matches)}): "
                "say which with --id.",
            )
        workflow_id = matches[0] if matches else None
    if workflow_id is None:
        workflow = client.workflows.create(
            name=name, definition=wanted.definition, description=wanted.description
        )
        action = "created"
    else:
        workflow = client.workflows.update_draft(workflow_id, definition=wanted.definition)
        action = "updated"
    result: dict[str, Any] = {**render.as_data(workflow), "action": action, "snapshot": None}
    if publish:
        result["snapshot"] = render.as_data(client.workflows.publish(workflow.id))
    render.emit(invocation.json, result, render.pushed)


@workflows.command()
@command_options
@click.argument("files", nargs=-1, required=True, type=FILE)
def validate(invocation: Invocation, files: tuple[Path, ...]) -> None:
    """Check definition files (YAML or JSON) with the API, without saving anything; list every
    problem. Exit code 1 when any file is invalid."""
    client = invocation.client()
    results = []
    for path in files:
        answer = render.as_data(
            client.workflows.validate(definition=workflow_file(path).definition)
        )
        results.append({"file": str(path), **answer})
    render.emit(invocation.json, results, render.validation)
    if not all(result["valid"] for result in results):
        raise SystemExit(EXIT_FAILED)


@workflows.command("list")
@command_options
@limit_option
def list_(invocation: Invocation, limit: int) -> None:
    """The organization's workflows, newest first."""
    found = invocation.client().workflows.list(limit=min(limit, 200))
    render.emit(invocation.json, first(found, limit), render.workflows_table)


@workflows.command()
@command_options
@click.argument("workflow")
def show(invocation: Invocation, workflow: str) -> None:
    """One workflow (WORKFLOW: its wf_ id or its name) and its draft's nodes."""
    client = invocation.client()
    found = client.workflows.get(resolve_workflow(client, workflow))
    render.emit(invocation.json, found, render.workflow_view)


@workflows.command()
@command_options
@click.argument("workflow")
def publish(invocation: Invocation, workflow: str) -> None:
    """Publish WORKFLOW's draft (wf_ id or name) as its next snapshot."""
    client = invocation.client()
    snapshot = client.workflows.publish(resolve_workflow(client, workflow))
    render.emit(invocation.json, snapshot, render.snapshot_view)
