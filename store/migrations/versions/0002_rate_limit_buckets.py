"""Per-organization token buckets of the API's rate limit (store/rate_limits.py)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 00:21:25.036198
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_buckets",
        sa.Column("organization_id", sa.String(length=255), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("taken", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("rate_limit_buckets_pkey")),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_buckets")
