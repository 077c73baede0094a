"""Inbound webhooks: which workflow and start node each one runs, and its signing secret, kept
only as ciphertext (runlane/secret_box.py) like organizations' secrets.

Management (create, list, delete) is scoped to one organization: another's webhooks look
missing. A delivery (`POST /hooks/{id}`) carries no API key, only the webhook id: `for_delivery`
alone finds a webhook by id, and is the one place its secret is decrypted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select

from runlane import ids
from runlane.paging import Order
from runlane.secret_box import Sealed, SecretKeys
from store.db import Database
from store.pagination import Page, after_time_cursor, encode_time_cursor, make_page, ordered
from store.tables import InboundWebhookRow

PREFIX = "wh"
_ID = re.compile(r"wh_[0-9a-f]{32}")


@dataclass(frozen=True)
class InboundWebhookRecord:
    """What may be shown of a webhook: never its secret."""

    id: str
    organization_id: str
    workflow_id: str
    input_node: str
    config_source: str
    created_at: datetime


class InboundWebhookRepository:
    def __init__(self, db: Database, keys: SecretKeys) -> None:
        self._db = db
        self._keys = keys

    async def create(
        self, org: str, *, workflow_id: str, input_node: str, config_source: str, secret: str
    ) -> InboundWebhookRecord:
        """A new webhook whose calls are signed with `secret` (sealed with the current key)."""
        webhook_id = ids.new_id(PREFIX)
        sealed = self._keys.seal(org, _sealed_name(webhook_id), secret)
        row = InboundWebhookRow(
            id=webhook_id,
            organization_id=org,
            workflow_id=workflow_id,
            input_node=input_node,
            config_source=config_source,
            key_id=sealed.key_id,
            ciphertext=sealed.data,
            created_at=datetime.now(UTC),
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return _record(row)

    async def list(
        self, org: str, workflow_id: str, *, limit: int, cursor: str | None, order: Order = "desc"
    ) -> Page[InboundWebhookRecord]:
        """The workflow's webhooks by creation time: newest first (`desc`) or oldest first."""
        query = select(InboundWebhookRow).where(
            InboundWebhookRow.organization_id == org, InboundWebhookRow.workflow_id == workflow_id
        )
        if cursor is not None:
            query = query.where(
                after_time_cursor(InboundWebhookRow.created_at, InboundWebhookRow.id, cursor, order)
            )
        query = query.order_by(*ordered(order, InboundWebhookRow.created_at, InboundWebhookRow.id))
        async with self._db.session() as session:
            rows = (await session.scalars(query.limit(limit + 1))).all()
        return make_page(
            rows, limit, _record, lambda r: encode_time_cursor(r.created_at, r.id, order)
        )

    async def delete(self, org: str, webhook_id: str) -> bool:
        """Whether the organization had such a webhook. Its runs stay; its calls now get 404."""
        if not is_webhook_id(webhook_id):
            return False
        query = delete(InboundWebhookRow).where(
            InboundWebhookRow.organization_id == org, InboundWebhookRow.id == webhook_id
        )
        async with self._db.session() as session, session.begin():
            result = await session.execute(query)
        return bool(getattr(result, "rowcount", 0))

    async def for_delivery(self, webhook_id: str) -> tuple[InboundWebhookRecord, str] | None:
        """The webhook and its decrypted signing secret, whatever its organization (the call
        names only the webhook); None when there is no such webhook. SecretDecryptError when
        the keys at hand cannot decrypt the secret."""
        if not is_webhook_id(webhook_id):
            return None  # not an id this store issues (and NUL would break PostgreSQL)
        async with self._db.session() as session:
            row = await session.get(InboundWebhookRow, webhook_id)
        if row is None:
            return None
        secret = self._keys.open(
            row.organization_id, _sealed_name(row.id), Sealed(row.key_id, row.ciphertext)
        )
        return _record(row), secret


def is_webhook_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def _sealed_name(webhook_id: str) -> str:
    # What the ciphertext is bound to beside the organization. The '/' keeps it apart from
    # every secret name (`[A-Za-z0-9_]`): an organization's secret named like a webhook id
    # does not decrypt as this webhook's, nor the other way round.
    return f"inbound-webhook/{webhook_id}"


def _record(row: InboundWebhookRow) -> InboundWebhookRecord:
    return InboundWebhookRecord(
        id=row.id,
        organization_id=row.organization_id,
        workflow_id=row.workflow_id,
        input_node=row.input_node,
        config_source=row.config_source,
        created_at=row.created_at,
    )
