"""outbox: index a phone's messages, and contacts by address, for pacing on every send

Revision ID: 0005_phone_indexes
Revises: 0004_sent_text
Create Date: 2026-11-27 16:00:00.000000

"""
from alembic import op

revision = "0005_phone_indexes"
down_revision = "0004_sent_text"
branch_labels = None
depends_on = None


def upgrade():
    # Built CONCURRENTLY on PostgreSQL, outside the migration's transaction: a district's
    # outbox keeps taking messages while the indexes are built (docs/deploy.md, upgrading).
    with op.get_context().autocommit_block():
        op.create_index("ix_notification_phone", "notification",
                        ["to_address", "status", "id"], postgresql_concurrently=True)
        op.create_index("ix_notification_phone_sent", "notification",
                        ["to_address", "sent_at"], postgresql_concurrently=True)
        op.create_index("ix_contact_address", "contact", ["address"],
                        postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        for name, table in (("ix_contact_address", "contact"),
                            ("ix_notification_phone_sent", "notification"),
                            ("ix_notification_phone", "notification")):
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
