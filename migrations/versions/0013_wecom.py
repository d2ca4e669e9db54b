"""outbox: what a provider hands back to act on a sent message later (WeCom's response_code)

Revision ID: 0013_wecom
Revises: 0012_resident
Create Date: 2026-12-06 12:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = "0013_wecom"
down_revision = "0012_resident"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable: nothing is rewritten on PostgreSQL 11+. `channel` is a plain string column,
    # so the new channel `wecom` needs no change.
    with op.batch_alter_table("notification") as batch:
        batch.add_column(sa.Column("follow_up", sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table("notification") as batch:
        batch.drop_column("follow_up")
