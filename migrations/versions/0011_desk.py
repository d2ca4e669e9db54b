"""the desk: a staff assignment is its own milestone; after-photos belong to the case they resolved; the live board's index of open cases

Revision ID: 0011_desk
Revises: 0010_push_confirm
Create Date: 2026-12-06 12:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

import dispatch.db

revision = "0011_desk"
down_revision = "0010_push_confirm"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable columns only: nothing is rewritten on PostgreSQL 11+. Report kinds are stored as
    # strings (no CHECK constraint), so the new kind "phone" needs no change.
    with op.batch_alter_table("case") as batch:
        batch.add_column(sa.Column("dispatched_to_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("dispatched_by_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("dispatched_at", dispatch.db.UTCDateTime(timezone=True),
                                   nullable=True))
        batch.create_foreign_key(batch.f("fk_case_dispatched_to_id_member"), "member",
                                 ["dispatched_to_id"], ["id"])
        batch.create_foreign_key(batch.f("fk_case_dispatched_by_id_staff_user"), "staff_user",
                                 ["dispatched_by_id"], ["id"])
    open_cases = sa.text("status IN ('open', 'accepted', 'on_site')")
    op.create_index("ix_case_open", "case", ["community_id", "reported_at", "id"],
                    postgresql_where=open_cases, sqlite_where=open_cases)
    with op.batch_alter_table("photo") as batch:
        batch.add_column(sa.Column("case_id", sa.Integer(), nullable=True))
        batch.alter_column("report_id", existing_type=sa.Integer(), nullable=True)
        batch.create_foreign_key(batch.f("fk_photo_case_id_case"), "case", ["case_id"], ["id"])
        batch.create_index(batch.f("ix_photo_case_id"), ["case_id"], unique=False)


def downgrade():
    op.execute("DELETE FROM photo WHERE report_id IS NULL")
    with op.batch_alter_table("photo") as batch:
        batch.drop_index(batch.f("ix_photo_case_id"))
        batch.drop_constraint(batch.f("fk_photo_case_id_case"), type_="foreignkey")
        batch.alter_column("report_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("case_id")
    op.drop_index("ix_case_open", table_name="case")
    with op.batch_alter_table("case") as batch:
        batch.drop_constraint(batch.f("fk_case_dispatched_by_id_staff_user"), type_="foreignkey")
        batch.drop_constraint(batch.f("fk_case_dispatched_to_id_member"), type_="foreignkey")
        batch.drop_column("dispatched_at")
        batch.drop_column("dispatched_by_id")
        batch.drop_column("dispatched_to_id")
