"""The `runlane` command line: workflows, runs and reviews over the REST API, through
`runlane.client` (docs/cli-readme.md)."""

from __future__ import annotations

import click

from runlane.cli.common import Invocation, connection_options
from runlane.cli.reviews import reviews
from runlane.cli.runs import runs
from runlane.cli.workflows import workflows


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@connection_options
@click.pass_context
def cli(ctx: click.Context, api_key: str | None, base_url: str | None, output: str | None) -> None:
    """Runlane: durable workflow runs on Temporal, from the command line.

    Connects like the Python client: --api-key or RUNLANE_API_KEY (else the key `make run`
    wrote), --base-url or RUNLANE_BASE_URL (default http://127.0.0.1:8000). Every command
    takes these options too, and --output json for plain JSON on stdout.
    """
    ctx.obj = Invocation(api_key=api_key, base_url=base_url, output=output or "table")


cli.add_command(workflows)
cli.add_command(runs)
cli.add_command(reviews)


def main() -> None:
    cli.main(prog_name="runlane")
