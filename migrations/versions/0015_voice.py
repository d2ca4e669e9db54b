"""residents: voice notes (按住说话) sent with a message, and kept across a form error

Revision ID: 0015_voice
Revises: 0014_longtail
Create Date: 2026-12-06 15:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

import dispatch.db

revision = "0015_voice"
down_revision = "0014_longtail"
branch_labels = None
depends_on = None


def upgrade():
    # A new table only: nothing existing is rewritten or locked.
    op.create_table(
        "voice_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", dispatch.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["report_id"], ["report.id"],
                                name=op.f("fk_voice_note_report_id_report")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_note")),
    )
    with op.batch_alter_table("voice_note") as batch:
        batch.create_index(batch.f("ix_voice_note_report_id"), ["report_id"], unique=False)
        batch.create_index(batch.f("ix_voice_note_owner"), ["owner"], unique=False)
        batch.create_index(batch.f("ix_voice_note_created_at"), ["created_at"], unique=False)


def downgrade():
    op.drop_table("voice_note")
