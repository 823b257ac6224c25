"""Create the deliveries and jobs tables (the schema the store had before Alembic).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create both tables and their indexes."""
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.String(200), primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("event", sa.String(80), nullable=False),
        sa.Column("received", sa.Float, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("repository", sa.String(400), nullable=False),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=False),
        sa.Column("work", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("jobs_by_state", "jobs", ["state", "id"])
    op.create_index("jobs_by_pull", "jobs", ["provider", "repository", "number"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("jobs")
    op.drop_table("deliveries")
