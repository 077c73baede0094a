"""Temporal's codec-server protocol, so operators can read what the data converter encoded.

Here: POST /codec/decode and /codec/encode, their CORS preflight, and who may call them. Codec
sessions (the Temporal UI's credential) are api/routes/codec_session.py; which organization a
payload's run belongs to is the run service's to say (`RunService.organization_of`).

Payloads over 256 KiB are zlib-compressed by the data converter (runlane/converter.py) and
show as `binary/zlib` in the Temporal UI and CLI; with `RUNLANE_PAYLOAD_KEY` set, every payload
is encrypted and shows as `binary/encrypted`. Pointed at `<API>/codec` (`make run` starts its
dev server that way; elsewhere the UI's codec endpoint setting or the CLI's
`--codec-endpoint`), they post payloads here and show the JSON.

Without a payload key, no API key either: the UI cannot send one, and decompressing reveals
nothing that the compressed bytes do not already hold. What it costs is bounded instead: the
request body, and the size a payload may inflate to (a small zlib bomb must not exhaust the
API's memory).

With a payload key, decoding reveals what encryption hides, so both routes require an API key
(`Authorization: Bearer <key>`, which the CLI sends with `--codec-auth "Bearer <key>"`, or
`Api-Key`), and decode only payloads of the caller's organization: those bound to a run of it
(the run's organization search attribute, as the run service reads it) or encoded here by it.
Anything else, including payloads bound to nothing, is refused whole with one 403 that does
not say whether the run exists. Encode binds what it encrypts to the caller's organization:
the UI sends no workflow id (it encodes what an operator types, for a signal say).

The Temporal UI cannot send an API key, so it uses a codec session instead: a cookie scoped to
`/codec` that it sends once its Data Encoder setting "Include cross-origin credentials" is on
(api/routes/codec_session.py signs operators in and checks the cookie). A header credential,
when sent, is the one used.

CORS is answered here rather than by Starlette's middleware: the allowed origin is the Temporal
UI's, from the settings dependency, and only these two routes are open to it. With credentials
allowed (the session cookie), the answer names the exact origin, never `*`.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import RunsDep, SettingsDep, current_organization
from api.errors import ApiError, error_body, status_of
from api.routes.codec_session import ResponsesDoc, error_doc, json_body_doc, session_organization
from api.schemas import CodecPayloads
from runlane.converter import InflatesTooLarge, compress, decompress
from runlane.errors import RunlaneError
from runlane.payload_crypto import (
    Binding,
    PayloadDecryptError,
    PayloadKeys,
    binding_of,
    decrypt,
    is_encrypted,
)
from runlane.settings import Settings
from runs.service import RunService

# The bodies are read by hand (proto3 JSON), so the OpenAPI document is told here what they are
# and every status each route answers, with its error codes.
_PAYLOADS_REF = {"$ref": "#/components/schemas/CodecPayloads"}
_PAYLOADS_BODY = json_body_doc(_PAYLOADS_REF)
_MALFORMED = error_doc(
    400, 'Not a payloads body (`malformed_request`): {"payloads": [...]} expected'
)
_UNAUTHENTICATED = error_doc(
    401,
    "With RUNLANE_PAYLOAD_KEY set: no API key nor codec session (`missing_api_key`), an unknown "
    "key (`invalid_api_key`), or an expired or revoked session (`invalid_codec_session`)",
)
_BODY_TOO_LARGE = (
    "The body over 16 MiB (`body_too_large`) or the request limit (`request_too_large`)"
)
_DECODE_RESPONSES: ResponsesDoc = {
    200: {"model": CodecPayloads, "description": "The payloads as the SDK wrote them, in order"},
    400: _MALFORMED,
    401: _UNAUTHENTICATED,
    403: error_doc(
        403,
        "An encrypted payload of no run of the caller's organization (`payload_not_readable`); "
        "nothing was decoded",
    ),
    413: error_doc(
        413, f"{_BODY_TOO_LARGE}, or a payload inflating over 64 MiB (`payload_too_large`)"
    ),
    422: error_doc(
        422,
        "A payload marked `binary/zlib` or `binary/encrypted` that does not decode or decrypt "
        "(`invalid_payload`)",
    ),
    503: error_doc(
        503, "Temporal cannot be reached to find a payload's run (`temporal_unavailable`)"
    ),
}
_ENCODE_RESPONSES: ResponsesDoc = {
    200: {"model": CodecPayloads, "description": "The payloads as Temporal stores them, in order"},
    400: _MALFORMED,
    401: _UNAUTHENTICATED,
    413: error_doc(413, _BODY_TOO_LARGE),
}

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
        # The session cookie: the UI sends it with "Include cross-origin credentials" on, and
        # the browser then refuses any answer without this, even where no cookie is needed.
        response.headers["Access-Control-Allow-Credentials"] = "true"
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


def _parse(body: bytes) -> list[Payload]:
    try:
        return list(json_format.Parse(body, Payloads()).payloads)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise ApiError(
            400,
            "malformed_request",
            'Expected {"payloads": [{"metadata": {...}, "data": "<base64>"}]} (proto3 JSON): '
            f"{exc}",
        ) from None


def _convert(payloads: list[Payload], convert: Callable[[Payload], Payload]) -> str:
    try:
        converted = [convert(payload) for payload in payloads]
    except InflatesTooLarge as exc:
        raise ApiError(413, "payload_too_large", f"{exc}.") from None
    except (zlib.error, DecodeError) as exc:
        raise ApiError(
            422, "invalid_payload", f"A payload marked binary/zlib does not decode: {exc}"
        ) from None
    except PayloadDecryptError as exc:
        raise ApiError(422, "invalid_payload", f"A payload does not decrypt: {exc}.") from None
    return json_format.MessageToJson(Payloads(payloads=converted), indent=None)


async def _caller_organization(request: Request, settings: Settings, keys: PayloadKeys) -> str:
    """The API key's organization, from `Authorization: Bearer` (the CLI's --codec-auth) or
    `Api-Key`, the same keys and answers as every other route; without either, the codec
    session cookie's (the Temporal UI's)."""
    has_header = "authorization" in request.headers or "api-key" in request.headers
    if not has_header:
        organization = session_organization(request, settings, keys)
        if organization is not None:
            return organization
        raise ApiError(
            401,
            "missing_api_key",
            "Send your API key as 'Authorization: Bearer <key>' (the CLI's --codec-auth) or "
            "'Api-Key: <key>'; for the Temporal UI, sign in at /codec/session.",
        )
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    bearer = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials.strip())
        if scheme.lower() == "bearer" and credentials.strip()
        else None
    )
    return await current_organization(settings, request.headers.get("api-key"), bearer)


async def _check_owned(payloads: list[Payload], organization: str, runs: RunService) -> None:
    """Refuse the whole request unless every encrypted payload is the organization's. The
    binding read here is authenticated by the decryption that follows (it is the AES-GCM
    associated data), so relabelling a payload's run or organization does not get it read."""
    for payload in payloads:
        if not is_encrypted(payload):
            continue  # what histories recorded before the key hold: nothing to protect
        binding = binding_of(payload)
        if binding.workflow_id is not None:
            owner = await runs.organization_of(binding.workflow_id)
        else:
            owner = binding.organization
        if owner is None or owner != organization:
            raise ApiError(
                403,
                "payload_not_readable",
                "A payload belongs to no run of your organization; nothing was decoded.",
            )


Converter = Callable[[list[Payload]], Awaitable[str]]


async def _apply(
    request: Request,
    settings: Settings,
    convert: Callable[[PayloadKeys | None, str | None], Converter],
) -> Response:
    try:
        keys = settings.payload_keys()
        # Authentication first: an anonymous caller learns nothing, not even about its body.
        organization = await _caller_organization(request, settings, keys) if keys else None
        payloads = _parse(await _read_body(request))
        response: Response = Response(
            await convert(keys, organization)(payloads), media_type="application/json"
        )
    except ApiError as err:
        # Answered here, with the CORS headers, so the UI shows the message, not a CORS error.
        response = JSONResponse(error_body(err.status, err.code, err.message), err.status)
    except RunlaneError as err:  # the run service's: Temporal out of reach, say
        status = status_of(err)
        response = JSONResponse(error_body(status, err.code, err.message), status)
    _cors(request, response, settings.temporal_ui_url)
    return response


def _decoder(runs: RunService) -> Callable[[PayloadKeys | None, str | None], Converter]:
    def for_caller(keys: PayloadKeys | None, organization: str | None) -> Converter:
        async def decode_all(payloads: list[Payload]) -> str:
            if keys is not None and organization is not None:
                await _check_owned(payloads, organization, runs)
            return _convert(
                payloads, lambda payload: decompress(decrypt(payload, keys), MAX_DECODED_BYTES)
            )

        return decode_all

    return for_caller


def _encoder(keys: PayloadKeys | None, organization: str | None) -> Converter:
    async def encode_all(payloads: list[Payload]) -> str:
        if keys is None:
            return _convert(payloads, compress)
        binding = Binding(organization=organization)
        return _convert(payloads, lambda payload: keys.encrypt(compress(payload), binding))

    return encode_all


@router.post("/decode", responses=_DECODE_RESPONSES, openapi_extra=_PAYLOADS_BODY)
async def decode(request: Request, settings: SettingsDep, runs: RunsDep) -> Response:
    """Payloads as stored in Temporal -> as the SDK wrote them (inflated, decrypted)."""
    return await _apply(request, settings, _decoder(runs))


@router.post("/encode", responses=_ENCODE_RESPONSES, openapi_extra=_PAYLOADS_BODY)
async def encode(request: Request, settings: SettingsDep) -> Response:
    """Payloads from the UI or CLI -> as Temporal stores them (compressed, encrypted)."""
    return await _apply(request, settings, _encoder)


@router.options("/decode", include_in_schema=False)
@router.options("/encode", include_in_schema=False)
async def preflight(request: Request, settings: SettingsDep) -> Response:
    response = Response(status_code=204)
    _cors(request, response, settings.temporal_ui_url)
    return response
