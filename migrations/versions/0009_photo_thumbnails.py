"""photos: a stored thumbnail, so the case page loads a few KB per photo, not the photo

Revision ID: 0009_photo_thumbnails
Revises: 0008_staff_sessions
Create Date: 2026-12-06 10:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = "0009_photo_thumbnails"
down_revision = "0008_staff_sessions"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable, no default: adding it rewrites nothing; old photos get theirs on first view.
    with op.batch_alter_table("photo") as batch:
        batch.add_column(sa.Column("thumbnail", sa.LargeBinary(), nullable=True))


def downgrade():
    with op.batch_alter_table("photo") as batch:
        batch.drop_column("thumbnail")
