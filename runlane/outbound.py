"""Outbound HTTP to addresses that were checked: the SSRF guard shared by the `http_request`
node (activities/http.py) and event webhooks (triggers/), so both obey
RUNLANE_HTTP_ALLOW_PRIVATE alike.

A host name is resolved once, every address it resolves to is checked, and the request is sent
to a checked address (the URL rewritten to it, the name kept as `Host` and TLS SNI): httpx never
resolves the name again, so a DNS answer that changes between the check and the connection
(DNS rebinding) cannot redirect the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

# How a host name is looked up: (host, port) -> addresses, in the order to try them. A seam so
# tests can answer like a rebinding DNS server does; the default is the system's.
Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOW_PRIVATE_HINT = "set RUNLANE_HTTP_ALLOW_PRIVATE=true to allow them"


class TargetRefused(Exception):
    """A URL that may not be called. `kind` names why in the words the http_request node has
    always used as its error type: `HttpTargetError` (not callable: not an http(s) URL, a name
    that does not resolve; asking again may help) or `HttpTargetNotAllowed` (a loopback/private
    address while RUNLANE_HTTP_ALLOW_PRIVATE is off)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind

    @property
    def not_allowed(self) -> bool:
        return self.kind == "HttpTargetNotAllowed"


def blocked_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses getaddrinfo gives for `host`, in its order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_http_url(url: str) -> httpx.URL | None:
    """`url` as httpx reads it when it is an absolute http(s) URL with a host; else None."""
    try:
        parts = urlsplit(url)
        target = httpx.URL(url)
    # ValueError: urlsplit's (a bad IPv6 literal); UnicodeError: IDNA's, and lone surrogates.
    except (httpx.InvalidURL, ValueError, UnicodeError):
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or not target.host:
        return None
    if target.port is not None and not 0 < target.port < 65536:
        return None
    return target


def url_host(url: httpx.URL) -> str:
    """The host as httpx reads the URL (IDNA-encoded, no brackets), so the name checked is the
    name that would have been connected to."""
    return url.raw_host.decode("ascii")


def url_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def private_literal(url: httpx.URL) -> str | None:
    """The host of `url` when it is an address literal the guard refuses, else None."""
    host = url_host(url)
    return host if is_ip_literal(host) and blocked_address(host) else None


async def checked_addresses(
    host: str, port: int, resolve: Resolver, *, allow_private: bool
) -> list[str]:
    """Resolve `host` once and refuse loopback/private targets (SSRF) unless `allow_private`.
    The caller connects to these addresses and never lets httpx resolve the name again."""
    if is_ip_literal(host):
        addresses = [host]
    else:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise TargetRefused(f"cannot resolve host '{host}': {exc}", "HttpTargetError") from exc
        if not addresses:
            raise TargetRefused(f"cannot resolve host '{host}': no addresses", "HttpTargetError")
    if not allow_private:
        for address in addresses:
            if blocked_address(address):
                raise TargetRefused(
                    f"refusing to call {host} ({address}): loopback/private addresses are not "
                    f"allowed ({ALLOW_PRIVATE_HINT})",
                    "HttpTargetNotAllowed",
                )
    return addresses


@dataclass(frozen=True)
class CheckedTarget:
    """A URL and the addresses its host was checked to resolve to."""

    url: httpx.URL
    addresses: list[str]


async def check_target(url: httpx.URL, resolve: Resolver, *, allow_private: bool) -> CheckedTarget:
    addresses = await checked_addresses(
        url_host(url), url_port(url), resolve, allow_private=allow_private
    )
    return CheckedTarget(url, addresses)


async def send_pinned(
    client: httpx.AsyncClient,
    method: str,
    target: CheckedTarget,
    *,
    headers: httpx.Headers,
    timeout: float,
    stream: bool = False,
    **body: Any,
) -> httpx.Response:
    """Send the request to the first checked address that accepts a connection; never follows
    a redirect (its target is checked by the caller, or the 3xx is the answer). `body` is
    httpx's `content=` or `json=`. With `stream`, the response's body is left unread (the
    caller closes it). httpx errors propagate."""
    url = target.url
    headers = httpx.Headers(headers)
    # The peer still sees the name it is called by, and TLS sends it as SNI and verifies the
    # certificate against it.
    headers.setdefault("Host", url.netloc.decode("ascii"))
    extensions: dict[str, Any] = {}
    if url.scheme == "https":
        extensions["sni_hostname"] = url_host(url)
        # The pool keys connections by address, not by name: a kept-alive connection verified
        # for another name at this address must never carry this request.
        headers["Connection"] = "close"

    async def send(address: str) -> httpx.Response:
        request = client.build_request(
            method,
            url.copy_with(host=address),
            headers=headers,
            timeout=timeout,
            extensions=extensions,
            **body,
        )
        return await client.send(request, follow_redirects=False, stream=stream)

    for address in target.addresses[:-1]:
        try:
            return await send(address)
        except httpx.ConnectError:
            # Nothing was sent: the next checked address (IPv4 after IPv6) is safe.
            continue
    return await send(target.addresses[-1])
