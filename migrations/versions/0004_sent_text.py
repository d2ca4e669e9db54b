"""outbox: keep the text of a message's first attempt, so retries resend it unchanged

Revision ID: 0004_sent_text
Revises: 0003_metrics
Create Date: 2026-11-27 08:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = "0004_sent_text"
down_revision = "0003_metrics"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_text", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_column("sent_text")
