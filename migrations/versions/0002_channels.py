"""channels: push subscription keys on contacts, bundled SMS on the outbox

Revision ID: 0002_channels
Revises: 0001
Create Date: 2026-11-27 07:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002_channels'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.add_column(sa.Column('push_keys', sa.JSON(), nullable=True))

    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bundled_into_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_notification_bundled_into_id'), ['bundled_into_id'],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_notification_bundled_into_id_notification'),
                                    'notification', ['bundled_into_id'], ['id'])


def downgrade():
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_notification_bundled_into_id_notification'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_notification_bundled_into_id'))
        batch_op.drop_column('bundled_into_id')

    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_column('push_keys')
