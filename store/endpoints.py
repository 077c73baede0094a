"""Event webhook endpoints and their delivery log (API.md "Outbound event webhooks").

Every method is scoped to one organization, except those the delivery workflow calls with an
event in hand (the event names its organization). An endpoint's signing secret is generated
here, answered once by `create`, stored only as ciphertext (runlane/secret_box.py) and opened
only by `targets`, which event delivery calls to sign what it sends.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from runlane.paging import Order
from runlane.secret_box import Sealed, SecretDecryptError, SecretKeys
from runlane.signing_secrets import new_signing_secret
from store.db import Database
from store.pagination import Page, after_time_cursor, encode_time_cursor, make_page, ordered
from store.tables import WebhookDeliveryRow, WebhookEndpointRow


@dataclass(frozen=True)
class EndpointRecord:
    """What may be shown of an endpoint: never its secret."""

    id: str
    organization_id: str
    url: str
    events: list[str]
    description: str
    disabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class EndpointTarget:
    """An endpoint as event delivery needs it: where to send, and the secret to sign with."""

    id: str
    url: str
    # None when it cannot be decrypted (RUNLANE_SECRETS_KEY lost the key that sealed it): the
    # delivery to it fails, saying so, and the others go on.
    secret: str | None


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    run_id: str
    # "pending" (not attempted yet), "retrying" (failed; next_attempt_at says when again),
    # "succeeded" (a 2xx) or "failed" (for good: out of time, or the endpoint disabled).
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt to deliver an event to one endpoint came to."""

    endpoint_id: str
    succeeded: bool
    status_code: int | None = None
    error: str | None = None


# Module-level names: inside the repository, `list` is its method.
EndpointTargets = list[EndpointTarget]
EventTypes = list[str]


def _sealed_name(endpoint_id: str) -> str:
    # Bound to the endpoint, under a name no organization secret can have (those are
    # [A-Za-z0-9_]): a ciphertext copied between the two tables does not decrypt.
    return f"webhook-endpoint/{endpoint_id}"


def _events_text(events: Sequence[str]) -> str:
    return " " + " ".join(events) + " "


class EndpointRepository:
    def __init__(self, db: Database, keys: SecretKeys) -> None:
        self._db = db
        self._keys = keys

    # ------------------------------------------------------------------ endpoints

    async def create(
        self, org: str, *, url: str, events: Sequence[str], description: str
    ) -> tuple[EndpointRecord, str]:
        """A new endpoint, and its secret (which nothing answers again)."""
        endpoint_id = "we_" + uuid.uuid4().hex
        secret = new_signing_secret()
        sealed = self._keys.seal(org, _sealed_name(endpoint_id), secret)
        now = datetime.now(UTC)
        events = sorted(set(events))
        row = WebhookEndpointRow(
            id=endpoint_id,
            organization_id=org,
            url=url,
            events=events,
            events_text=_events_text(events),
            description=description,
            disabled=False,
            key_id=sealed.key_id,
            secret_ciphertext=sealed.data,
            created_at=now,
            updated_at=now,
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return _endpoint(row), secret

    async def get(self, org: str, endpoint_id: str) -> EndpointRecord | None:
        async with self._db.session() as session:
            row = await session.get(WebhookEndpointRow, endpoint_id)
        if row is None or row.organization_id != org:
            return None
        return _endpoint(row)

    async def list(
        self, org: str, *, limit: int, cursor: str | None, order: Order = "desc"
    ) -> Page[EndpointRecord]:
        """By creation time: newest first (`desc`) or oldest first (`asc`)."""
        table = WebhookEndpointRow
        query = select(table).where(table.organization_id == org)
        if cursor is not None:
            query = query.where(after_time_cursor(table.created_at, table.id, cursor, order))
        query = query.order_by(*ordered(order, table.created_at, table.id))
        async with self._db.session() as session:
            rows = (await session.scalars(query.limit(limit + 1))).all()
        return make_page(
            rows, limit, _endpoint, lambda r: encode_time_cursor(r.created_at, r.id, order)
        )

    async def update(
        self,
        org: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        disabled: bool | None = None,
        description: str | None = None,
    ) -> EndpointRecord | None:
        """The endpoint with the given fields changed (None: unchanged); None when missing."""
        async with self._db.session() as session, session.begin():
            row = await session.get(WebhookEndpointRow, endpoint_id, with_for_update=True)
            if row is None or row.organization_id != org:
                return None
            if url is not None:
                row.url = url
            if events is not None:
                row.events = sorted(set(events))
                row.events_text = _events_text(row.events)
            if disabled is not None:
                row.disabled = disabled
            if description is not None:
                row.description = description
            row.updated_at = datetime.now(UTC)
        return _endpoint(row)

    async def delete(self, org: str, endpoint_id: str) -> bool:
        """Whether there was such an endpoint; its delivery log goes with it, and deliveries
        in progress stop at their next attempt."""
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                delete(WebhookEndpointRow).where(
                    WebhookEndpointRow.id == endpoint_id, WebhookEndpointRow.organization_id == org
                )
            )
            if not getattr(result, "rowcount", 0):
                return False
            await session.execute(
                delete(WebhookDeliveryRow).where(WebhookDeliveryRow.endpoint_id == endpoint_id)
            )
        return True

    async def subscribed_event_types(self, organization_id: str) -> EventTypes:
        """The event types (sorted, once each) that an enabled endpoint of the organization
        subscribes to: what a run started now emits."""
        query = select(WebhookEndpointRow.events).where(
            WebhookEndpointRow.organization_id == organization_id,
            WebhookEndpointRow.disabled.is_(False),
        )
        async with self._db.session() as session:
            subscriptions = (await session.scalars(query)).all()
        return sorted({event for events in subscriptions for event in events})

    # ------------------------------------------------------------------ deliveries

    async def targets(
        self, org: str, event_type: str, endpoint_ids: Sequence[str] | None = None
    ) -> EndpointTargets:
        """The organization's enabled endpoints subscribed to `event_type` now (only those of
        `endpoint_ids` when given), with their secrets, oldest first."""
        table = WebhookEndpointRow
        query = select(table).where(
            table.organization_id == org,
            table.disabled.is_(False),
            table.events_text.contains(f" {event_type} ", autoescape=True),
        )
        if endpoint_ids is not None:
            query = query.where(table.id.in_(list(endpoint_ids)))
        async with self._db.session() as session:
            rows = (await session.scalars(query.order_by(table.created_at, table.id))).all()
        return [EndpointTarget(id=row.id, url=row.url, secret=self._secret(row)) for row in rows]

    def _secret(self, row: WebhookEndpointRow) -> str | None:
        try:
            return self._keys.open(
                row.organization_id,
                _sealed_name(row.id),
                Sealed(row.key_id, row.secret_ciphertext),
            )
        except SecretDecryptError:
            return None

    async def open_deliveries(
        self,
        org: str,
        *,
        event_id: str,
        event_type: str,
        run_id: str,
        endpoint_ids: Sequence[str],
    ) -> None:
        """A `pending` delivery per endpoint, unless it has one for this event already (a
        first attempt that ran again after a worker crash). One statement: every event's
        first attempt writes here, beside the runs' own work."""
        if not endpoint_ids:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "id": "wd_" + uuid.uuid4().hex,
                "organization_id": org,
                "endpoint_id": endpoint_id,
                "event_id": event_id,
                "event_type": event_type,
                "run_id": run_id,
                "status": "pending",
                "attempts": 0,
                "last_status_code": None,
                "last_error": None,
                "next_attempt_at": None,
                "created_at": now,
                "updated_at": now,
            }
            for endpoint_id in endpoint_ids
        ]
        dialect_insert = (
            postgresql_insert if self._db.engine.dialect.name == "postgresql" else sqlite_insert
        )
        statement = (
            dialect_insert(WebhookDeliveryRow)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"])
        )
        async with self._db.session() as session, session.begin():
            await session.execute(statement)

    async def record_attempts(
        self,
        event_id: str,
        outcomes: Sequence[AttemptOutcome],
        *,
        next_attempt_at: datetime | None,
    ) -> None:
        """One more attempt at each outcome's endpoint, in one transaction: `succeeded`, else
        `retrying` until `next_attempt_at`, or `failed` when there is none."""
        table = WebhookDeliveryRow
        now = datetime.now(UTC)
        async with self._db.session() as session, session.begin():
            for outcome in outcomes:
                if outcome.succeeded:
                    status, next_at = "succeeded", None
                else:
                    status = "retrying" if next_attempt_at is not None else "failed"
                    next_at = next_attempt_at
                await session.execute(
                    update(table)
                    .where(table.event_id == event_id, table.endpoint_id == outcome.endpoint_id)
                    .values(
                        status=status,
                        attempts=table.attempts + 1,
                        last_status_code=outcome.status_code,
                        last_error=outcome.error,
                        next_attempt_at=next_at,
                        updated_at=now,
                    )
                )

    async def stop_deliveries(self, event_id: str, endpoint_ids: Sequence[str], why: str) -> None:
        """Deliveries that will not be attempted again (their endpoint was disabled or stopped
        subscribing): `failed`, saying why."""
        if not endpoint_ids:
            return
        table = WebhookDeliveryRow
        query = (
            update(table)
            .where(
                table.event_id == event_id,
                table.endpoint_id.in_(list(endpoint_ids)),
                table.status.in_(("pending", "retrying")),
            )
            .values(status="failed", last_error=why, next_attempt_at=None)
            .values(updated_at=datetime.now(UTC))
        )
        async with self._db.session() as session, session.begin():
            await session.execute(query)

    async def deliveries(
        self, org: str, endpoint_id: str, *, limit: int, cursor: str | None, order: Order = "desc"
    ) -> Page[DeliveryRecord]:
        """The endpoint's delivery log by creation time (newest first for `desc`)."""
        table = WebhookDeliveryRow
        query = select(table).where(table.organization_id == org, table.endpoint_id == endpoint_id)
        if cursor is not None:
            query = query.where(after_time_cursor(table.created_at, table.id, cursor, order))
        query = query.order_by(*ordered(order, table.created_at, table.id))
        async with self._db.session() as session:
            rows = (await session.scalars(query.limit(limit + 1))).all()
        return make_page(
            rows, limit, _delivery, lambda r: encode_time_cursor(r.created_at, r.id, order)
        )


def _endpoint(row: WebhookEndpointRow) -> EndpointRecord:
    return EndpointRecord(
        id=row.id,
        organization_id=row.organization_id,
        url=row.url,
        events=list(row.events),
        description=row.description,
        disabled=row.disabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _delivery(row: WebhookDeliveryRow) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        run_id=row.run_id,
        status=row.status,
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
