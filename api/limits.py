"""Request bodies over `RUNLANE_MAX_REQUEST_BYTES` are refused before they are read whole.

A declared `Content-Length` over the limit is answered at once, without reading a byte; a body
without one (chunked) is counted as it streams in and refused as soon as the count passes the
limit. Either way the answer is `413 request_too_large` with API.md's error body.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, error_body


class RequestTooLarge(HTTPException):
    """Raised from the body stream: FastAPI re-raises HTTP exceptions met while reading a
    body (it would turn any other error there into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=_message(limit))
        self.details = {"limit_bytes": limit}


def _message(limit: int) -> str:
    return f"The request body is larger than the limit of {limit} bytes."


def too_large(limit: int) -> ApiError:
    return ApiError(413, "request_too_large", _message(limit), {"limit_bytes": limit})


class RequestSizeLimit:
    def __init__(self, app: ASGIApp, limit_bytes: Callable[[], int]) -> None:
        self._app = app
        self._limit_bytes = limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = self._limit_bytes()
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        await self._app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    error = too_large(limit)
    body = json.dumps(error_body(error.status, error.code, error.message, error.details)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
