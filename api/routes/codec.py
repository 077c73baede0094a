"""Temporal's codec-server protocol, so operators can read compressed payloads.

Payloads over 256 KiB are zlib-compressed by the data converter (runlane/converter.py) and
show as `binary/zlib` in the Temporal UI and CLI. Pointed at `<API>/codec` (`make run` starts
its dev server that way; elsewhere the UI's codec endpoint setting or the CLI's
`--codec-endpoint`), they post payloads here and show the JSON.

No API key: the UI cannot send one, and decompressing reveals nothing that the compressed
bytes do not already hold. What it costs is bounded instead: the request body, and the size a
payload may inflate to (a small zlib bomb must not exhaust the API's memory).

CORS is answered here rather than by Starlette's middleware: the allowed origin is the Temporal
UI's, from the settings dependency, and only these two routes are open to it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import SettingsDep
from api.errors import ApiError, error_body
from runlane.converter import InflatesTooLarge, compress, decompress

router = APIRouter(prefix="/codec", tags=["codec"])

MAX_BODY_BYTES = 16 * 1024 * 1024
# Temporal accepts 2 MB per payload compressed; a 10,000-node definition inflates to 2.2 MB.
MAX_DECODED_BYTES = 64 * 1024 * 1024
_LOOPBACK_ALIASES = {"localhost": "127.0.0.1", "127.0.0.1": "localhost"}


def _ui_origins(ui_url: str) -> set[str]:
    """The UI's origin, and its loopback alias: the browser sends whichever host was typed."""
    parts = urlsplit(ui_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    alias = _LOOPBACK_ALIASES.get(parts.hostname or "")
    if alias is None:
        return {origin}
    port = f":{parts.port}" if parts.port else ""
    return {origin, f"{parts.scheme}://{alias}{port}"}


def _cors(request: Request, response: Response, ui_url: str) -> None:
    origin = request.headers.get("origin")
    if origin in _ui_origins(ui_url):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "content-type,x-namespace,authorization"
        response.headers["Vary"] = "Origin"


async def _read_body(request: Request) -> bytes:
    """The body, refused as soon as it outgrows the limit (not after reading all of it)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"The body exceeds {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _convert(body: bytes, convert: Callable[[Payload], Payload]) -> str:
    try:
        payloads = json_format.Parse(body, Payloads())
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise ApiError(
            400,
            "malformed_request",
            'Expected {"payloads": [{"metadata": {...}, "data": "<base64>"}]} (proto3 JSON): '
            f"{exc}",
        ) from None
    try:
        converted = [convert(payload) for payload in payloads.payloads]
    except InflatesTooLarge as exc:
        raise ApiError(413, "payload_too_large", f"{exc}.") from None
    except (zlib.error, DecodeError) as exc:
        raise ApiError(
            422, "invalid_payload", f"A payload marked binary/zlib does not decode: {exc}"
        ) from None
    return json_format.MessageToJson(Payloads(payloads=converted), indent=None)


async def _apply(request: Request, ui_url: str, convert: Callable[[Payload], Payload]) -> Response:
    try:
        response: Response = Response(
            _convert(await _read_body(request), convert), media_type="application/json"
        )
    except ApiError as err:
        # Answered here, with the CORS headers, so the UI shows the message, not a CORS error.
        response = JSONResponse(error_body(err.status, err.code, err.message), err.status)
    _cors(request, response, ui_url)
    return response


def _decode(payload: Payload) -> Payload:
    return decompress(payload, MAX_DECODED_BYTES)


@router.post("/decode")
async def decode(request: Request, settings: SettingsDep) -> Response:
    """Payloads as stored in Temporal -> as the SDK wrote them (compressed ones inflated)."""
    return await _apply(request, settings.temporal_ui_url, _decode)


@router.post("/encode")
async def encode(request: Request, settings: SettingsDep) -> Response:
    """Payloads from the UI or CLI -> as Temporal stores them (large ones compressed)."""
    return await _apply(request, settings.temporal_ui_url, compress)


@router.options("/decode", include_in_schema=False)
@router.options("/encode", include_in_schema=False)
async def preflight(request: Request, settings: SettingsDep) -> Response:
    response = Response(status_code=204)
    _cors(request, response, settings.temporal_ui_url)
    return response
