"""outbox: keep delivery receipts that arrive before their message's provider id is adopted

Revision ID: 0007_early_receipts
Revises: 0006_scan_sticker_at
Create Date: 2026-12-06 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

import dispatch.db

revision = "0007_early_receipts"
down_revision = "0006_scan_sticker_at"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "early_receipt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Enum("pending", "sending", "sent", "delivered", "undelivered",
                                    "failed", "cancelled", name="notificationstatus",
                                    native_enum=False, length=24), nullable=False),
        sa.Column("error_code", sa.String(length=16), nullable=True),
        sa.Column("received_at", dispatch.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_early_receipt")),
    )
    op.create_index(op.f("ix_early_receipt_provider_id"), "early_receipt", ["provider_id"])
    op.create_index(op.f("ix_early_receipt_received_at"), "early_receipt", ["received_at"])


def downgrade():
    op.drop_index(op.f("ix_early_receipt_received_at"), table_name="early_receipt")
    op.drop_index(op.f("ix_early_receipt_provider_id"), table_name="early_receipt")
    op.drop_table("early_receipt")
