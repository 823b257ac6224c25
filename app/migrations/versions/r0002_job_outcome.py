"""Record when a job finished and why it ended in `error`.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the `finished` time and the `message` of a job that gave up."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("finished", sa.Float, nullable=True))
        batch.add_column(sa.Column("message", sa.Text, nullable=True))


def downgrade() -> None:
    """Drop both columns."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("message")
        batch.drop_column("finished")
