"""Temporal's codec-server protocol, so operators can read what the data converter encoded.

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
(the run's organization search attribute, as runs/reader.py reads it) or encoded here by it.
Anything else, including payloads bound to nothing, is refused whole with one 403 that does
not say whether the run exists. Encode binds what it encrypts to the caller's organization:
the UI sends no workflow id (it encodes what an operator types, for a signal say).

CORS is answered here rather than by Starlette's middleware: the allowed origin is the Temporal
UI's, from the settings dependency, and only these two routes are open to it.
"""

from __future__ import annotations

import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.deps import SettingsDep, TemporalDep, current_organization
from api.errors import ApiError, error_body
from api.schemas import ERROR_RESPONSES
from runlane import ids, search_attributes
from runlane.converter import InflatesTooLarge, compress, decompress
from runlane.payload_crypto import (
    Binding,
    PayloadDecryptError,
    PayloadKeys,
    binding_of,
    decrypt,
    is_encrypted,
)
from runlane.settings import Settings

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: ERROR_RESPONSES[status] for status in (401, 413, 422, 503)},
    400: {**ERROR_RESPONSES[422], "description": "Not a payloads body"},
    403: {**ERROR_RESPONSES[403], "description": "A payload of no run of the key's organization"},
}
router = APIRouter(prefix="/codec", tags=["codec"], responses=_RESPONSES)

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


# A run's organization never changes, so a cached answer stays right; the cache only spares
# the UI's bursts (one decode request per event it shows) a describe each. Positive answers
# only: a run started a moment ago must not be refused for the cache's lifetime.
_ORG_CACHE_SECONDS = 300.0
_ORG_CACHE_SIZE = 4096
_run_organizations: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()


async def _describe_organization(client: Client, run_id: str) -> str | None:
    try:
        desc = await client.get_workflow_handle(run_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise _unavailable() from err
    except RuntimeError as err:  # a lazy client that cannot connect (runs/temporal_errors.py)
        raise _unavailable() from err
    if desc.workflow_type != "RunWorkflow":
        return None
    return desc.typed_search_attributes.get(search_attributes.ORGANIZATION)


def _unavailable() -> ApiError:
    # Whatever else describe fails with, the answer cannot be given now: never a 500 here.
    return ApiError(503, "temporal_unavailable", "Temporal cannot be reached right now.")


async def _run_organization(client: Client, run_id: str) -> str | None:
    """The organization of run `run_id`, as runs/reader.py reads it; None for no run."""
    if not ids.is_valid(ids.RUN, run_id):
        return None
    cache_key = (client.namespace, run_id)
    cached = _run_organizations.get(cache_key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    organization = await _describe_organization(client, run_id)
    if organization is not None:
        _run_organizations[cache_key] = (time.monotonic() + _ORG_CACHE_SECONDS, organization)
        _run_organizations.move_to_end(cache_key)
        while len(_run_organizations) > _ORG_CACHE_SIZE:
            _run_organizations.popitem(last=False)
    return organization


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


async def _caller_organization(request: Request, settings: Settings) -> str:
    """The API key's organization, from `Authorization: Bearer` (the CLI's --codec-auth) or
    `Api-Key`; the same keys and answers as every other route."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    bearer = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials.strip())
        if scheme.lower() == "bearer" and credentials.strip()
        else None
    )
    return await current_organization(settings, request.headers.get("api-key"), bearer)


async def _check_owned(payloads: list[Payload], organization: str, client: Client) -> None:
    """Refuse the whole request unless every encrypted payload is the organization's. The
    binding read here is authenticated by the decryption that follows (it is the AES-GCM
    associated data), so relabelling a payload's run or organization does not get it read."""
    for payload in payloads:
        if not is_encrypted(payload):
            continue  # what histories recorded before the key hold: nothing to protect
        binding = binding_of(payload)
        if binding.workflow_id is not None:
            owner = await _run_organization(client, binding.workflow_id)
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
        organization = await _caller_organization(request, settings) if keys else None
        payloads = _parse(await _read_body(request))
        response: Response = Response(
            await convert(keys, organization)(payloads), media_type="application/json"
        )
    except ApiError as err:
        # Answered here, with the CORS headers, so the UI shows the message, not a CORS error.
        response = JSONResponse(error_body(err.status, err.code, err.message), err.status)
    _cors(request, response, settings.temporal_ui_url)
    return response


def _decoder(client: Client) -> Callable[[PayloadKeys | None, str | None], Converter]:
    def for_caller(keys: PayloadKeys | None, organization: str | None) -> Converter:
        async def decode_all(payloads: list[Payload]) -> str:
            if keys is not None and organization is not None:
                await _check_owned(payloads, organization, client)
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


@router.post("/decode")
async def decode(request: Request, settings: SettingsDep, client: TemporalDep) -> Response:
    """Payloads as stored in Temporal -> as the SDK wrote them (inflated, decrypted)."""
    return await _apply(request, settings, _decoder(client))


@router.post("/encode")
async def encode(request: Request, settings: SettingsDep) -> Response:
    """Payloads from the UI or CLI -> as Temporal stores them (compressed, encrypted)."""
    return await _apply(request, settings, _encoder)


@router.options("/decode", include_in_schema=False)
@router.options("/encode", include_in_schema=False)
async def preflight(request: Request, settings: SettingsDep) -> Response:
    response = Response(status_code=204)
    _cors(request, response, settings.temporal_ui_url)
    return response
