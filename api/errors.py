"""Every non-2xx answer has API.md's error body; errors are mapped here, in one place.

Domain errors (`runlane.errors`, raised by the run service and the store) become statuses by
their kind; `ApiError` is for what only HTTP has (authentication, bodies, routes); Temporal's
own errors that reach here are mapped too, so none of them turns into a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from runlane.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RunlaneError,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from runlane.unicode import replaced

log = logging.getLogger("runlane.api")

_TYPE_BY_STATUS = {
    400: "invalid_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    405: "invalid_request",
    409: "conflict",
    413: "payload_too_large",
    415: "invalid_request",
    422: "invalid_request",
    429: "rate_limited",
}


def error_type(status: int) -> str:
    return _TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        # Response headers the answer needs (`Retry-After` of a 429).
        self.headers = headers


# The status each kind of domain error answers with.
STATUS_OF: dict[type[RunlaneError], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    InvalidInput: 422,
    Unavailable: 503,
}


def status_of(error: RunlaneError) -> int:
    for kind, status in STATUS_OF.items():
        if isinstance(error, kind):
            return status
    return 500


def error_body(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    return {
        "error": {
            "type": error_type(status),
            "code": code,
            "message": _printable(message),
            "details": _printable(details or {}),
        }
    }


def _printable(value: Any) -> Any:
    """Messages and locations echo what the caller sent (an id, a key), which may hold a lone
    surrogate: rendering the error must never be what fails."""
    return replaced(value)


def _response(status: int, code: str, message: str, details: dict | None = None, headers=None):
    return JSONResponse(error_body(status, code, message, details), status, headers=headers)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RunlaneError)
    return _response(status_of(exc), exc.code, exc.message, exc.details)


# FastAPI and Starlette answer 400 for a body they cannot parse: JSON that Python's parser
# refuses although the JSON grammar allows it (nesting past the recursion limit, an integer of
# more than 4,300 digits) or that is not UTF-8, a multipart body that does not parse. Each is a
# body the API cannot read: 422 like every other unreadable body (the status the OpenAPI
# document gives every operation), with the reason.


def _unreadable_body(exc: StarletteHTTPException) -> JSONResponse:
    cause = exc.__cause__
    if isinstance(cause, RecursionError):
        code, message = "invalid_json", "The body is not JSON this API can read: it nests too deep."
    elif isinstance(cause, UnicodeDecodeError):
        code, message = "invalid_json", "The body is not JSON this API can read: it is not UTF-8."
    elif isinstance(cause, ValueError):  # the only other one json.loads raises
        code = "invalid_json"
        message = (
            "The body is not JSON this API can read: a number in it has more digits than "
            "this API reads (4300)."
        )
    else:
        detail = exc.detail if isinstance(exc.detail, str) else "it does not parse"
        code, message = "invalid_body", f"The body cannot be read: {detail.rstrip('.')}."
    return _response(422, code, message, {"errors": [{"loc": ["body"], "message": message}]})


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        return _unreadable_body(exc)
    codes = {
        401: "unauthenticated",
        404: "route_not_found",
        405: "method_not_allowed",
        413: "request_too_large",  # a body over the limit (api/main.py)
    }
    message = exc.detail if isinstance(exc.detail, str) else "Request failed."
    return _response(
        exc.status_code,
        codes.get(exc.status_code, "http_error"),
        message,
        getattr(exc, "details", None),
        headers=getattr(exc, "headers", None),
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": _json_safe(list(error.get("loc", ()))), "message": str(error.get("msg", ""))}
        for error in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['message']}" for e in errors[:5])
    # A body that is not JSON at all is named like one JSON cannot read (_unreadable_body).
    not_json = all(error.get("type") == "json_invalid" for error in exc.errors())
    code = "invalid_json" if exc.errors() and not_json else "validation_failed"
    return _response(422, code, f"Invalid request: {summary}", {"errors": errors})


async def _temporal_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, WorkflowAlreadyStartedError):
        return _response(409, "run_exists", "A run with this id already exists.")
    assert isinstance(exc, RPCError)
    if exc.status == RPCStatusCode.NOT_FOUND:
        return _response(404, "run_not_found", "No such run in this organization.")
    if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return _response(503, "temporal_unavailable", "Temporal cannot be reached right now.")
    if exc.status == RPCStatusCode.ALREADY_EXISTS:
        return _response(409, "conflict", exc.message)
    if exc.status == RPCStatusCode.INVALID_ARGUMENT and "size exceeds limit" in exc.message:
        return _response(
            413,
            "run_too_large",
            "The run's input (its definition and inputs) is larger than Temporal accepts in one "
            "payload (about 2 MB, compressed). Split the workflow, or pass large data as "
            "documents.",
        )
    log.error("Temporal error: %s (%s)", exc.message, exc.status)
    return _response(502, "temporal_error", "Temporal answered with an error.")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    # Logged with its stack trace for operators; the caller never sees one.
    log.exception("unhandled error", exc_info=exc)
    return _response(500, "internal_error", "Internal error; it has been logged.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RunlaneError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RPCError, _temporal_error)
    app.add_exception_handler(WorkflowAlreadyStartedError, _temporal_error)
    app.add_exception_handler(Exception, _unexpected)
