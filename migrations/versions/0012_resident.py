"""residents: each joining reporter's own status link; photos kept across a form error

Revision ID: 0012_resident
Revises: 0011_desk
Create Date: 2026-12-06 12:10:00.000000

"""
import sqlalchemy as sa
from alembic import op

import dispatch.db

revision = "0012_resident"
down_revision = "0011_desk"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable: older reports keep using their case's link; nothing is rewritten.
    with op.batch_alter_table("report") as batch:
        batch.add_column(sa.Column("public_token", sa.String(length=32), nullable=True))
        batch.create_unique_constraint(batch.f("uq_report_public_token"), ["public_token"])
    op.create_table(
        "photo_draft",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", dispatch.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo_draft")),
    )
    with op.batch_alter_table("photo_draft") as batch:
        batch.create_index(batch.f("ix_photo_draft_owner"), ["owner"], unique=False)
        batch.create_index(batch.f("ix_photo_draft_created_at"), ["created_at"], unique=False)


def downgrade():
    op.drop_table("photo_draft")
    with op.batch_alter_table("report") as batch:
        batch.drop_constraint(batch.f("uq_report_public_token"), type_="unique")
        batch.drop_column("public_token")
