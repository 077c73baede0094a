"""Typed errors: what went wrong is a class, what the API said is on the instance.

Every non-2xx answer of the API has the body ``{"error": {"type", "code", "message",
"details"}}`` (API.md "Errors"); :class:`APIStatusError` carries those fields next to the
HTTP status, and a subclass per status lets callers ``except NotFoundError`` instead of
comparing numbers. Failures before any answer arrived are :class:`APIConnectionError` (and
:class:`APITimeoutError`), so a caller can tell "the API refused" from "the API was not
reached".
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "InvalidRequestError",
    "MissingAPIKeyError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RunlaneError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
    "WaitTimeoutError",
]


class RunlaneError(Exception):
    """Base of every error this client raises."""


class MissingAPIKeyError(RunlaneError):
    """No API key given, in RUNLANE_API_KEY, or in the dev key file `make run` writes."""


class APIConnectionError(RunlaneError):
    """The request got no answer: the API could not be reached, or the connection broke."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout."""


class APIStatusError(RunlaneError):
    """The API answered with a non-2xx status; ``type``, ``code``, ``message`` and
    ``details`` are the error body's (API.md "Errors")."""

    status: int

    def __init__(
        self,
        *,
        status: int,
        type: str,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        param: str | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.type = type
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.param = param
        self.response = response

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The validation problems (``details.errors``), each ``{loc, message}`` or
        ``{node_id, message}``; empty when the answer lists none."""
        found = self.details.get("errors")
        return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


class InvalidRequestError(APIStatusError):
    """400 or 422: the request was understood and refused (``type: invalid_request``)."""


class BadRequestError(InvalidRequestError):
    status = 400


class UnprocessableEntityError(InvalidRequestError):
    status = 422


class AuthenticationError(APIStatusError):
    status = 401


class PermissionDeniedError(APIStatusError):
    status = 403


class NotFoundError(APIStatusError):
    status = 404


class ConflictError(APIStatusError):
    status = 409


class PayloadTooLargeError(APIStatusError):
    status = 413


class RateLimitError(APIStatusError):
    status = 429


class InternalServerError(APIStatusError):
    """5xx."""

    status = 500


class ServiceUnavailableError(InternalServerError):
    """503: a dependency (Temporal, the store) was out of reach; the API kept nothing half
    done that a replay of the same ``command_id`` would not finish."""

    status = 503


class WaitTimeoutError(RunlaneError, TimeoutError):
    """``runs.wait`` ran out of time; ``run`` is the last state seen."""

    def __init__(self, message: str, run: Any) -> None:
        super().__init__(message)
        self.run = run


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}

# For errors that arrive without a status (the `error` event of a run's SSE stream).
STATUS_OF_TYPE = {
    "invalid_request": 422,
    "authentication": 401,
    "permission": 403,
    "not_found": 404,
    "conflict": 409,
    "payload_too_large": 413,
    "rate_limited": 429,
    "server_error": 503,
}


def error_class(status: int) -> type[APIStatusError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return InternalServerError
    if status == 400 or status == 422:
        return InvalidRequestError
    return APIStatusError


def status_error(status: int, body: Any, response: httpx.Response | None = None) -> APIStatusError:
    """The typed error for an answer's status and (parsed JSON) body; a body that is not
    API.md's shape (a proxy's page, say) still gives a usable error."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        reason = response.reason_phrase if response is not None else ""
        text = response.text[:500] if response is not None else ""
        return error_class(status)(
            status=status,
            type="server_error" if status >= 500 else "invalid_request",
            code=f"http_{status}",
            message=text or reason or f"HTTP {status}",
            response=response,
        )
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    return error_class(status)(
        status=status,
        type=str(error.get("type", "")),
        code=str(error.get("code", "")),
        message=str(error.get("message", "")),
        details=details,
        param=_param(error, details or {}),
        response=response,
    )


def _param(error: dict[str, Any], details: dict[str, Any]) -> str | None:
    """The body's `param` when it names one, else the first validation problem's place
    (``body.json_inputs.meta``, or the node id of a definition problem)."""
    if isinstance(error.get("param"), str):
        return str(error["param"])
    problems = details.get("errors")
    if isinstance(problems, list) and problems and isinstance(problems[0], dict):
        first = problems[0]
        if isinstance(first.get("loc"), list):
            return ".".join(str(part) for part in first["loc"])
        if isinstance(first.get("node_id"), str):
            return str(first["node_id"])
    return None
