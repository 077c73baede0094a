"""`http_request`: the side-effecting node. A regular activity, retried by Temporal."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.models import NodeTaskInput, NodeTaskOutput
from activities.node_type import NodeType
from activities.secret_scope import SecretResolver, SecretScope
from runlane import templating
from runlane.redaction import install_log_masking

# Status codes worth retrying: the peer may answer differently next time.
_RETRYABLE_STATUS = {408, 425, 429}
# A response body becomes the node's output: a pure node's output may be 1 MiB compressed
# (activities/evaluation.py), and this bound keeps the activity's result under Temporal's
# 2 MB payload limit whatever the body compresses to.
MAX_RESPONSE_BYTES = 1024 * 1024
# Where `{{$secrets.name}}` may appear (API.md "Secrets"): resolved by this activity only.
SECRET_FIELDS = frozenset({"url", "headers", "body"})


def _render(template: Any, context: templating.TemplateContext) -> Any:
    """A template of the node's config; one that renders too large is the node's error."""
    try:
        return templating.render(template, context)
    except templating.RenderedTooLarge as err:
        raise ApplicationError(
            f"{err} (pass large data as documents)", type="RequestTooLarge", non_retryable=True
        ) from None


class HttpRequestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(min_length=1, description="http(s) URL; may contain {{references}}")
    headers: dict[str, str] | None = None
    body: Any = Field(default=None, description="A template, sent as JSON")
    timeout_s: float = Field(default=30.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        problem = templating.literal_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


def _blocked_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


# How the activity looks up a host name: (host, port) -> addresses, in the order to try them.
# A seam so tests can answer like a rebinding DNS server does; the default is the system's.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses getaddrinfo gives for `host`, in its order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _checked_addresses(
    host: str, port: int, resolve: Resolver, *, allow_private: bool
) -> list[str]:
    """Resolve `host` once and refuse loopback/private targets (SSRF) unless
    RUNLANE_HTTP_ALLOW_PRIVATE is set. The caller connects to these addresses and never lets
    httpx resolve the name again: a second lookup could answer differently (DNS rebinding)."""
    if _is_ip_literal(host):
        addresses = [host]
    else:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise ApplicationError(
                f"cannot resolve host '{host}': {exc}", type="HttpTargetError"
            ) from exc
        if not addresses:
            raise ApplicationError(
                f"cannot resolve host '{host}': no addresses", type="HttpTargetError"
            )
    if not allow_private:
        for address in addresses:
            if _blocked_address(address):
                raise ApplicationError(
                    f"refusing to call {host} ({address}): loopback/private addresses are not "
                    "allowed (set RUNLANE_HTTP_ALLOW_PRIVATE=true to allow them)",
                    type="HttpTargetNotAllowed",
                    non_retryable=True,
                )
    return addresses


def _parse_body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except json.JSONDecodeError:
            pass
    return response.text


class HttpNodeActivities:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        allow_private: bool,
        resolve: Resolver = resolve_host,
        secrets: SecretResolver | None = None,
    ) -> None:
        self._client = client
        self._allow_private = allow_private
        self._resolve = resolve
        self._secrets = secrets
        # httpx logs every request's URL: never with a secret in it.
        install_log_masking()

    @activity.defn(name="http_request")
    async def http_request(self, task: NodeTaskInput) -> NodeTaskOutput:
        config = HttpRequestConfig.model_validate(task.node.config)
        scope = await SecretScope.open(task, SECRET_FIELDS, self._secrets)
        with scope.guarded():
            output = await self._request(config, task, scope)
        return NodeTaskOutput.done(scope.redactor.value(output))

    async def _request(
        self, config: HttpRequestConfig, task: NodeTaskInput, scope: SecretScope
    ) -> dict[str, Any]:
        """The request, rendered with the secrets' values; what it reports is rendered with
        `***` in their place (`shown`), and the peer's answer is masked by the caller."""
        url = str(_render(config.url, scope.context))
        shown = str(_render(config.url, scope.shown)) if scope.redactor else url
        parts = urlsplit(url)
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL:
            target = None
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or not target
            or not target.host
        ):
            raise ApplicationError(
                f"'{shown}' is not an http(s) URL", type="HttpTargetError", non_retryable=True
            )
        # The host as httpx reads the URL (IDNA-encoded), so the name checked is the name that
        # would have been connected to.
        host = target.raw_host.decode("ascii")
        addresses = await _checked_addresses(
            host,
            target.port or (443 if target.scheme == "https" else 80),
            self._resolve,
            allow_private=self._allow_private,
        )
        headers = httpx.Headers(
            {k: str(_render(v, scope.context)) for k, v in (config.headers or {}).items()}
        )
        # The peer can deduplicate retries of this node within this run.
        headers["Idempotency-Key"] = f"{task.run_id}:{task.node.id}"
        # The URL is rewritten to the checked address: the peer still sees the name it is
        # called by, and TLS sends it as SNI and verifies the certificate against it.
        headers.setdefault("Host", target.netloc.decode("ascii"))
        extensions: dict[str, Any] = {}
        if target.scheme == "https":
            extensions["sni_hostname"] = host
            # The pool keys connections by address, not by name: a kept-alive connection
            # verified for another name at this address must never carry this request.
            headers["Connection"] = "close"
        body = _render(config.body, scope.context)

        async def send(address: str) -> httpx.Response:
            return await self._client.request(
                config.method,
                target.copy_with(host=address),
                headers=headers,
                json=body if body is not None else None,
                timeout=config.timeout_s,
                extensions=extensions,
                # A redirect would go to an address nobody checked; a 3xx is the answer.
                follow_redirects=False,
            )

        try:
            for address in addresses[:-1]:
                try:
                    response = await send(address)
                    break
                except httpx.ConnectError:
                    # Nothing was sent: the next checked address (IPv4 after IPv6) is safe.
                    continue
            else:
                response = await send(addresses[-1])
        except httpx.HTTPError as exc:
            raise ApplicationError(
                f"{config.method} {shown} failed: {exc!r}", type="HttpConnectionError"
            ) from exc
        if len(response.content) > MAX_RESPONSE_BYTES:
            # Recorded as the node's output it would be more than a run can carry (and more
            # than Temporal takes as an activity result): the node's error, not retried.
            raise ApplicationError(
                f"{config.method} {shown} answered {len(response.content):,} bytes; a response "
                f"may be at most {MAX_RESPONSE_BYTES:,} (pass large data as documents)",
                type="ResponseTooLarge",
                non_retryable=True,
            )
        payload = _parse_body(response)
        if not response.is_success:
            status = response.status_code
            raise ApplicationError(
                f"{config.method} {shown} answered HTTP {status}",
                {"status": status, "body": payload},
                type="HttpStatusError",
                non_retryable=status < 500 and status not in _RETRYABLE_STATUS,
            )
        return {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": payload,
        }


NODE_TYPES = (
    NodeType(
        name="http_request",
        role="task",
        config_model=HttpRequestConfig,
        execution="remote",
        description="Calls an HTTP endpoint; non-2xx is a node error; sends Idempotency-Key",
        side_effecting=True,
        make_activity=lambda deps: (
            HttpNodeActivities(
                deps.http_client,
                allow_private=deps.settings.http_allow_private,
                secrets=deps.secrets,
            ).http_request
        ),
        secret_fields=SECRET_FIELDS,
    ),
)
