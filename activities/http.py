"""`http_request`: the side-effecting node. A regular activity, retried by Temporal."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.models import NodeTaskInput, NodeTaskOutput
from activities.node_type import NodeType
from runlane import templating

# Status codes worth retrying: the peer may answer differently next time.
_RETRYABLE_STATUS = {408, 425, 429}


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


async def _check_target(host: str, port: int) -> None:
    """Refuse loopback/private targets (SSRF) unless RUNLANE_HTTP_ALLOW_PRIVATE is set."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ApplicationError(
            f"cannot resolve host '{host}': {exc}", type="HttpTargetError"
        ) from exc
    for info in infos:
        if _blocked_address(str(info[4][0])):
            raise ApplicationError(
                f"refusing to call {host} ({info[4][0]}): loopback/private addresses are not "
                "allowed (set RUNLANE_HTTP_ALLOW_PRIVATE=true to allow them)",
                type="HttpTargetNotAllowed",
                non_retryable=True,
            )


def _parse_body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except json.JSONDecodeError:
            pass
    return response.text


class HttpNodeActivities:
    def __init__(self, client: httpx.AsyncClient, *, allow_private: bool) -> None:
        self._client = client
        self._allow_private = allow_private

    @activity.defn(name="http_request")
    async def http_request(self, task: NodeTaskInput) -> NodeTaskOutput:
        config = HttpRequestConfig.model_validate(task.node.config)
        context = task.template_context()
        url = str(templating.render(config.url, context))
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApplicationError(
                f"'{url}' is not an http(s) URL", type="HttpTargetError", non_retryable=True
            )
        if not self._allow_private:
            await _check_target(
                parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
            )
        headers = {k: str(templating.render(v, context)) for k, v in (config.headers or {}).items()}
        # The peer can deduplicate retries of this node within this run.
        headers["Idempotency-Key"] = f"{task.run_id}:{task.node.id}"
        body = templating.render(config.body, context)
        try:
            response = await self._client.request(
                config.method,
                url,
                headers=headers,
                json=body if body is not None else None,
                timeout=config.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise ApplicationError(
                f"{config.method} {url} failed: {exc!r}", type="HttpConnectionError"
            ) from exc
        payload = _parse_body(response)
        if not response.is_success:
            status = response.status_code
            raise ApplicationError(
                f"{config.method} {url} answered HTTP {status}",
                {"status": status, "body": payload},
                type="HttpStatusError",
                non_retryable=status < 500 and status not in _RETRYABLE_STATUS,
            )
        return NodeTaskOutput.done(
            {
                "status": response.status_code,
                "headers": dict(response.headers),
                "body": payload,
            }
        )


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
                deps.http_client, allow_private=deps.settings.http_allow_private
            ).http_request
        ),
    ),
)
