"""`runlane reviews`: the reviewers' inbox, and approving or rejecting a waiting node."""

from __future__ import annotations

import click

import runlane.cli.render as render
from runlane.cli.common import Invocation, command_options, first, limit_option
from runlane.cli.inputs import json_inputs

command_id_option = click.option(
    "--command-id",
    metavar="KEY",
    help="Idempotency key: the same key again answers the first decision's run.",
)
comment_option = click.option("--comment", help="Why, for the record.")
reviewer_option = click.option(
    "--reviewer", metavar="NAME", help="Who decides (default: the API key's subject)."
)


@click.group()
def reviews() -> None:
    """Human reviews: the inbox, approve, reject."""


@reviews.command("list")
@command_options
@click.option("--assignee", metavar="NAME", help="Only reviews assigned to NAME.")
@limit_option
def list_(invocation: Invocation, assignee: str | None, limit: int) -> None:
    """Reviews waiting for a decision, across runs, newest run first."""
    found = invocation.client().reviews.list(assignee=assignee, limit=min(limit, 200))
    render.emit(invocation.json, first(found, limit), render.reviews_table)


@reviews.command()
@command_options
@click.argument("run_id", metavar="RUN")
@click.argument("node_id", metavar="NODE")
@click.option(
    "--data",
    metavar="JSON",
    help="Approve with this edited data (a JSON object; @file.json or @- reads it).",
)
@comment_option
@reviewer_option
@command_id_option
def approve(
    invocation: Invocation,
    run_id: str,
    node_id: str,
    data: str | None,
    comment: str | None,
    reviewer: str | None,
    command_id: str | None,
) -> None:
    """Approve the review node NODE of RUN (with --data: an edit of what it outputs)."""
    edited = json_inputs((f"data={data}",), option="--data")["data"] if data else None
    run = invocation.client().reviews.decide(
        run_id,
        node_id,
        decision="approve",
        data=edited,
        comment=comment,
        reviewer=reviewer,
        command_id=command_id,
    )
    render.emit(invocation.json, run, render.run_view)


@reviews.command()
@command_options
@click.argument("run_id", metavar="RUN")
@click.argument("node_id", metavar="NODE")
@comment_option
@reviewer_option
@command_id_option
def reject(
    invocation: Invocation,
    run_id: str,
    node_id: str,
    comment: str | None,
    reviewer: str | None,
    command_id: str | None,
) -> None:
    """Reject the review node NODE of RUN: the run follows its `rejected` edges, or errs."""
    run = invocation.client().reviews.decide(
        run_id,
        node_id,
        decision="reject",
        comment=comment,
        reviewer=reviewer,
        command_id=command_id,
    )
    render.emit(invocation.json, run, render.run_view)
