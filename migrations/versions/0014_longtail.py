"""the console's long tail: the board's index holds state, urgency and place, merged cases are indexed, and /metrics counts are kept by triggers as they change

Revision ID: 0014_longtail
Revises: 0013_wecom
Create Date: 2026-12-06 16:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = "0014_longtail"
down_revision = "0013_wecom"
branch_labels = None
depends_on = None

OPEN_CASES = sa.text("status IN ('open', 'accepted', 'on_site')")

#: PostgreSQL keeps /metrics' counts (`dispatch.metrics.totals`): each change to a case's state
#: or acceptance, or to a message's outcome, inserts its +1 and -1 into `tally_change` in the
#: same transaction. An acceptance is observed once, when it is recorded: a reopened case keeps
#: its earlier observation (the histogram's counters never go down), and a corrected time
#: replaces the observation it corrects.
TRIGGERS = r"""
CREATE FUNCTION linli_tally_case() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved boolean := TG_OP <> 'UPDATE' OR OLD.status IS DISTINCT FROM NEW.status
                     OR OLD.community_id IS DISTINCT FROM NEW.community_id;
BEGIN
    IF TG_OP <> 'INSERT' AND moved THEN
        INSERT INTO tally_change (metric, community_id, channel, status, seconds, n, total)
        VALUES ('cases', OLD.community_id, '', OLD.status, NULL, -1, 0);
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN NULL;
    END IF;
    IF moved THEN
        INSERT INTO tally_change (metric, community_id, channel, status, seconds, n, total)
        VALUES ('cases', NEW.community_id, '', NEW.status, NULL, 1, 0);
    END IF;
    IF NEW.accepted_at IS NOT NULL AND NEW.resolution IS DISTINCT FROM 'duplicate'
            AND (TG_OP = 'INSERT' OR OLD.accepted_at IS DISTINCT FROM NEW.accepted_at) THEN
        IF TG_OP = 'UPDATE' AND OLD.accepted_at IS NOT NULL THEN
            INSERT INTO tally_change (metric, community_id, channel, status, seconds, n, total)
            SELECT 'accept', 0, '', '', s, -1, -s
            FROM (SELECT date_part('epoch', OLD.accepted_at - OLD.reported_at) AS s) AS took;
        END IF;
        INSERT INTO tally_change (metric, community_id, channel, status, seconds, n, total)
        SELECT 'accept', 0, '', '', s, 1, s
        FROM (SELECT date_part('epoch', NEW.accepted_at - NEW.reported_at) AS s) AS took;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tally_case AFTER INSERT OR DELETE ON "case"
    FOR EACH ROW EXECUTE FUNCTION linli_tally_case();
CREATE TRIGGER tally_case_change AFTER UPDATE OF status, community_id, accepted_at ON "case"
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.community_id IS DISTINCT FROM NEW.community_id
                       OR OLD.accepted_at IS DISTINCT FROM NEW.accepted_at)
    EXECUTE FUNCTION linli_tally_case();

CREATE FUNCTION linli_tally_notification() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO tally_change (metric, community_id, channel, status, seconds, n, total)
        VALUES ('notifications', 0, OLD.channel, OLD.status, NULL, -1, 0);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO tally_change (metric, community_id, channel, status, seconds, n, total)
        VALUES ('notifications', 0, NEW.channel, NEW.status, NULL, 1, 0);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tally_notification AFTER INSERT OR DELETE ON notification
    FOR EACH ROW EXECUTE FUNCTION linli_tally_notification();
CREATE TRIGGER tally_notification_change AFTER UPDATE OF channel, status ON notification
    FOR EACH ROW WHEN (OLD.channel IS DISTINCT FROM NEW.channel
                       OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION linli_tally_notification();
"""

#: The counts of what exists already, as changes the first fold turns into tallies
#: (acceptances grouped by whole seconds rounded up, which keeps each in its bucket).
#: Kept the same as `dispatch.metrics.totals.REBUILD`.
FILL = r"""
INSERT INTO tally_change (metric, community_id, channel, status, seconds, n, total)
SELECT 'cases', community_id, '', status, NULL, count(*), 0
FROM "case" GROUP BY community_id, status
UNION ALL
SELECT 'accept', 0, '', '', ceil(s), count(*), sum(s)
FROM (SELECT date_part('epoch', accepted_at - reported_at) AS s FROM "case"
      WHERE accepted_at IS NOT NULL
        AND (resolution IS NULL OR resolution <> 'duplicate')) AS took
GROUP BY ceil(s)
UNION ALL
SELECT 'notifications', 0, channel, status, NULL, count(*), 0
FROM notification GROUP BY channel, status
"""


def upgrade():
    op.drop_index("ix_case_open", table_name="case")
    op.create_index("ix_case_open", "case",
                    ["community_id", "reported_at", "id", "status", "urgency", "place_id"],
                    postgresql_where=OPEN_CASES, sqlite_where=OPEN_CASES)
    merged = sa.text("merged_into_id IS NOT NULL")
    op.create_index("ix_case_merged_into", "case", ["merged_into_id"],
                    postgresql_where=merged, sqlite_where=merged)
    op.create_table(
        "tally",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tally")),
        sa.UniqueConstraint("metric", "community_id", "channel", "status", "bucket",
                            name=op.f("uq_tally_metric")),
    )
    op.create_table(
        "tally_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tally_change")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(TRIGGERS)
        op.execute(FILL)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute('DROP TRIGGER tally_case ON "case"')
        op.execute('DROP TRIGGER tally_case_change ON "case"')
        op.execute("DROP TRIGGER tally_notification ON notification")
        op.execute("DROP TRIGGER tally_notification_change ON notification")
        op.execute("DROP FUNCTION linli_tally_case()")
        op.execute("DROP FUNCTION linli_tally_notification()")
    op.drop_table("tally_change")
    op.drop_table("tally")
    op.drop_index("ix_case_merged_into", table_name="case")
    op.drop_index("ix_case_open", table_name="case")
    op.create_index("ix_case_open", "case", ["community_id", "reported_at", "id"],
                    postgresql_where=OPEN_CASES, sqlite_where=OPEN_CASES)
