"""What the sync and async clients share: configuration, request building, the retry
policy, response parsing. Only the lines that do I/O differ between the two (``_http.py``)."""

from __future__ import annotations

import base64
import email.utils
import json
import mimetypes
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from runlane.client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    MissingAPIKeyError,
    status_error,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
# Where `make run` keeps its generated development key: the data dir (RUNLANE_DATA_DIR,
# default ./.data) and runlane.settings.DEV_KEY_FILENAME (not imported: it would bring
# pydantic-settings and the secrets' box into every client).
DEV_KEY_FILENAME = "dev-api-key"
DEFAULT_DATA_DIR = ".data"

# Backoff between attempts: 0.5 s doubling to 8 s, each with up to 25% jitter off it so that
# clients refused together do not come back together.
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
# A Retry-After longer than this is not waited for: the error is raised instead.
MAX_RETRY_AFTER_S = 60.0

VERSION = "0.1.0"


# ---------------------------------------------------------------- configuration


def resolve_api_key(api_key: str | None) -> str:
    """The key given, else RUNLANE_API_KEY, else the development key `make run` wrote into
    its data dir (RUNLANE_DATA_DIR, default ./.data)."""
    if api_key:
        return api_key
    from_env = os.environ.get("RUNLANE_API_KEY", "").strip()
    if from_env:
        return from_env
    data_dir = Path(os.environ.get("RUNLANE_DATA_DIR") or DEFAULT_DATA_DIR)
    dev_key = data_dir / DEV_KEY_FILENAME
    try:
        found = dev_key.read_text(encoding="utf-8").strip()
    except OSError:
        found = ""
    if found:
        return found
    raise MissingAPIKeyError(
        "No Runlane API key: pass api_key=..., set RUNLANE_API_KEY, or run `make run` "
        f"(it writes its development key to {dev_key})."
    )


def resolve_base_url(base_url: str | None) -> str:
    """The base URL given, else RUNLANE_BASE_URL, else the local API; a trailing `/v1` is
    accepted too (what `make run` prints), since every path here starts with it."""
    url = (base_url or os.environ.get("RUNLANE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    return url.removesuffix("/v1")


def default_headers(api_key: str) -> dict[str, str]:
    return {"Api-Key": api_key, "User-Agent": f"runlane-python/{VERSION}"}


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request(Generic[T]):
    """One API call: what to send, whether it may be sent again, and how to read the
    answer. Resources build these; the sync and async transports send them."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    files: Any = None
    # Safe to send again after it may have reached the server: reads, idempotent writes
    # (a replaced draft, a validation) and writes carrying a command_id.
    retry_safe: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)

    def query(self) -> dict[str, Any] | None:
        if self.params is None:
            return None
        return {k: v for k, v in self.params.items() if v is not None}


def command_id_or_new(command_id: str | None) -> str:
    """The caller's idempotency key, or a new one: generated once per call, so every retry
    of that call replays the same command instead of starting another."""
    return command_id if command_id is not None else f"cmd_{uuid.uuid4().hex}"


def model_parser(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        return model.model_validate_json(response.content)

    return parse


def none_parser(response: httpx.Response) -> None:
    return None


def bytes_parser(response: httpx.Response) -> bytes:
    return response.content


# ---------------------------------------------------------------- retries


def retry_delay(
    attempt: int, retry_after: float | None = None, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0): the
    server's Retry-After when it gave one, else capped exponential backoff with jitter."""
    if retry_after is not None:
        return retry_after
    delay = min(INITIAL_RETRY_DELAY_S * 2**attempt, MAX_RETRY_DELAY_S)
    return delay * (1 - 0.25 * rand())


def parse_retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds (a number, or an HTTP date), None when absent or too far."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds > MAX_RETRY_AFTER_S:
        return None
    return max(seconds, 0.0)


RETRIED_STATUSES = frozenset({502, 503, 504})


def should_retry_response(request: Request[Any], response: httpx.Response) -> bool:
    """429 is retried for every call: the rate limit refuses before the route does anything.
    502/503/504 only for retry-safe calls: the work may have been done before the failure."""
    if response.status_code == 429:
        return response.headers.get("retry-after") is None or (
            parse_retry_after(response) is not None
        )
    return request.retry_safe and response.status_code in RETRIED_STATUSES


def should_retry_exception(request: Request[Any], error: httpx.TransportError) -> bool:
    """A connection that never opened carried nothing: any call may be sent again. Once
    the request may have been sent (a read timeout, a dropped connection), only retry-safe
    ones."""
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    return request.retry_safe


def connection_error(error: httpx.TransportError) -> APIConnectionError:
    request = _request_of(error)
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(f"Request timed out: {error!r}", request=request)
    return APIConnectionError(f"Connection error: {error!r}", request=request)


def _request_of(error: httpx.TransportError) -> httpx.Request | None:
    try:
        return error.request
    except RuntimeError:
        return None


def check(response: httpx.Response) -> None:
    """Raise the typed error for a non-2xx answer (its body already read)."""
    if response.is_success:
        return
    raise error_for(response)


def error_for(response: httpx.Response) -> APIStatusError:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    return status_error(response.status_code, body, response)


# ---------------------------------------------------------------- documents

Document = Path | bytes | Mapping[str, Any]


def document_input(node_id: str, document: Any) -> dict[str, Any]:
    """A start node's document as the start body wants it (API.md "Start a run"):

    - ``Path``: inline, base64, its MIME type from its name (``application/octet-stream``
      when the name says nothing);
    - ``bytes``: inline, named after the node, ``application/octet-stream``;
    - ``{"file_id": ...}`` (or a :class:`FileOut` from ``files.upload``): an uploaded file;
    - ``{"filename", "mime_type", "content"}``: inline as given (``content`` may be bytes).

    Inline documents make the start one request, which a retry may send again under its
    ``command_id``; for documents larger than a few MiB upload them first (``files.upload``)
    and pass the file, since the whole start body must fit in RUNLANE_MAX_REQUEST_BYTES.
    """
    if isinstance(document, Path):
        mime_type, _ = mimetypes.guess_type(document.name)
        return {
            "filename": document.name,
            "mime_type": mime_type or "application/octet-stream",
            "content": base64.b64encode(document.read_bytes()).decode("ascii"),
        }
    if isinstance(document, bytes | bytearray | memoryview):
        return {
            "filename": node_id,
            "mime_type": "application/octet-stream",
            "content": base64.b64encode(bytes(document)).decode("ascii"),
        }
    file_id = getattr(document, "id", None) if isinstance(document, BaseModel) else None
    if isinstance(file_id, str):
        return {"file_id": file_id}
    if isinstance(document, Mapping):
        given = dict(document)
        content = given.get("content")
        if isinstance(content, bytes | bytearray | memoryview):
            given["content"] = base64.b64encode(bytes(content)).decode("ascii")
        return given
    raise TypeError(
        f"documents[{node_id!r}]: expected a Path, bytes, {{'file_id': ...}} or an inline "
        f"{{'filename', 'mime_type', 'content'}} mapping, not {type(document).__name__}"
    )


def documents_body(documents: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if documents is None:
        return None
    return {node_id: document_input(node_id, doc) for node_id, doc in documents.items()}


def upload_part(file: Path | bytes, filename: str | None, mime_type: str | None) -> Any:
    """The multipart `file` part of ``POST /v1/files``."""
    if isinstance(file, Path):
        name = filename or file.name
        content = file.read_bytes()
    else:
        name = filename or "upload"
        content = bytes(file)
    guessed, _ = mimetypes.guess_type(name)
    return {"file": (name, content, mime_type or guessed or "application/octet-stream")}


def drop_none(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
