"""staff: a session generation per login, so logging out ends every copy of the cookie

Revision ID: 0008_staff_sessions
Revises: 0007_early_receipts
Create Date: 2026-12-06 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = "0008_staff_sessions"
down_revision = "0007_early_receipts"
branch_labels = None
depends_on = None


def upgrade():
    # A constant default: adding the column rewrites nothing on PostgreSQL 11+.
    with op.batch_alter_table("staff_user") as batch:
        batch.add_column(sa.Column("session_generation", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade():
    with op.batch_alter_table("staff_user") as batch:
        batch.drop_column("session_generation")
