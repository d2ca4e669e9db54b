"""scans: index a sticker's scans by time, for scan counts and stickers nobody scans

Revision ID: 0006_scan_sticker_at
Revises: 0005_phone_indexes
Create Date: 2026-12-06 09:00:00.000000

"""
from alembic import op

revision = "0006_scan_sticker_at"
down_revision = "0005_phone_indexes"
branch_labels = None
depends_on = None


def upgrade():
    # Built CONCURRENTLY on PostgreSQL, outside the migration's transaction, so scans keep
    # being written meanwhile. The new index leads with sticker_id, so it replaces the old one.
    with op.get_context().autocommit_block():
        op.create_index("ix_scan_sticker_at", "scan", ["sticker_id", "at"],
                        postgresql_concurrently=True)
        op.drop_index("ix_scan_sticker_id", table_name="scan", postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.create_index("ix_scan_sticker_id", "scan", ["sticker_id"],
                        postgresql_concurrently=True)
        op.drop_index("ix_scan_sticker_at", table_name="scan", postgresql_concurrently=True)
