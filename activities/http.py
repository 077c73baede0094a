"""`http_request`: the side-effecting node. A regular activity, retried by Temporal."""

from __future__ import annotations

import json
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.models import NodeTaskInput, NodeTaskOutput
from activities.node_type import NodeType
from activities.secret_scope import SecretResolver, SecretScope
from activities.usage import record_effect
from runlane import templating
from runlane.outbound import (
    CheckedTarget,
    Resolver,
    TargetRefused,
    check_target,
    parse_http_url,
    resolve_host,
    send_pinned,
)
from runlane.redaction import install_log_masking

# Status codes worth retrying: the peer may answer differently next time.
_RETRYABLE_STATUS = {408, 425, 429}
# A response body becomes the node's output: a pure node's output may be 1 MiB compressed
# (activities/evaluation.py), and this bound keeps the activity's result under Temporal's
# 2 MB payload limit whatever the body compresses to.
MAX_RESPONSE_BYTES = 1024 * 1024
# Where `{{$secrets.name}}` may appear (API.md "Secrets"): resolved by this activity only.
SECRET_FIELDS = frozenset({"url", "headers", "body"})
# Failures before any byte of the request left: no request was sent, so no effect is recorded.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


def _bytes_sent(exc: httpx.HTTPError) -> int:
    try:
        return len(exc.request.content)
    except (RuntimeError, httpx.RequestNotRead):  # (no request attached, or a stream)
        return 0


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


async def _checked_target(
    target: httpx.URL, resolve: Resolver, *, allow_private: bool
) -> CheckedTarget:
    """The SSRF guard (runlane/outbound.py), its refusals as this node's errors: a refused
    address is not retried, a name that does not resolve is."""
    try:
        return await check_target(target, resolve, allow_private=allow_private)
    except TargetRefused as refused:
        raise ApplicationError(
            refused.message, type=refused.kind, non_retryable=refused.not_allowed
        ) from refused


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
        target = parse_http_url(url)
        if target is None:
            raise ApplicationError(
                f"'{shown}' is not an http(s) URL", type="HttpTargetError", non_retryable=True
            )
        checked = await _checked_target(target, self._resolve, allow_private=self._allow_private)
        headers = httpx.Headers(
            {k: str(_render(v, scope.context)) for k, v in (config.headers or {}).items()}
        )
        # The peer can deduplicate retries of this node within this run.
        idempotency_key = f"{task.run_id}:{task.node.id}"
        headers["Idempotency-Key"] = idempotency_key
        body = _render(config.body, scope.context)
        # The side-effect ledger's URL (activities/usage.py): as shown, secrets as `***`.
        ledger_url = scope.redactor.text(shown)
        try:
            # To the checked address; a redirect would go to an address nobody checked, so a
            # 3xx is the answer.
            response = await send_pinned(
                self._client,
                config.method,
                checked,
                headers=headers,
                timeout=config.timeout_s,
                json=body if body is not None else None,
            )
        except httpx.HTTPError as exc:
            if not isinstance(exc, _NOT_SENT):  # sent, and no answer came
                record_effect(
                    method=config.method,
                    url=ledger_url,
                    idempotency_key=idempotency_key,
                    status_code=None,
                    bytes_sent=_bytes_sent(exc),
                    bytes_received=0,
                )
            raise ApplicationError(
                f"{config.method} {shown} failed: {exc!r}", type="HttpConnectionError"
            ) from exc
        record_effect(
            method=config.method,
            url=ledger_url,
            idempotency_key=idempotency_key,
            status_code=response.status_code,
            bytes_sent=len(response.request.content),
            # The body as it came over the wire (compressed, if it was).
            bytes_received=response.num_bytes_downloaded,
        )
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
