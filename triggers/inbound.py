"""Inbound webhooks (API.md "Triggers"): signed calls that start runs of a workflow.

A webhook names a workflow, the `start_json` node its calls feed and the definition its runs
use (`published`, the snapshot published when the call arrives, or the `draft`). Calls follow
Standard Webhooks: the `standardwebhooks` package checks `webhook-signature` (HMAC-SHA256 of
"id.timestamp.body" under the webhook's secret) and a `webhook-timestamp` within 5 minutes.
Every call that verifies goes through `RunService.start` with a command id derived from the
webhook and the call's `webhook-id`: the run service's idempotency protocol makes a delivery
sent again (or sent ten times at once) answer the first run, never start a second one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from standardwebhooks import Webhook, WebhookVerificationError

from activities.registry import NodeRegistry
from runlane.definition import Definition
from runlane.errors import NotFound, Unauthorized, Unavailable, invalid, not_found
from runlane.json_values import parse_json_body
from runlane.paging import Order
from runlane.secret_box import SecretDecryptError
from runlane.signing_secrets import new_signing_secret
from runs.inputs import RequestedInputs
from runs.models import Outcome
from runs.service import RunService
from runs.starter import ConfigSource, PublishedDefinitions, definition_for
from store.pagination import Page
from store.webhooks import InboundWebhookRecord, InboundWebhookRepository
from store.workflows import WorkflowRepository
from workflows.models import Trigger

log = logging.getLogger("runlane.triggers")

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
# A `webhook-id` becomes part of an idempotency key and the run's trigger: visible ASCII, and
# short (Standard Webhooks senders use ids like `msg_2KWPBgLlAfxdpx2AI54pPJ85f4W`).
_DELIVERY_ID = re.compile(r"[\x21-\x7e]{1,256}")

# What the verifier's refusals mean, in the words a sender needs.
_REFUSALS = {
    "Message timestamp too old": "webhook-timestamp is more than 5 minutes in the past",
    "Message timestamp too new": "webhook-timestamp is more than 5 minutes in the future",
    "Invalid Signature Headers": "webhook-timestamp is not a Unix time in seconds",
    "No matching signature found": (
        "no signature in webhook-signature matches the body under this webhook's secret"
    ),
}


@dataclass(frozen=True)
class CreatedWebhook:
    """A new webhook and its signing secret: the only time the secret is ever given out."""

    webhook: InboundWebhookRecord
    secret: str


class InboundWebhooks:
    def __init__(
        self,
        *,
        webhooks: InboundWebhookRepository,
        workflows: WorkflowRepository,
        registry: NodeRegistry,
        published: PublishedDefinitions,
        runs: RunService,
    ) -> None:
        self._webhooks = webhooks
        self._workflows = workflows
        self._registry = registry
        self._published = published
        self._runs = runs

    async def create(
        self,
        org: str,
        workflow_id: str,
        *,
        input_node: str | None = None,
        config_source: ConfigSource = "published",
    ) -> CreatedWebhook:
        """A webhook feeding `input_node` (default: the workflow's only start_json node) of
        the definition its runs will use; NotFound for an unknown workflow, Conflict when a
        `published` webhook's workflow has nothing published (as a run start would)."""
        definition, _ = await definition_for(
            org, workflow_id, config_source, self._workflows, self._registry, self._published
        )
        node = self._input_node(definition, input_node, config_source)
        secret = new_signing_secret()
        webhook = await self._webhooks.create(
            org,
            workflow_id=workflow_id,
            input_node=node,
            config_source=config_source,
            secret=secret,
        )
        return CreatedWebhook(webhook, secret)

    def _input_node(
        self, definition: Definition, requested: str | None, config_source: ConfigSource
    ) -> str:
        json_starts = [
            node.id
            for node in definition.nodes
            if (spec := self._registry.get(node.type)) is not None
            and spec.behaviour.run_input == "json"
        ]
        which = f"the workflow's {config_source} definition"
        if requested is not None:
            if requested in json_starts:
                return requested
            known = {node.id: node.type for node in definition.nodes}
            if requested in known:
                problem = (
                    f"'{requested}' is a {known[requested]} node of {which}; a webhook feeds a "
                    "start_json node"
                )
            else:
                problem = f"{which} has no node '{requested}'"
            raise _bad_input_node(problem, json_starts)
        if len(json_starts) == 1:
            return json_starts[0]
        if not json_starts:
            raise _bad_input_node(
                f"{which} has no start_json node for the webhook's JSON body to feed", json_starts
            )
        raise _bad_input_node(
            f"{which} has several start_json nodes; say which one the webhook feeds",
            json_starts,
        )

    async def list(
        self, org: str, workflow_id: str, *, limit: int, cursor: str | None, order: Order = "desc"
    ) -> Page[InboundWebhookRecord]:
        """The workflow's webhooks (never their secrets); NotFound for an unknown workflow.
        InvalidCursor for a cursor this listing did not write."""
        if await self._workflows.get(org, workflow_id) is None:
            raise not_found("workflow", workflow_id)
        return await self._webhooks.list(org, workflow_id, limit=limit, cursor=cursor, order=order)

    async def delete(self, org: str, webhook_id: str) -> None:
        """Delete the webhook: its later calls answer 404; the runs it started stay."""
        if not await self._webhooks.delete(org, webhook_id):
            raise not_found("webhook", webhook_id)

    async def receive(self, webhook_id: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        """Start a run from a signed call: NotFound for an unknown webhook, then Unauthorized
        unless the signature verifies, then InvalidInput for a body that is not JSON or that
        the input node refuses. A `webhook-id` seen before answers its first run (replayed)."""
        webhook, secret = await self._find(webhook_id)
        delivery_id = _verified_delivery_id(secret, body, headers)
        value = parse_json_body(body)
        return await self._runs.start(
            webhook.organization_id,
            webhook.workflow_id,
            RequestedInputs(json_inputs={webhook.input_node: value}),
            config_source="draft" if webhook.config_source == "draft" else "published",
            command_id=f"runlane:webhook:{webhook.id}:{delivery_id}",
            body={},
            trigger=Trigger(type="webhook", webhook_id=webhook.id, delivery_id=delivery_id),
        )

    async def _find(self, webhook_id: str) -> tuple[InboundWebhookRecord, str]:
        try:
            found = await self._webhooks.for_delivery(webhook_id)
        except SecretDecryptError as error:
            # An operator's problem (RUNLANE_SECRETS_KEY lost a key), never the sender's.
            log.error("inbound webhook %s: %s", webhook_id, error)
            raise Unavailable(
                "webhook_secret_unreadable",
                "This webhook's secret cannot be read with the server's keys right now.",
            ) from None
        if found is None:
            raise NotFound("webhook_not_found", f"No webhook {webhook_id}.")
        return found


def _verified_delivery_id(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """The call's `webhook-id` once its signature verifies; Unauthorized otherwise."""
    lowered = {name.lower(): value for name, value in headers.items()}
    missing = [name for name in SIGNATURE_HEADERS if not lowered.get(name)]
    if missing:
        raise _unauthorized(
            f"the call lacks the header{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        )
    try:
        Webhook(secret).verify(body, lowered, json_parse=False)
    except WebhookVerificationError as error:
        raise _unauthorized(_REFUSALS.get(str(error), str(error))) from None
    except UnicodeDecodeError:
        raise _unauthorized("the body is not UTF-8, so its signature cannot be checked") from None
    except Exception:  # noqa: BLE001
        # The verifier reads only what the caller sent, and malformed headers make it raise
        # whatever its parsing meets (a signature without a comma: ValueError; bad base64:
        # binascii.Error). Any of them means the call did not prove it knows the secret.
        raise _unauthorized(
            "webhook-signature is malformed: it holds space-separated 'v1,<base64 signature>'"
        ) from None
    delivery_id = lowered["webhook-id"]
    if not _DELIVERY_ID.fullmatch(delivery_id):
        message = (
            "The webhook-id header must be 1 to 256 visible ASCII characters (no spaces); "
            "it identifies the delivery, so that sending it again starts no second run."
        )
        raise invalid(
            "invalid_webhook_id", message, [{"loc": ["header", "webhook-id"], "message": message}]
        )
    return delivery_id


def _unauthorized(reason: str) -> Unauthorized:
    return Unauthorized(
        "invalid_webhook_signature",
        f"The call's signature does not verify: {reason}. Sign it as Standard Webhooks says "
        "(webhook-id, webhook-timestamp, webhook-signature) with the webhook's secret.",
    )


def _bad_input_node(problem: str, json_starts: list[str]) -> Exception:
    choices = ", ".join(f"'{node}'" for node in json_starts) or "none"
    message = f"Cannot feed a webhook into this workflow: {problem} (start_json nodes: {choices})."
    return invalid(
        "invalid_input_node", message, [{"loc": ["body", "input_node"], "message": message}]
    )
