"""Domain errors: what went wrong, in the words a caller needs, with no transport in them.

The run service and the store raise these; `api/errors.py` alone turns each kind into an HTTP
status and API.md's error body (a CLI or a schedule would present them its own way). `code` is
the stable machine-readable name (`run_not_found`), `message` the sentence for a person,
`details` anything structured (`{"errors": [...]}` for validation problems).
"""

from __future__ import annotations

from typing import Any


class RunlaneError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


class NotFound(RunlaneError):
    """Missing, or belonging to another organization (the two are never told apart)."""


class Conflict(RunlaneError):
    """The target's current state does not allow the command (ended, not waiting, ...)."""


class InvalidInput(RunlaneError):
    """The request names something wrong; `details.errors` lists every problem found."""


class TooLarge(RunlaneError):
    """Over one of the size limits (a document, a run's inputs)."""


class Unavailable(RunlaneError):
    """A dependency (Temporal) cannot be reached or read right now; trying later may work."""


class Forbidden(RunlaneError):
    """The caller is known but may not do this: its key's role or subject does not allow it
    (a reviewer deciding a review assigned to others, approving a run it started itself)."""


class Unauthorized(RunlaneError):
    """The caller did not prove who it is: e.g. an inbound webhook call whose signature does
    not verify."""


def not_found(kind: str, identifier: str) -> NotFound:
    return NotFound(f"{kind}_not_found", f"No {kind} {identifier} in this organization.")


def invalid(code: str, message: str, errors: list[dict[str, Any]] | None = None) -> InvalidInput:
    return InvalidInput(code, message, {"errors": errors} if errors is not None else None)
