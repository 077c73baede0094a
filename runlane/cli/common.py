"""What every command shares: the connection and output options, the client built from them,
the exit codes, and API errors turned into a message on stderr and an exit code."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click

import runlane.cli.render as render
from runlane.client import (
    APIConnectionError,
    APIStatusError,
    MissingAPIKeyError,
    Runlane,
    RunlaneError,
)

# Exit codes (documented in docs/cli-readme.md).
EXIT_OK = 0
# The API refused the request or could not be reached, or a definition is invalid.
EXIT_FAILED = 1
# The command line itself is wrong (click's own code): unknown option, unreadable file...
EXIT_USAGE = 2
# A watched run ended in `error`.
EXIT_RUN_ERROR = 3
# A watched run ended `cancelled`.
EXIT_RUN_CANCELLED = 4

OUTPUTS = ("table", "json")

F = TypeVar("F", bound=Callable[..., Any])


class Failure(Exception):
    """A refusal the CLI makes itself, reported like the API's errors (type, code, message)."""

    def __init__(self, type_: str, code: str, message: str) -> None:
        super().__init__(message)
        self.type, self.code, self.message = type_, code, message


@dataclass
class Invocation:
    """The options in force for this command: the root group's, overridden by the command's."""

    api_key: str | None = None
    base_url: str | None = None
    output: str = "table"

    @property
    def json(self) -> bool:
        return self.output == "json"

    def client(self) -> Runlane:
        # None lets the client read RUNLANE_API_KEY / RUNLANE_BASE_URL and the dev key file.
        return Runlane(api_key=self.api_key, base_url=self.base_url)


def connection_options(func: F) -> F:
    """--api-key, --base-url and --output, on the root group and on every command."""
    func = click.option(
        "--output",
        "-o",
        type=click.Choice(OUTPUTS),
        default=None,
        help="table (default): rich tables for people; json: plain JSON on stdout for scripts.",
    )(func)
    func = click.option(
        "--base-url",
        metavar="URL",
        default=None,
        help="The API's address [env RUNLANE_BASE_URL; default http://127.0.0.1:8000].",
    )(func)
    func = click.option(
        "--api-key",
        metavar="KEY",
        default=None,
        help="API key [env RUNLANE_API_KEY; default the key `make run` wrote in .data].",
    )(func)
    return func


def command_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the connection options to a command and hands it the merged `Invocation` as its
    first argument instead of them."""

    @connection_options
    @click.pass_context
    @functools.wraps(func)
    def wrapper(
        ctx: click.Context,
        *args: Any,
        api_key: str | None,
        base_url: str | None,
        output: str | None,
        **kwargs: Any,
    ) -> Any:
        root = ctx.find_object(Invocation) or Invocation()
        invocation = Invocation(
            api_key=api_key or root.api_key,
            base_url=base_url or root.base_url,
            output=output or root.output,
        )
        with api_errors(invocation):
            return func(invocation, *args, **kwargs)

    # The command's own arguments and options first in its --help, the shared ones after.
    params = wrapper.__click_params__  # type: ignore[attr-defined]
    params[:] = params[-3:] + params[:-3]
    return wrapper


@contextmanager
def api_errors(invocation: Invocation) -> Iterator[None]:
    """An API error (or an API out of reach) is written to stderr, with API.md's type, code and
    message, and ends the command with EXIT_FAILED."""
    try:
        yield
    except APIStatusError as err:
        render.error(
            invocation.json,
            type_=err.type,
            code=err.code,
            message=err.message,
            status=err.status,
            details=getattr(err, "details", None) or {},
        )
        raise SystemExit(EXIT_FAILED) from None
    except Failure as err:
        render.error(invocation.json, type_=err.type, code=err.code, message=err.message)
        raise SystemExit(EXIT_FAILED) from None
    except APIConnectionError as err:
        render.error(invocation.json, type_="connection", code="api_unreachable", message=str(err))
        raise SystemExit(EXIT_FAILED) from None
    except MissingAPIKeyError as err:
        render.error(
            invocation.json, type_="authentication", code="missing_api_key", message=str(err)
        )
        raise SystemExit(EXIT_FAILED) from None
    except RunlaneError as err:
        render.error(invocation.json, type_="client_error", code=None, message=str(err))
        raise SystemExit(EXIT_FAILED) from None


def resolve_workflow(client: Runlane, reference: str) -> str:
    """A workflow id as given (`wf_...`), or the id of the one workflow with that name."""
    if reference.startswith("wf_"):
        return reference
    matches = workflows_named(client, reference)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise Failure("not_found", "workflow_not_found", f"No workflow named {reference!r}.")
    raise Failure(
        "invalid_request",
        "ambiguous_workflow_name",
        f"{len(matches)} workflows are named {reference!r} ({', '.join(matches)}): give the id.",
    )


def workflows_named(client: Runlane, name: str) -> list[str]:
    """Ids of the organization's workflows with exactly this name, newest first."""
    return [workflow.id for workflow in client.workflows.list(limit=200) if workflow.name == name]


def first(items: Iterable[Any], limit: int) -> dict[str, Any]:
    """The first `limit` items of a listing (the client fetches pages as needed), shaped as the
    API's pages are: `{"data": [...]}`."""
    return {"data": render.as_data(list(itertools.islice(items, limit)))}


limit_option = click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="Show at most this many, newest first.",
)
