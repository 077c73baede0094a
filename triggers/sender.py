"""One signed POST of an event to one endpoint (API.md "Outbound event webhooks").

The body is rendered once per attempt and the very bytes sent are signed with the Standard
Webhooks library (`webhook-id` = the event id, the same for every attempt and endpoint;
`webhook-timestamp` = when this attempt was signed). Every hop is checked by the SSRF guard the
`http_request` node uses (runlane/outbound.py): the endpoint's URL and each redirect's target,
resolved once and connected to at the address checked.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from math import floor
from typing import Any

import httpx
from standardwebhooks import Webhook

from runlane.outbound import (
    Resolver,
    TargetRefused,
    check_target,
    parse_http_url,
    resolve_host,
    send_pinned,
)
from runlane.settings import Settings
from runs.records import run_record
from store.endpoints import AttemptOutcome, EndpointTarget
from workflows.events import RunEvent

USER_AGENT = "Runlane-Webhooks/1.0 (+https://github.com/runlane)"
REQUEST_TIMEOUT_S = 10.0
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# What the log keeps of an error message.
_MAX_ERROR_CHARS = 500


def event_body(event: RunEvent, settings: Settings, temporal_run_id: str | None = None) -> bytes:
    """`{"type", "timestamp", "data": {"run", "node_id"?, "trimmed"?}}` as sent: the run as
    `GET /v1/workflows/runs/{id}` answers it (links into `settings`' Temporal UI, to the
    execution `temporal_run_id` that emitted the event)."""
    record = run_record(event.run, settings=settings, temporal_run_id=temporal_run_id)
    data: dict[str, Any] = {"run": record.model_dump(mode="json")}
    if event.node_id is not None:
        data["node_id"] = event.node_id
    if event.trimmed:
        # The run's inputs and final outputs were too large to carry: read the run instead.
        data["trimmed"] = True
    timestamp = event.model_dump(mode="json", include={"timestamp"})["timestamp"]
    body = {"type": event.type, "timestamp": timestamp, "data": data}
    # ASCII JSON: a lone surrogate a peer answered into a run's outputs is escaped, never an
    # encoding error.
    return json.dumps(body, separators=(",", ":")).encode()


def _failed(target: EndpointTarget, error: str, status: int | None = None) -> AttemptOutcome:
    return AttemptOutcome(
        target.id, succeeded=False, status_code=status, error=error[:_MAX_ERROR_CHARS]
    )


class EventSender:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        allow_private: bool,
        resolve: Resolver = resolve_host,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._allow_private = allow_private
        self._resolve = resolve
        self._timeout_s = timeout_s

    async def send(self, target: EndpointTarget, event_id: str, body: bytes) -> AttemptOutcome:
        """POST `body` to the endpoint; a 2xx is success, anything else (another status, a
        timeout, a refused address, a connection error) a failure saying why."""
        if target.secret is None:
            return _failed(
                target, "the endpoint's secret cannot be decrypted with RUNLANE_SECRETS_KEY"
            )
        now = datetime.now(UTC)
        signature = Webhook(target.secret).sign(event_id, now, body.decode())
        headers = httpx.Headers(
            {
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "webhook-id": event_id,
                "webhook-timestamp": str(floor(now.timestamp())),
                "webhook-signature": signature,
            }
        )
        url = parse_http_url(target.url)
        for hop in range(MAX_REDIRECTS + 1):
            if url is None:
                where = "a redirect's location" if hop else "the endpoint's URL"
                return _failed(target, f"{where} is not an absolute http(s) URL")
            try:
                # Bounded as a whole, the lookup and a peer answering byte by byte included.
                response = await asyncio.wait_for(self._hop(url, headers, body), self._timeout_s)
            except TargetRefused as refused:
                return _failed(target, refused.message)
            except (httpx.TimeoutException, TimeoutError):
                return _failed(target, f"no answer within {self._timeout_s:g} s")
            except httpx.HTTPError as error:
                return _failed(target, f"request failed: {error!r}")
            status = response.status_code
            location = response.headers.get("location")
            if status in _REDIRECTS and location:
                # The same signed request to the new address, checked like the first.
                try:
                    url = parse_http_url(str(url.join(location)))
                except (httpx.InvalidURL, ValueError, UnicodeError):
                    url = None
                continue
            if response.is_success:
                return AttemptOutcome(target.id, succeeded=True, status_code=status)
            return _failed(target, f"answered HTTP {status}", status)
        return _failed(target, f"more than {MAX_REDIRECTS} redirects")

    async def _hop(self, url: httpx.URL, headers: httpx.Headers, body: bytes) -> httpx.Response:
        """One request, to an address of `url`'s host checked by the guard. Its answer's body
        is never read: a receiver cannot make the worker hold a large answer."""
        checked = await check_target(url, self._resolve, allow_private=self._allow_private)
        response = await send_pinned(
            self._client,
            "POST",
            checked,
            headers=headers,
            timeout=self._timeout_s,
            stream=True,
            content=body,
        )
        await response.aclose()
        return response
