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

The Temporal UI cannot send an API key, so it uses a codec session instead: the operator signs
in once at `<API>/codec/session` with an API key, and gets an HttpOnly cookie scoped to `/codec`
(`SameSite=Strict`: the UI at localhost:8233 and the API at localhost:8000 are one site, ports do
not count) that holds no key, only a token signed with a secret derived from the payload key
(runlane/payload_crypto.py `CodecSessions`): the organization, an expiry 12 hours on, and a
fingerprint of the API key, so removing that key ends the session. The UI sends the cookie once
its Data Encoder setting "Include cross-origin credentials" is on. A header credential, when
sent, is the one used.

CORS is answered here rather than by Starlette's middleware: the allowed origin is the Temporal
UI's, from the settings dependency, and only these two routes are open to it. With credentials
allowed (the session cookie), the answer names the exact origin, never `*`.
"""

from __future__ import annotations

import hmac
import html
import json
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from string import Template
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.deps import SettingsDep, TemporalDep, current_organization
from api.errors import ApiError, error_body
from api.schemas import (
    ERROR_RESPONSES,
    CodecPayloads,
    CodecSessionOut,
    CodecSignIn,
    ErrorBody,
)
from runlane import ids, search_attributes
from runlane.converter import InflatesTooLarge, compress, decompress
from runlane.payload_crypto import (
    Binding,
    CodecSessionError,
    CodecSessions,
    PayloadDecryptError,
    PayloadKeys,
    binding_of,
    decrypt,
    is_encrypted,
)
from runlane.settings import Settings

# The bodies are read by hand (proto3 JSON, or a form), so the OpenAPI document is told here what
# they are and every status each route answers, with its error codes.
ResponsesDoc = dict[int | str, dict[str, Any]]


def _error(status: int, description: str) -> dict[str, Any]:
    return {**ERROR_RESPONSES.get(status, {"model": ErrorBody}), "description": description}


def _json_body(schema: dict[str, Any], *, form: bool = False) -> dict[str, Any]:
    media = (
        ("application/json", "application/x-www-form-urlencoded") if form else ("application/json",)
    )
    return {"requestBody": {"required": True, "content": {m: {"schema": schema} for m in media}}}


_PAYLOADS_REF = {"$ref": "#/components/schemas/CodecPayloads"}
_PAYLOADS_BODY = _json_body(_PAYLOADS_REF)
_MALFORMED = _error(400, 'Not a payloads body (`malformed_request`): {"payloads": [...]} expected')
_UNAUTHENTICATED = _error(
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
    403: _error(
        403,
        "An encrypted payload of no run of the caller's organization (`payload_not_readable`); "
        "nothing was decoded",
    ),
    413: _error(
        413, f"{_BODY_TOO_LARGE}, or a payload inflating over 64 MiB (`payload_too_large`)"
    ),
    422: _error(
        422,
        "A payload marked `binary/zlib` or `binary/encrypted` that does not decode or decrypt "
        "(`invalid_payload`)",
    ),
    503: _error(503, "Temporal cannot be reached to find a payload's run (`temporal_unavailable`)"),
}
_ENCODE_RESPONSES: ResponsesDoc = {
    200: {"model": CodecPayloads, "description": "The payloads as Temporal stores them, in order"},
    400: _MALFORMED,
    401: _UNAUTHENTICATED,
    413: _error(413, _BODY_TOO_LARGE),
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


async def _caller_organization(request: Request, settings: Settings, keys: PayloadKeys) -> str:
    """The API key's organization, from `Authorization: Bearer` (the CLI's --codec-auth) or
    `Api-Key`, the same keys and answers as every other route; without either, the codec
    session cookie's (the Temporal UI's)."""
    has_header = "authorization" in request.headers or "api-key" in request.headers
    session = request.cookies.get(SESSION_COOKIE)
    if not has_header:
        if session:
            return _session_organization(session, settings, keys)
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
        organization = await _caller_organization(request, settings, keys) if keys else None
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


@router.post("/decode", responses=_DECODE_RESPONSES, openapi_extra=_PAYLOADS_BODY)
async def decode(request: Request, settings: SettingsDep, client: TemporalDep) -> Response:
    """Payloads as stored in Temporal -> as the SDK wrote them (inflated, decrypted)."""
    return await _apply(request, settings, _decoder(client))


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


# --- Codec sessions: the Temporal UI's credential ----------------------------------------------

SESSION_COOKIE = "runlane_codec_session"
SESSION_SECONDS = 12 * 60 * 60
MAX_SIGN_IN_BYTES = 16 * 1024


def _session_organization(token: str, settings: Settings, keys: PayloadKeys) -> str:
    """The organization a session cookie names, while it is unexpired, signed by a key this API
    holds, and the API key that opened it is still one of that organization's."""
    sessions = CodecSessions(keys)
    try:
        session = sessions.verify(token, time.time())
    except CodecSessionError:
        session = None
    if session is not None:
        for key, organization in settings.key_to_organization().items():
            opened_it = hmac.compare_digest(
                sessions.fingerprint(key, session.key_id), session.api_key_fingerprint
            )
            if opened_it and organization == session.organization:
                return organization
    raise ApiError(
        401,
        "invalid_codec_session",
        "The codec session is expired or not valid (signed with a payload key this API no "
        "longer holds, or its API key was removed): sign in again at /codec/session.",
    )


def _session_keys(settings: Settings) -> PayloadKeys:
    keys = settings.payload_keys()
    if keys is None:
        raise ApiError(
            404,
            "codec_session_unavailable",
            "RUNLANE_PAYLOAD_KEY is not set: the codec endpoint needs no credential.",
        )
    return keys


@lru_cache
def _page(name: str) -> str:
    return files("api.web").joinpath(name).read_text(encoding="utf-8")


def _done_page(title: str, body: str, status: int = 200) -> HTMLResponse:
    page = Template(_page("codec_session_done.html")).substitute(
        title=html.escape(title), body=body
    )
    return HTMLResponse(page, status, headers={"Cache-Control": "no-store"})


async def _submitted_key(request: Request) -> tuple[str | None, bool]:
    """The API key the sign-in sent, and whether it came from the HTML form."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_SIGN_IN_BYTES:
            raise ApiError(413, "body_too_large", f"The body exceeds {MAX_SIGN_IN_BYTES} bytes.")
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        values = parse_qs(body.decode(errors="replace")).get("api_key", [])
        return (values[0].strip() if values else None), True
    if media and media != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            'Send the key as a form field `api_key` or as JSON {"api_key": "<key>"}.',
        )
    try:
        data = json.loads(body) if body else {}
    except (ValueError, RecursionError):  # RecursionError: `[[[[...` nested deeper than Python
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_request", 'Expected {"api_key": "<key>"}.')
    key = data.get("api_key")
    return (key.strip() if isinstance(key, str) else None), False


def _check_same_origin(request: Request) -> None:
    # A page elsewhere must not sign the operator's browser in (to an organization of its
    # choosing): a browser's form post names its origin, which must be this API's own.
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise ApiError(
            403, "cross_origin_sign_in", "Sign in from this API's own /codec/session page."
        )


def _set_session_cookie(request: Request, response: Response, token: str | None) -> None:
    common: dict[str, Any] = {
        "path": "/codec",
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
    }
    if token is None:
        response.delete_cookie(SESSION_COOKIE, **common)
    else:
        response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, **common)


@router.get("/session", response_class=HTMLResponse, include_in_schema=False)
async def session_page(settings: SettingsDep) -> HTMLResponse:
    """Sign-in page for the Temporal UI's codec session."""
    _session_keys(settings)
    return HTMLResponse(_page("codec_session.html"), headers={"Cache-Control": "no-store"})


_SESSION_COOKIE_HEADER = {
    "Set-Cookie": {
        "description": f"`{SESSION_COOKIE}`: HttpOnly, SameSite=Strict, path /codec",
        "schema": {"type": "string"},
    }
}
_SIGN_IN_RESPONSES: ResponsesDoc = {
    200: {
        "model": CodecSessionOut,
        "description": "Signed in: the session cookie is set. JSON for a JSON body; for the "
        "sign-in page's form, an HTML page saying how to set up the Temporal UI",
        "content": {"text/html": {"schema": {"type": "string"}}},
        "headers": _SESSION_COOKIE_HEADER,
    },
    400: _error(400, 'A JSON body that is not an object (`malformed_request`): {"api_key": ...}'),
    401: _error(
        401, "No `api_key` given (`missing_api_key`), or an unknown one (`invalid_api_key`)"
    ),
    403: _error(403, "Posted from a page of another origin (`cross_origin_sign_in`)"),
    404: _error(
        404,
        "RUNLANE_PAYLOAD_KEY is not set: no sessions, no credential needed "
        "(`codec_session_unavailable`)",
    ),
    413: _error(
        413, "The body over 16 KiB (`body_too_large`) or the request limit (`request_too_large`)"
    ),
    415: _error(415, "Neither JSON nor a form (`unsupported_media_type`)"),
}


@router.post(
    "/session",
    responses=_SIGN_IN_RESPONSES,
    openapi_extra=_json_body(CodecSignIn.model_json_schema(), form=True),
)
async def sign_in(request: Request, settings: SettingsDep) -> Response:
    """Exchange an API key (form field or JSON `api_key`) for the codec session cookie."""
    keys = _session_keys(settings)
    _check_same_origin(request)
    api_key, from_form = await _submitted_key(request)
    organization = await current_organization(settings, api_key, None)
    expires_at = int(time.time()) + SESSION_SECONDS
    token = CodecSessions(keys).issue(organization, api_key or "", expires_at)
    expires = datetime.fromtimestamp(expires_at, UTC)
    endpoint = str(request.base_url).rstrip("/") + "/codec"
    response: Response
    if from_form:
        response = _done_page(
            "Signed in to the codec endpoint",
            _SIGNED_IN.substitute(
                organization=html.escape(organization),
                expires=html.escape(expires.strftime("%Y-%m-%d %H:%M UTC")),
                endpoint=html.escape(endpoint),
                ui_url=html.escape(settings.temporal_ui_url),
            ),
        )
    else:
        response = JSONResponse(
            {
                "organization": organization,
                "expires_at": expires.isoformat().replace("+00:00", "Z"),
                "codec_endpoint": endpoint,
            },
            headers={"Cache-Control": "no-store"},
        )
    _set_session_cookie(request, response, token)
    return response


@router.delete(
    "/session",
    status_code=204,
    responses={204: {"description": "Signed out", "headers": _SESSION_COOKIE_HEADER}},
)
async def sign_out(request: Request) -> Response:
    """End the codec session: the cookie is cleared."""
    response = Response(status_code=204)
    _set_session_cookie(request, response, None)
    return response


@router.post("/session/logout", include_in_schema=False)
async def sign_out_form(request: Request) -> HTMLResponse:
    """End the codec session from the sign-in page's form."""
    response = _done_page(
        "Signed out of the codec endpoint",
        "<p>The Temporal UI shows encrypted payloads as <code>binary/encrypted</code> again. "
        '<a href="../session">Sign in again</a>.</p>',
    )
    _set_session_cookie(request, response, None)
    return response


_SIGNED_IN = Template(
    """<p>This browser reads the runs of <strong>$organization</strong> through the codec
    endpoint until $expires.</p>
    <p>In the Temporal UI (<a href="$ui_url">$ui_url</a>), open the Data Encoder settings (the
    glasses icon at the top), then:</p>
    <ol>
      <li>Choose <em>Use my browser setting and ignore Cluster-level setting</em>.</li>
      <li>Set the Codec Server endpoint to <code>$endpoint</code>.</li>
      <li>Turn on <em>Include cross-origin credentials</em>, and apply.</li>
    </ol>
    <p>Open the UI with the same host name as this page (<code>localhost</code> and
    <code>127.0.0.1</code> are different sites to the browser).</p>
    <form method="post" action="session/logout"><button type="submit">Sign out</button></form>"""
)
