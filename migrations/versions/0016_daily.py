"""figures kept per day: the district's yearly summary reads day counters and duration histograms kept by triggers instead of a million cases

Revision ID: 0016_daily
Revises: 0015_voice
Create Date: 2026-12-06 19:00:00.000000

On PostgreSQL the upgrade rewrites the case table (its answer, durations and deadline are
backfilled) and holds it meanwhile. Run `VACUUM ANALYZE "case"` after it: until the table is
vacuumed, the percentiles' index-only lookups may visit the heap.
"""
import math

import sqlalchemy as sa
from alembic import op

import dispatch.db

revision = "0016_daily"
down_revision = "0015_voice"
branch_labels = None
depends_on = None

#: Counters kept per (UTC day of the report, urgency), in the order of `linli_daily`'s output.
COUNTERS = ("open", "accepted", "due", "on_time", "site_due", "site_late", "callbacks_due",
            "answered", "solved", "partly", "not_solved", "satisfied", "closed",
            "ladder_building", "ladder_grid", "ladder_community", "ladder_referred",
            "on_site_n", "resolve_n")
#: Lower bounds (seconds) of the duration histograms' buckets: 0, then about 15 % apart up to
#: three years. Bucket i (width_bucket) holds [BOUNDS[i-1], BOUNDS[i]); 0 holds negatives.
BOUNDS = sorted({0, *(math.ceil(1.15 ** k) for k in range(133))})

#: The columns a case's part in the figures is read from (`linli_daily`).
FIGURE_INPUTS = ("status", "resolution", "urgency", "reported_at", "accepted_at", "on_site_at",
                 "resolved_at", "closed_at", "closed_rung", "policy", "answer_solved",
                 "answer_satisfaction")
CASE_CHANGE = """CREATE TRIGGER daily_case_change AFTER UPDATE ON "case"
    FOR EACH ROW WHEN ((%(old)s) IS DISTINCT FROM (%(new)s))
    EXECUTE FUNCTION linli_daily_case()""" % {
    "old": ", ".join(f"OLD.{c}::text" for c in FIGURE_INPUTS),
    "new": ", ".join(f"NEW.{c}::text" for c in FIGURE_INPUTS),
}

#: One case's part in the day counters, +1 (`k` = 1) or -1 (`k` = -1), as known at `moment`
#: (NULL: once every deadline has passed, as the kept counters count it). The definitions are
#: `dispatch.metrics.figures.tally`'s; duplicates count nowhere (no row).
FUNCTIONS = r"""
CREATE FUNCTION linli_daily_bounds() RETURNS float8[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{%(bounds)s}'::float8[] $$;

CREATE FUNCTION linli_daily(c "case", k integer, moment timestamptz)
RETURNS TABLE (day date, urgency varchar, n integer, %(counter_types)s,
               accept_b integer, on_site_b integer, resolve_b integer)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT (c.reported_at AT TIME ZONE 'UTC')::date, c.urgency::varchar, k,
    k * (c.status IN ('open', 'accepted', 'on_site'))::int,
    k * (c.accepted_at IS NOT NULL)::int,
    k * coalesce(c.accepted_at IS NOT NULL OR (t.lim IS NOT NULL
        AND (moment IS NULL OR date_part('epoch', moment - c.reported_at) >= t.lim)
        AND (c.closed_at IS NULL OR date_part('epoch', c.closed_at - c.reported_at) >= t.lim)),
        false)::int,
    k * coalesce(t.accept_s <= t.lim, false)::int,
    k * s.due::int,
    k * (s.due AND (t.arrive_s IS NULL OR t.arrive_s > t.slim))::int,
    k * (c.resolved_at IS NOT NULL OR c.closed_at IS NOT NULL
         OR c.answer_solved IS NOT NULL)::int,
    k * (c.answer_solved IS NOT NULL)::int,
    k * coalesce(c.answer_solved = 'yes', false)::int,
    k * coalesce(c.answer_solved = 'partly', false)::int,
    k * coalesce(c.answer_solved = 'no', false)::int,
    k * (c.answer_solved IS NOT NULL AND coalesce(c.answer_satisfaction >= 4, false))::int,
    k * l.closed::int,
    k * (l.closed AND NOT l.referred AND coalesce(c.closed_rung = 1, false))::int,
    k * (l.closed AND NOT l.referred AND coalesce(c.closed_rung = 2, false))::int,
    k * (l.closed AND NOT l.referred AND coalesce(c.closed_rung = 3, false))::int,
    k * l.referred::int,
    k * (c.on_site_at IS NOT NULL)::int,
    k * (c.resolved_at IS NOT NULL)::int,
    width_bucket(t.accept_s, linli_daily_bounds()),
    width_bucket(date_part('epoch', c.on_site_at - c.reported_at), linli_daily_bounds()),
    width_bucket(date_part('epoch', c.resolved_at - c.reported_at), linli_daily_bounds())
FROM (SELECT 60 * (c.policy ->> 'rung_minutes')::float8 AS lim,
             60 * (c.policy ->> 'on_site_minutes')::float8 AS slim,
             date_part('epoch', c.accepted_at - c.reported_at) AS accept_s,
             date_part('epoch', coalesce(c.on_site_at, c.resolved_at, c.closed_at)
                                - c.accepted_at) AS arrive_s) AS t,
     LATERAL (SELECT c.accepted_at IS NOT NULL AND t.slim IS NOT NULL AND (
                  t.arrive_s IS NOT NULL OR moment IS NULL
                  OR date_part('epoch', moment - c.accepted_at) >= t.slim) AS due) AS s,
     LATERAL (SELECT c.status = 'closed' AS closed,
                     c.status = 'closed' AND (coalesce(c.resolution = 'referred', false)
                                              OR coalesce(c.closed_rung >= 4, false))
                     AS referred) AS l
WHERE c.resolution IS DISTINCT FROM 'duplicate'
$$;

-- What the kept figures read off a case row besides its own columns: its durations (for the
-- percentiles' lookups), when its figures stop depending on the clock, and its latest
-- answered callback (kept on the row by the callback trigger below).
CREATE FUNCTION linli_daily_derive() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lim float8 := 60 * (NEW.policy ->> 'rung_minutes')::float8;
    slim float8 := 60 * (NEW.policy ->> 'on_site_minutes')::float8;
BEGIN
    NEW.accept_s := date_part('epoch', NEW.accepted_at - NEW.reported_at);
    NEW.on_site_s := date_part('epoch', NEW.on_site_at - NEW.reported_at);
    NEW.resolve_s := date_part('epoch', NEW.resolved_at - NEW.reported_at);
    NEW.settles_at := CASE
        WHEN NEW.accepted_at IS NULL THEN NEW.reported_at + lim * interval '1 second'
        WHEN coalesce(NEW.on_site_at, NEW.resolved_at, NEW.closed_at) IS NULL
            THEN NEW.accepted_at + slim * interval '1 second'
    END;
    RETURN NEW;
END $$;

CREATE FUNCTION linli_daily_case() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO daily_change (day, urgency, n, %(counters)s, accept_b, on_site_b, resolve_b)
        SELECT * FROM linli_daily(OLD, -1, NULL);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO daily_change (day, urgency, n, %(counters)s, accept_b, on_site_b, resolve_b)
        SELECT * FROM linli_daily(NEW, 1, NULL);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION linli_daily_answer() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target integer;
    got_solved varchar;
    got_satisfaction integer;
BEGIN
    FOR target IN SELECT DISTINCT t FROM unnest(ARRAY[
            CASE WHEN TG_OP <> 'INSERT' THEN OLD.case_id END,
            CASE WHEN TG_OP <> 'DELETE' THEN NEW.case_id END]) AS t WHERE t IS NOT NULL LOOP
        got_solved := NULL;
        got_satisfaction := NULL;
        SELECT solved, satisfaction INTO got_solved, got_satisfaction FROM callback
        WHERE case_id = target AND contacted IS NOT FALSE ORDER BY id DESC LIMIT 1;
        UPDATE "case" SET answer_solved = got_solved, answer_satisfaction = got_satisfaction
        WHERE id = target AND (answer_solved IS DISTINCT FROM got_solved
                               OR answer_satisfaction IS DISTINCT FROM got_satisfaction);
    END LOOP;
    RETURN NULL;
END $$;

-- Everything counted again from the tables: after this migration's backfill, or a bulk load
-- that bypassed the triggers (`dispatch.metrics.daily.rebuild`).
CREATE FUNCTION linli_daily_latest_solved(target integer) RETURNS varchar
LANGUAGE sql STABLE AS $$
SELECT solved FROM callback WHERE case_id = target AND contacted IS NOT FALSE
ORDER BY id DESC LIMIT 1 $$;

CREATE FUNCTION linli_daily_latest_satisfaction(target integer) RETURNS integer
LANGUAGE sql STABLE AS $$
SELECT satisfaction FROM callback WHERE case_id = target AND contacted IS NOT FALSE
ORDER BY id DESC LIMIT 1 $$;

CREATE FUNCTION linli_daily_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- The derived columns in one rewrite of the table (ALTER … USING) rather than an UPDATE
    -- of every row: the table and its indexes come out compact instead of twice their size,
    -- and no trigger fires. The trigger that reads the answer columns must go meanwhile.
    DROP TRIGGER daily_case_change ON "case";
    ALTER TABLE "case"
        ALTER COLUMN answer_solved TYPE varchar(24) USING linli_daily_latest_solved(id),
        ALTER COLUMN answer_satisfaction TYPE integer
            USING linli_daily_latest_satisfaction(id),
        ALTER COLUMN accept_s TYPE float8 USING date_part('epoch', accepted_at - reported_at),
        ALTER COLUMN on_site_s TYPE float8 USING date_part('epoch', on_site_at - reported_at),
        ALTER COLUMN resolve_s TYPE float8 USING date_part('epoch', resolved_at - reported_at),
        ALTER COLUMN settles_at TYPE timestamptz USING CASE
            WHEN accepted_at IS NULL
                THEN reported_at + 60 * (policy ->> 'rung_minutes')::float8 * interval '1 second'
            WHEN coalesce(on_site_at, resolved_at, closed_at) IS NULL
                THEN accepted_at
                     + 60 * (policy ->> 'on_site_minutes')::float8 * interval '1 second'
        END;
    %(case_change)s;
    DELETE FROM daily_change;
    DELETE FROM daily_figure;
    DELETE FROM daily_duration;
    CREATE TEMPORARY TABLE daily_rows ON COMMIT DROP AS
        SELECT d.* FROM "case" AS c CROSS JOIN LATERAL linli_daily(c, 1, NULL) AS d;
    INSERT INTO daily_figure (day, urgency, cases, %(counters)s)
    SELECT day, urgency, sum(n), %(sums)s FROM daily_rows GROUP BY day, urgency;
    INSERT INTO daily_duration (day, metric, bucket, n)
    SELECT r.day, m.metric, m.bucket, sum(r.n) FROM daily_rows AS r
    CROSS JOIN LATERAL (VALUES (1, r.accept_b), (2, r.on_site_b), (3, r.resolve_b))
        AS m (metric, bucket)
    WHERE m.bucket IS NOT NULL GROUP BY r.day, m.metric, m.bucket;
    DROP TABLE daily_rows;
END $$;
""" % {
    "bounds": ",".join(str(b) for b in BOUNDS),
    "counter_types": ", ".join(f"{c} integer" for c in COUNTERS),
    "counters": ", ".join(COUNTERS),
    "sums": ", ".join(f"sum({c})" for c in COUNTERS),
    "case_change": CASE_CHANGE,
}

TRIGGERS = """
CREATE TRIGGER daily_derive BEFORE INSERT OR UPDATE OF reported_at, accepted_at, on_site_at,
    resolved_at, closed_at, policy ON "case"
    FOR EACH ROW EXECUTE FUNCTION linli_daily_derive();
CREATE TRIGGER daily_case AFTER INSERT OR DELETE ON "case"
    FOR EACH ROW EXECUTE FUNCTION linli_daily_case();
%(case_change)s;
CREATE TRIGGER daily_answer AFTER INSERT OR DELETE OR UPDATE OF case_id, contacted, solved,
    satisfaction ON callback
    FOR EACH ROW EXECUTE FUNCTION linli_daily_answer();
""" % {"case_change": CASE_CHANGE}

NOT_DUPLICATE = "(resolution IS NULL OR resolution <> 'duplicate')"


def _counter_columns(prefix):
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in prefix + COUNTERS]


def upgrade():
    with op.batch_alter_table("case") as batch:
        batch.add_column(sa.Column("answer_solved", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("answer_satisfaction", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("accept_s", sa.Double(), nullable=True))
        batch.add_column(sa.Column("on_site_s", sa.Double(), nullable=True))
        batch.add_column(sa.Column("resolve_s", sa.Double(), nullable=True))
        batch.add_column(sa.Column("settles_at", dispatch.db.UTCDateTime(timezone=True),
                                   nullable=True))
    op.create_table(
        "daily_figure",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("urgency", sa.String(length=24), nullable=False),
        *_counter_columns(("cases",)),
        sa.PrimaryKeyConstraint("day", "urgency", name=op.f("pk_daily_figure")),
    )
    op.create_table(
        "daily_duration",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("metric", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "metric", "bucket", name=op.f("pk_daily_duration")),
    )
    op.create_table(
        "daily_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("urgency", sa.String(length=24), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in ("n",) + COUNTERS],
        sa.Column("accept_b", sa.Integer(), nullable=True),
        sa.Column("on_site_b", sa.Integer(), nullable=True),
        sa.Column("resolve_b", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_change")),
    )
    op.create_index("ix_daily_change_day", "daily_change", ["day"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTIONS)
        op.execute(TRIGGERS)
        op.execute("SELECT linli_daily_rebuild()")
    for name in ("accept_s", "on_site_s", "resolve_s"):
        where = sa.text(f"{name} IS NOT NULL AND {NOT_DUPLICATE}")
        op.create_index(f"ix_case_{name}", "case", [name, "reported_at"],
                        postgresql_where=where, sqlite_where=where)
    settling = sa.text("settles_at IS NOT NULL")
    op.create_index("ix_case_settles_at", "case", ["settles_at"],
                    postgresql_where=settling, sqlite_where=settling)


def downgrade():
    op.drop_index("ix_case_settles_at", table_name="case")
    for name in ("accept_s", "on_site_s", "resolve_s"):
        op.drop_index(f"ix_case_{name}", table_name="case")
    if op.get_bind().dialect.name == "postgresql":
        op.execute('DROP TRIGGER daily_derive ON "case"')
        op.execute('DROP TRIGGER daily_case ON "case"')
        op.execute('DROP TRIGGER daily_case_change ON "case"')
        op.execute("DROP TRIGGER daily_answer ON callback")
        for function in ("linli_daily_rebuild()", "linli_daily_latest_solved(integer)",
                         "linli_daily_latest_satisfaction(integer)",
                         "linli_daily_answer()", "linli_daily_case()",
                         "linli_daily_derive()", 'linli_daily("case", integer, timestamptz)',
                         "linli_daily_bounds()"):
            op.execute(f"DROP FUNCTION {function}")
    op.drop_index("ix_daily_change_day", table_name="daily_change")
    op.drop_table("daily_change")
    op.drop_table("daily_duration")
    op.drop_table("daily_figure")
    with op.batch_alter_table("case") as batch:
        for name in ("settles_at", "resolve_s", "on_site_s", "accept_s", "answer_satisfaction",
                     "answer_solved"):
            batch.drop_column(name)
