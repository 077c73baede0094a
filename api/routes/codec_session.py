"""Codec sessions: the Temporal UI's credential for the codec endpoint (api/routes/codec.py).

With `RUNLANE_PAYLOAD_KEY` set the codec routes require an API key, which the Temporal UI cannot
send, so it uses a codec session instead: the operator signs in once at `<API>/codec/session`
with an API key, and gets an HttpOnly cookie scoped to `/codec` (`SameSite=Strict`: the UI at
localhost:8233 and the API at localhost:8000 are one site, ports do not count) that holds no
key, only a token signed with a secret derived from the payload key (runlane/payload_crypto.py
`CodecSessions`): the organization, an expiry 12 hours on, and a fingerprint of the API key, so
removing that key ends the session. The UI sends the cookie once its Data Encoder setting
"Include cross-origin credentials" is on.

Here: the sign-in page and its form, sign-in and sign-out, and `session_organization`, which
the codec routes call to accept the cookie as a credential. Without a payload key there are no
sessions (the codec endpoint needs no credential): these routes answer 404.
"""

from __future__ import annotations

import hmac
import html
import json
import time
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from string import Template
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import SettingsDep, current_organization
from api.errors import ApiError
from api.schemas import ERROR_RESPONSES, CodecSessionOut, CodecSignIn, ErrorBody
from runlane.payload_crypto import CodecSessionError, CodecSessions, PayloadKeys
from runlane.settings import Settings

# The bodies are read by hand (proto3 JSON, or a form), so the OpenAPI document is told here what
# they are and every status each route answers, with its error codes. (The codec routes use
# these too.)
ResponsesDoc = dict[int | str, dict[str, Any]]


def error_doc(status: int, description: str) -> dict[str, Any]:
    return {**ERROR_RESPONSES.get(status, {"model": ErrorBody}), "description": description}


def json_body_doc(schema: dict[str, Any], *, form: bool = False) -> dict[str, Any]:
    media = (
        ("application/json", "application/x-www-form-urlencoded") if form else ("application/json",)
    )
    return {"requestBody": {"required": True, "content": {m: {"schema": schema} for m in media}}}


router = APIRouter(prefix="/codec", tags=["codec"])

SESSION_COOKIE = "runlane_codec_session"
SESSION_SECONDS = 12 * 60 * 60
MAX_SIGN_IN_BYTES = 16 * 1024


def session_organization(request: Request, settings: Settings, keys: PayloadKeys) -> str | None:
    """The organization the request's session cookie names, while it is unexpired, signed by a
    key this API holds, and the API key that opened it is still one of that organization's;
    None when no cookie was sent, 401 `invalid_codec_session` for one that is not valid."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
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
    400: error_doc(
        400, 'A JSON body that is not an object (`malformed_request`): {"api_key": ...}'
    ),
    401: error_doc(
        401, "No `api_key` given (`missing_api_key`), or an unknown one (`invalid_api_key`)"
    ),
    403: error_doc(403, "Posted from a page of another origin (`cross_origin_sign_in`)"),
    404: error_doc(
        404,
        "RUNLANE_PAYLOAD_KEY is not set: no sessions, no credential needed "
        "(`codec_session_unavailable`)",
    ),
    413: error_doc(
        413, "The body over 16 KiB (`body_too_large`) or the request limit (`request_too_large`)"
    ),
    415: error_doc(415, "Neither JSON nor a form (`unsupported_media_type`)"),
}


@router.post(
    "/session",
    responses=_SIGN_IN_RESPONSES,
    openapi_extra=json_body_doc(CodecSignIn.model_json_schema(), form=True),
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
