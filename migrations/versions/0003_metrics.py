"""metrics: indexes for the response figures and /metrics

Revision ID: 0003_metrics
Revises: 0002_channels
Create Date: 2026-11-27 08:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0003_metrics'
down_revision = '0002_channels'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('case', schema=None) as batch_op:
        # Covering: the figures read a community's period from the index alone.
        batch_op.create_index('ix_case_figures', ['community_id', 'reported_at'], unique=False,
                              postgresql_include=['id', 'place_id', 'status', 'resolution',
                                                  'urgency', 'category', 'accepted_by_id',
                                                  'accepted_rung', 'closed_rung', 'accepted_at',
                                                  'on_site_at', 'resolved_at', 'closed_at',
                                                  'policy'])
        batch_op.create_index('ix_case_accepted_at', ['accepted_at'], unique=False)
    with op.batch_alter_table('callback', schema=None) as batch_op:
        batch_op.create_index('ix_callback_answer', ['case_id', 'id'], unique=False,
                              postgresql_include=['contacted', 'solved', 'satisfaction'])


def downgrade():
    with op.batch_alter_table('callback', schema=None) as batch_op:
        batch_op.drop_index('ix_callback_answer')
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_index('ix_case_accepted_at')
        batch_op.drop_index('ix_case_figures')
