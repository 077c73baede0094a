"""Table definitions, and a column type that keeps datetimes timezone-aware UTC everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in and out: PostgreSQL keeps the zone, SQLite would silently drop it."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        # SQLite stores text; a fixed naive UTC form keeps lexical order = time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Constraint names as PostgreSQL gives unnamed ones (and SQLAlchemy's default for indexes), so
# a database the previous release made with `create_all` has exactly the names the migrations
# use: a later migration can drop or alter a constraint by name on every database, and SQLite's
# batch mode (which rebuilds a table) can address them too.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class WorkflowRow(Base):
    __tablename__ = "workflows"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    draft_definition: Mapped[dict[str, Any]]
    draft_updated_at: Mapped[datetime]
    # No foreign key: it would make the two tables depend on each other.
    published_snapshot_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_workflows_org_created", "organization_id", "created_at", "id"),)


class SnapshotRow(Base):
    __tablename__ = "workflow_snapshots"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(64), ForeignKey("workflows.id"))
    organization_id: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]

    # The constraint, not a lock, is what makes concurrent publishes number without duplicates.
    __table_args__ = (UniqueConstraint("workflow_id", "version", name="uq_snapshot_version"),)


class FileRow(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(255), index=True)
    filename: Mapped[str] = mapped_column(Text)
    mime_type: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class IdempotencyRow(Base):
    __tablename__ = "idempotency_keys"

    # The primary key is the guard: two concurrent claims of one key cannot both insert.
    organization_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    command_id: Mapped[str] = mapped_column(Text, primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    body_hash: Mapped[str] = mapped_column(String(128))
    result_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class ReviewDecisionRow(Base):
    """A reviewer's decision, recorded before it is sent as the `review` signal (the outbox
    runs/reviews.py delivers from): one per waiting node and attempt."""

    __tablename__ = "review_decisions"

    # The primary key is the guard: two reviewers deciding at once cannot both insert.
    organization_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(Text, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The command_id of the request that decided, or a random id without one.
    holder: Mapped[str] = mapped_column(Text)
    decision: Mapped[dict[str, Any]]
    # The Temporal execution the decision was taken against: it is delivered there or nowhere.
    temporal_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_review_decisions_undelivered", "delivered_at", "created_at"),)


class SecretRow(Base):
    """An organization's secret: its value only as AES-GCM ciphertext (runlane/secret_box.py),
    bound to the organization and name, with the id of the key that sealed it."""

    __tablename__ = "secrets"

    organization_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_secrets_org_created", "organization_id", "created_at", "name"),)


class InboundWebhookRow(Base):
    """An inbound webhook (API.md "Triggers"): which workflow and start node its signed calls
    run, and its signing secret only as AES-GCM ciphertext (runlane/secret_box.py), bound to
    the organization and webhook id, with the id of the key that sealed it."""

    __tablename__ = "inbound_webhooks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(255))
    workflow_id: Mapped[str] = mapped_column(String(64), ForeignKey("workflows.id"))
    input_node: Mapped[str] = mapped_column(String(64))
    config_source: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]

    __table_args__ = (
        Index(
            "ix_inbound_webhooks_org_workflow_created",
            "organization_id",
            "workflow_id",
            "created_at",
            "id",
        ),
    )


class ScheduleRow(Base):
    """A schedule's part that Runlane owns: whose it is, the workflow and inputs it runs, the
    operator's note, the listing order, and the spec as written. Its timing (paused, overlap,
    next and recent fires) is the Temporal Schedule's by the same id (triggers/schedules.py)."""

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(255))
    workflow_id: Mapped[str] = mapped_column(String(64))
    # The spec as the API took it (Temporal compiles cron text into calendars, so it cannot
    # answer it back); the Temporal Schedule holds the same times.
    spec: Mapped[dict[str, Any]]
    # {"json_inputs", "text_inputs", "documents": {node: {"file_id"}}}, as the API took them.
    inputs: Mapped[dict[str, Any]]
    config_source: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_schedules_org_created", "organization_id", "created_at", "id"),
        Index("ix_schedules_org_workflow_created", "organization_id", "workflow_id", "created_at"),
    )


class WebhookEndpointRow(Base):
    """An organization's event webhook endpoint (API.md "Outbound event webhooks"): its signing
    secret only as AES-GCM ciphertext (runlane/secret_box.py), bound to the organization and
    the endpoint id, with the id of the key that sealed it."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    # The subscribed event types, sorted; also as " a b " text so that "which endpoints want
    # this type" is one indexed query on every store (no JSON operators).
    events: Mapped[list[str]] = mapped_column(JSON)
    events_text: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean)
    key_id: Mapped[str] = mapped_column(String(64))
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_webhook_endpoints_org_created", "organization_id", "created_at", "id"),
        Index("ix_webhook_endpoints_org_enabled", "organization_id", "disabled"),
    )


class WebhookDeliveryRow(Base):
    """One event's delivery to one endpoint: what the delivery workflow did so far."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(255))
    endpoint_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        # The guard that a retried first attempt never logs one event twice for an endpoint.
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_delivery_event_endpoint"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
    )


# ---------------------------------------------------------------- effects and usage
#
# Written by the worker's node activities as they work (activities/usage.py): Temporal's
# history records only each activity's final outcome, not the requests a failed attempt sent
# nor what an attempt consumed. Rows are only ever inserted; they carry the Temporal
# execution they came from, so the reader maps each to the run attempt it belongs to.


class EffectRow(Base):
    """One request a side-effecting node actually sent (API.md "Side-effect ledger"): its URL
    with secrets as `***`, and the answer's status (null: no answer came)."""

    __tablename__ = "effects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(255))
    workflow_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64))
    # The step's node (a map's node for its items' requests) and, for a map item, its index.
    node_id: Mapped[str] = mapped_column(String(64))
    item_index: Mapped[int | None] = mapped_column(Integer)
    temporal_workflow_id: Mapped[str] = mapped_column(String(255))
    temporal_run_id: Mapped[str] = mapped_column(String(64))
    activity_attempt: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    bytes_sent: Mapped[int] = mapped_column(BigInteger)
    bytes_received: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime]

    __table_args__ = (Index("ix_effects_run_at", "run_id", "at"),)


class NodeUsageRow(Base):
    """What one activity attempt did for one node: a node's own activity attempt (an http
    request, a plugin's call, a map item), or a node a batch of pure work evaluated."""

    __tablename__ = "node_usage"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(255))
    workflow_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(64))
    temporal_workflow_id: Mapped[str] = mapped_column(String(255))
    temporal_run_id: Mapped[str] = mapped_column(String(64))
    activity_attempt: Mapped[int] = mapped_column(Integer)
    # Node executions this row begins (1 for a node's first activity attempt in an execution,
    # 0 for its retries; a chunk of map items counts each item), and activity attempts of the
    # node's own (0 for a node evaluated in a shared batch).
    executions: Mapped[int] = mapped_column(Integer)
    activity_attempts: Mapped[int] = mapped_column(Integer)
    http_requests: Mapped[int] = mapped_column(Integer)
    http_bytes_sent: Mapped[int] = mapped_column(BigInteger)
    http_bytes_received: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime]

    __table_args__ = (
        Index("ix_node_usage_run", "run_id"),
        Index("ix_node_usage_org_at", "organization_id", "at"),
    )


class UsageCostRow(Base):
    """A cost unit a node type reported in one activity attempt (`report_cost`), summed per
    unit and attempt."""

    __tablename__ = "usage_costs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(255))
    workflow_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(64))
    amount: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime]

    __table_args__ = (
        Index("ix_usage_costs_run", "run_id"),
        Index("ix_usage_costs_org_at", "organization_id", "at"),
    )


# ---- bulk operations


class BulkOperationRow(Base):
    """A bulk operation (bulk/): what was asked, and the runs it matched when it started. Its
    execution is its Temporal workflow (same id); its per-run outcomes are BulkOutcomeRow."""

    __tablename__ = "bulk_operations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))
    filter: Mapped[dict[str, Any]]
    matched: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class BulkTargetRow(Base):
    """The runs a bulk operation acts on, frozen when it starts, in the order it takes them:
    its workflow walks them by `seq`, a batch at a time, carrying only an offset."""

    __tablename__ = "bulk_targets"

    bulk_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("bulk_operations.id"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))


class BulkOutcomeRow(Base):
    """What the operation did to one run; written once the run's action has an answer (an
    activity retry rewrites the same row with the same answer: the action is idempotent)."""

    __tablename__ = "bulk_outcomes"

    bulk_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("bulk_operations.id"), primary_key=True
    )
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result_run_id: Mapped[str | None] = mapped_column(String(64))
    finished_at: Mapped[datetime]

    __table_args__ = (Index("ix_bulk_outcomes_bulk_seq", "bulk_id", "seq"),)


class RateLimitBucketRow(Base):
    """One organization's token bucket (api/deps.py), shared by every API replica: the
    whole update is one statement (store/rate_limits.py). `updated_at` is the database's
    clock in Unix seconds, so replicas with skewed clocks still agree."""

    __tablename__ = "rate_limit_buckets"

    organization_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    # Whole tokens the last take got (0: refused): RETURNING shows only the row, and the
    # tokens left alone do not say how many were taken.
    taken: Mapped[float] = mapped_column(Float)
