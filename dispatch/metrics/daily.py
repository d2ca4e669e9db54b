"""The district's figures from counters kept per day, instead of a million cases at each ask.

The district's yearly summary computed per case reads every case of the year: ~4–7 s at
1,000,000 cases (docs/benchmarks.md). On PostgreSQL the database keeps, per UTC day of the
report and urgency, every counter of `Figures` and a histogram of each duration, and this
module adds up a period's days:

- **Kept as the tallies are** (`dispatch.metrics.totals`, migration `0016_daily`): triggers
  insert a case's part in the figures (its row of `linli_daily`, the one SQL statement of the
  definitions) as -1 for the old row and +1 for the new one into `daily_change`, in the
  transaction that changes the case, its callbacks (the latest answered one is kept on the case
  row by a trigger on `callback`) or its policy. A reopened case, a late acceptance, a callback
  answered months later move the counters when they commit; a rolled-back change never counts.
  `fold` turns the changes into `daily_figure` and `daily_duration` rows, and a reader's one
  statement sees both tables at one snapshot.
- **The clock, live.** The counters count each case as it stands once its deadlines have
  passed. The few cases whose figures still depend on the clock (nobody accepted and the
  accept deadline not yet passed, accepted and the on-site deadline not yet passed: the case's
  `settles_at` is after `now`) are counted again as at `now` and their kept part taken away.
- **Partial days, live.** A period need not start or end at a UTC midnight (a local month
  starts at 16:00 UTC): the cases of the partial days at either end are counted from their rows.
- **Exact percentiles.** The histograms say which bucket holds the wanted rank and how many
  values lie below it; the value itself is read from the cases in order along the duration's
  index (`ix_case_accept_s`…), skipping that many.

Everything is one statement, so the summary is one snapshot. Only the district-wide summary
(no community or other filter) comes from here; SQLite and narrower scopes count the cases.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from dispatch.db import db
from dispatch.metrics import totals
from dispatch.metrics.figures import LADDER, Figures, Spread, Tier

#: The counters of `daily_figure` (after `cases`), `daily_change` (after `n`) and
#: `linli_daily`'s output, in that order (migration 0016_daily).
COUNTERS = ("open", "accepted", "due", "on_time", "site_due", "site_late", "callbacks_due",
            "answered", "solved", "partly", "not_solved", "satisfied", "closed",
            "ladder_building", "ladder_grid", "ladder_community", "ladder_referred",
            "on_site_n", "resolve_n")
#: The durations' metric numbers in `daily_duration`, and their columns on `case`.
DURATIONS = {1: "accept_s", 2: "on_site_s", 3: "resolve_s"}
#: The percentiles a `Spread` holds.
QUANTILES = (0.5, 0.9)
#: The advisory lock one fold holds (an arbitrary number, the same in every process).
FOLD_LOCK = 720_016
#: How far before `now` a case's `settles_at` still counts it live: a margin for rounding
#: between the deadline as a timestamp and as seconds (a case counted live needlessly counts
#: the same).
MARGIN = timedelta(seconds=1)

_COLUMNS = ", ".join(COUNTERS)
_SUMS = ", ".join(f"sum({c}) AS {c}" for c in COUNTERS)
_NOT_DUPLICATE = "(c.resolution IS NULL OR c.resolution <> 'duplicate')"

_FOLD = f"""
WITH gone AS (DELETE FROM daily_change RETURNING *),
figures AS (
    INSERT INTO daily_figure (day, urgency, cases, {_COLUMNS})
    SELECT day, urgency, sum(n), {", ".join(f"sum({c})" for c in COUNTERS)}
    FROM gone GROUP BY day, urgency
    ON CONFLICT (day, urgency) DO UPDATE SET cases = daily_figure.cases + excluded.cases,
        {", ".join(f"{c} = daily_figure.{c} + excluded.{c}" for c in COUNTERS)}
    RETURNING 1),
durations AS (
    INSERT INTO daily_duration (day, metric, bucket, n)
    SELECT g.day, m.metric, m.bucket, sum(g.n) FROM gone AS g
    CROSS JOIN LATERAL (VALUES (1, g.accept_b), (2, g.on_site_b), (3, g.resolve_b))
        AS m (metric, bucket)
    WHERE m.bucket IS NOT NULL GROUP BY g.day, m.metric, m.bucket
    ON CONFLICT (day, metric, bucket) DO UPDATE SET n = daily_duration.n + excluded.n
    RETURNING 1)
SELECT (SELECT count(*) FROM figures) + (SELECT count(*) FROM durations)
"""


def _lookups() -> str:
    """The values at a wanted rank and the next, for each duration: along its index, from the
    first value of the bucket holding the rank, skipping the period's values before it."""
    parts = []
    for metric, column in DURATIONS.items():
        parts.append(f"""(SELECT c.{column} AS s FROM "case" AS c
            WHERE w.metric = {metric} AND c.{column} >= w.low
              AND c.reported_at >= :start AND c.reported_at < :end AND {_NOT_DUPLICATE}
            ORDER BY c.{column} OFFSET w.skip LIMIT 2)""")
    return "\nUNION ALL ".join(parts)


_SUMMARY = f"""
WITH edge AS MATERIALIZED (
    SELECT d.* FROM "case" AS c CROSS JOIN LATERAL linli_daily(c, 1, NULL) AS d
    WHERE (c.reported_at >= :edge1_start AND c.reported_at < :edge1_end)
       OR (c.reported_at >= :edge2_start AND c.reported_at < :edge2_end)),
pending AS MATERIALIZED (
    SELECT * FROM daily_change WHERE day >= :first_day AND day < :end_day),
counted AS (
    SELECT urgency, sum(cases) AS cases, {_SUMS} FROM (
        SELECT urgency, cases, {_COLUMNS} FROM daily_figure
        WHERE day >= :first_day AND day < :end_day
        UNION ALL SELECT urgency, n, {_COLUMNS} FROM pending
        UNION ALL SELECT urgency, n, {_COLUMNS} FROM edge
        UNION ALL SELECT d.urgency, d.n, {", ".join(f"d.{c}" for c in COUNTERS)}
        FROM "case" AS c CROSS JOIN LATERAL (
            SELECT * FROM linli_daily(c, 1, :now)
            UNION ALL SELECT * FROM linli_daily(c, -1, NULL)) AS d
        WHERE c.settles_at > :settled_before
          AND c.reported_at >= :start AND c.reported_at < :end) AS parts
    GROUP BY urgency),
spread AS (
    SELECT metric, bucket, sum(n)::bigint AS n FROM (
        SELECT metric, bucket, n FROM daily_duration WHERE day >= :first_day AND day < :end_day
        UNION ALL SELECT m.metric, m.bucket, x.n
        FROM (SELECT n, accept_b, on_site_b, resolve_b FROM pending
              UNION ALL SELECT n, accept_b, on_site_b, resolve_b FROM edge) AS x
        CROSS JOIN LATERAL (VALUES (1, x.accept_b), (2, x.on_site_b), (3, x.resolve_b))
            AS m (metric, bucket)
        WHERE m.bucket IS NOT NULL) AS parts
    GROUP BY metric, bucket HAVING sum(n) <> 0),
ranked AS (
    SELECT metric, bucket, n, (sum(n) OVER (PARTITION BY metric ORDER BY bucket))::bigint - n
               AS below,
           (sum(n) OVER (PARTITION BY metric))::bigint AS total
    FROM spread),
wanted AS (
    SELECT r.metric, r.share, r.total, r.rank - r.below AS skip,
           CASE WHEN r.bucket = 0 THEN '-Infinity'::float8
                ELSE (linli_daily_bounds())[r.bucket] END AS low
    FROM (SELECT ranked.*, q.share,
                 (q.numerator * (ranked.total - 1)) / q.denominator AS rank
          FROM ranked CROSS JOIN (VALUES {{quantiles}}) AS q (share, numerator, denominator))
        AS r
    WHERE r.rank >= r.below AND r.rank < r.below + r.n)
SELECT json_build_object(
    'counted', (SELECT json_agg(counted) FROM counted),
    'values', (SELECT json_agg(json_build_object(
                   'metric', w.metric, 'share', w.share, 'total', w.total, 'values', v.found))
               FROM wanted AS w CROSS JOIN LATERAL (
                   SELECT array_agg(s ORDER BY s) AS found FROM ({_lookups()}) AS l) AS v))
"""


def kept() -> bool:
    """Whether the database keeps the day figures (PostgreSQL, with the triggers)."""
    return db.session.get_bind().dialect.name == "postgresql"


def fold() -> int:
    """Fold the committed changes into the day figures and commit; returns how many rows
    changed (0 as well when another process is folding now)."""
    if not kept() or not totals.folding(FOLD_LOCK):
        return 0
    count = int(db.session.scalar(sa.text(_FOLD)) or 0)
    db.session.commit()
    return count


def rebuild() -> None:
    """Count everything again from the tables (after a bulk load that bypassed the triggers)."""
    db.session.execute(sa.text("SELECT linli_daily_rebuild()"))
    db.session.commit()


def _day_start(day: Any) -> datetime:
    return datetime.combine(day, time.min, UTC)


def summary(start: datetime, end: datetime, now: datetime) -> Figures:
    """Every figure of the district's cases reported in [start, end), as known at `now`."""
    first_day = (start.astimezone(UTC) - timedelta(microseconds=1)).date() + timedelta(days=1)
    end_day = end.astimezone(UTC).date()
    if first_day < end_day:  # whole days kept, and the partial days at each end counted live
        edges = (start, _day_start(first_day), _day_start(end_day), end)
    else:  # no whole day: every case counted live
        first_day = end_day = max(first_day, end_day)
        edges = (start, end, end, end)
    quantiles = []
    for share in QUANTILES:
        fraction = Fraction(share).limit_denominator(10_000)
        quantiles.append(f"({share!r}::float8, {fraction.numerator}, {fraction.denominator})")
    statement = _SUMMARY.replace("{quantiles}", ", ".join(quantiles))
    db.session.execute(sa.text("SET LOCAL jit = off"))
    found = db.session.scalar(sa.text(statement), {
        "start": start, "end": end, "now": now, "settled_before": now - MARGIN,
        "first_day": first_day, "end_day": end_day,
        "edge1_start": edges[0], "edge1_end": edges[1],
        "edge2_start": edges[2], "edge2_end": edges[3]})
    if isinstance(found, str):
        found = json.loads(found)
    return _figures(found["counted"] or [], found["values"] or [])


def _figures(counted: list[dict[str, Any]], values: list[dict[str, Any]]) -> Figures:
    figures = Figures()
    for row in counted:
        figures.cases += row["cases"]
        for name in ("open", "accepted", "due", "on_time", "callbacks_due", "answered",
                     "solved", "partly", "not_solved", "satisfied", "closed"):
            setattr(figures, name, getattr(figures, name) + row[name])
        for rung in LADDER[:-1]:
            figures.ladder[rung] += row[f"ladder_{rung}"]
        tier = figures.tiers.setdefault(row["urgency"], Tier())
        tier.due += row["due"]
        tier.on_time += row["on_time"]
        tier.on_site_due += row["site_due"]
        tier.on_site_late += row["site_late"]
    figures.ladder["unknown"] = figures.closed - sum(
        figures.ladder[rung] for rung in LADDER[:-1])
    counts = {1: figures.accepted, 2: sum(row["on_site_n"] for row in counted),
              3: sum(row["resolve_n"] for row in counted)}
    at: dict[tuple[int, float], float] = {}
    for row in values:
        at[row["metric"], row["share"]] = _interpolate(row["values"], row["total"],
                                                      row["share"])
    figures.accept, figures.on_site, figures.resolve = (
        Spread(counts[metric], *(at.get((metric, share)) for share in QUANTILES))
        for metric in DURATIONS)
    if figures.cases == 0:
        return Figures()
    return figures


def _interpolate(found: list[float], total: int, share: float) -> float:
    """`figures.percentile` from the values at its two ranks: the same arithmetic as
    `statistics.quantiles(method="inclusive")`, so the result is the same float."""
    if total == 1:
        return float(found[0])
    fraction = Fraction(share).limit_denominator(10_000)
    n = fraction.denominator
    _, delta = divmod(fraction.numerator * (total - 1), n)
    low, high = found[0], found[1]
    return (low * (n - delta) + high * delta) / n
