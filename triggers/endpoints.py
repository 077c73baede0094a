"""Event webhook endpoints (API.md "Outbound event webhooks"): subscribing, changing and
deleting them, and reading their delivery log. HTTP-free: problems are the domain errors of
runlane/errors.py, which api/errors.py answers.

An endpoint's URL obeys RUNLANE_HTTP_ALLOW_PRIVATE from the start: a host that is, or resolves
to, a loopback/private address is refused when the endpoint is created or its URL changed
(unless allowed), and every request and redirect is checked again when events are delivered
(a name may resolve elsewhere by then). A name that does not resolve now is accepted: it is
only checked when it is called.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from runlane.errors import invalid, not_found
from runlane.outbound import Resolver, TargetRefused, check_target, parse_http_url, resolve_host
from runlane.paging import Order
from store.endpoints import DeliveryRecord, EndpointRecord, EndpointRepository
from store.pagination import Page
from workflows.events import EVENT_TYPES

MAX_URL_CHARS = 2048
_ENDPOINT_ID = re.compile(r"we_[0-9a-f]{32}")
# Control characters and spaces: httpx would quietly percent-encode them into another URL.
_NOT_IN_URL = re.compile(r"[\x00-\x20\x7f]")
# How long a subscription waits on DNS to check where a name points.
_RESOLVE_TIMEOUT_S = 5.0


def _problem(field: str, message: str) -> dict[str, Any]:
    return {"loc": ["body", field], "message": message}


class EndpointService:
    def __init__(
        self,
        endpoints: EndpointRepository,
        *,
        allow_private: bool,
        resolve: Resolver = resolve_host,
    ) -> None:
        self._endpoints = endpoints
        self._allow_private = allow_private
        self._resolve = resolve

    async def create(
        self, org: str, *, url: str, events: Sequence[str], description: str = ""
    ) -> tuple[EndpointRecord, str]:
        """The new endpoint and its signing secret (answered this once only)."""
        await self._check(url=url, events=events)
        return await self._endpoints.create(org, url=url, events=events, description=description)

    async def get(self, org: str, endpoint_id: str) -> EndpointRecord:
        record = await self._endpoints.get(org, endpoint_id) if self._known(endpoint_id) else None
        if record is None:
            raise not_found("webhook_endpoint", endpoint_id)
        return record

    async def list(
        self, org: str, *, limit: int, cursor: str | None, order: Order
    ) -> Page[EndpointRecord]:
        return await self._endpoints.list(org, limit=limit, cursor=cursor, order=order)

    async def update(
        self,
        org: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        disabled: bool | None = None,
        description: str | None = None,
    ) -> EndpointRecord:
        await self.get(org, endpoint_id)
        await self._check(url=url, events=events)
        record = await self._endpoints.update(
            org, endpoint_id, url=url, events=events, disabled=disabled, description=description
        )
        if record is None:  # deleted meanwhile
            raise not_found("webhook_endpoint", endpoint_id)
        return record

    async def delete(self, org: str, endpoint_id: str) -> None:
        if not (self._known(endpoint_id) and await self._endpoints.delete(org, endpoint_id)):
            raise not_found("webhook_endpoint", endpoint_id)

    async def deliveries(
        self, org: str, endpoint_id: str, *, limit: int, cursor: str | None, order: Order
    ) -> Page[DeliveryRecord]:
        await self.get(org, endpoint_id)
        return await self._endpoints.deliveries(
            org, endpoint_id, limit=limit, cursor=cursor, order=order
        )

    @staticmethod
    def _known(endpoint_id: str) -> bool:
        # Anything else names no endpoint (and never reaches the store: NUL, surrogates).
        return _ENDPOINT_ID.fullmatch(endpoint_id) is not None

    async def _check(self, *, url: str | None, events: Sequence[str] | None) -> None:
        """Every problem of the given fields at once (InvalidInput naming each field)."""
        problems: list[dict[str, Any]] = []
        if events is not None:
            if not events:
                problems.append(_problem("events", "subscribe to at least one event type"))
            for index, event in enumerate(events):
                if event not in EVENT_TYPES:
                    problems.append(
                        {
                            "loc": ["body", "events", index],
                            "message": f"unknown event type '{event}'; one of "
                            + ", ".join(EVENT_TYPES),
                        }
                    )
        if url is not None:
            problem = await self._url_problem(url)
            if problem is not None:
                problems.append(_problem("url", problem))
        if problems:
            summary = "; ".join(f"{p['loc'][-1]}: {p['message']}" for p in problems)
            raise invalid("invalid_webhook_endpoint", f"Invalid endpoint: {summary}", problems)

    async def _url_problem(self, url: str) -> str | None:
        if len(url) > MAX_URL_CHARS:
            return f"url is longer than {MAX_URL_CHARS} characters"
        if _NOT_IN_URL.search(url):
            return "url must not contain spaces or control characters"
        target = parse_http_url(url)
        if target is None:
            return "url must be an absolute http:// or https:// URL with a host"
        if self._allow_private:
            return None
        try:
            await asyncio.wait_for(
                check_target(target, self._resolve, allow_private=False), _RESOLVE_TIMEOUT_S
            )
        except TargetRefused as refused:
            if refused.not_allowed:
                return f"url: {refused.message}"
        except TimeoutError:
            pass
        return None
