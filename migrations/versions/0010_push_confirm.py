"""contacts: a push subscription waits for the code sent to the member's phone

Revision ID: 0010_push_confirm
Revises: 0009_photo_thumbnails
Create Date: 2026-12-06 09:40:00.000000

"""
import sqlalchemy as sa
from alembic import op

import dispatch.db

revision = "0010_push_confirm"
down_revision = "0009_photo_thumbnails"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable or with a constant default: nothing is rewritten on PostgreSQL 11+.
    with op.batch_alter_table("contact") as batch:
        batch.add_column(sa.Column("confirm_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("confirm_until", dispatch.db.UTCDateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("confirm_tries", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade():
    with op.batch_alter_table("contact") as batch:
        batch.drop_column("confirm_tries")
        batch.drop_column("confirm_until")
        batch.drop_column("confirm_hash")
