"""Whole-history counts for `/metrics`, kept as they change instead of counted at each scrape.

`/metrics` reports every case by community and state, a histogram of every acceptance's time
to accept, and every message by channel and outcome. Counted from the tables, the first
scrape of a process read the whole history (2 s at 1,000,000 cases, docs/benchmarks.md). On
PostgreSQL the counts are kept instead:

- **Exact at every snapshot.** Triggers (migration `0014_longtail`) write each change as a
  `TallyChange` row (+1 for the new state, -1 for the old one) inside the transaction that
  makes the change: a reopened case, a late acceptance or a message's receipt months later
  moves its counts when it commits, and a rolled-back change never counted. Rows written by
  any path count alike (the console, the workers, a repair by hand in `psql`).
- **No waiting on a counter.** The triggers only insert, so two transactions never queue on
  one counter row however many cases a storm opens at once.
- **Folded while small.** `fold` turns the changes into `Tally` rows (one per community and
  state, bucket or channel and outcome) in one transaction: it deletes the changes it sees and
  adds them to the tallies, so a reader, whose one statement sees both tables at one snapshot,
  counts each change exactly once, before or after the fold. The sweeper folds at each sweep
  and a scrape before it reads; one fold runs at a time (an advisory lock), others skip.

An acceptance is observed once, when it is recorded (`accepted_at` set): a case reopened
and accepted again is observed again and its first observation stays, so the histogram's
counters never go down, as Prometheus expects; a corrected acceptance time replaces the
observation it corrects. Cases closed as duplicates before acceptance are never observed.

The histogram buckets are `ACCEPT_EDGES_MINUTES`, applied when changes are folded: changing
the edges needs a migration that rebuilds the tallies (`REBUILD`). SQLite (the demo) has no
triggers: there `/metrics` counts the tables, which are small.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from dispatch.db import db
from dispatch.metrics.figures import ACCEPT_EDGES_MINUTES
from dispatch.models import Community, Tally, TallyChange

CASES, ACCEPT, NOTIFICATIONS = "cases", "accept", "notifications"
#: The advisory lock one fold holds (an arbitrary number, the same in every process).
FOLD_LOCK = 720_014

#: The counts of everything that exists, as changes (also in migration 0014_longtail):
#: acceptances grouped by whole seconds rounded up, which keeps each in its bucket.
REBUILD = """
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


def kept() -> bool:
    """Whether the database keeps the tallies (PostgreSQL, with the triggers)."""
    return db.session.get_bind().dialect.name == "postgresql"


def bucket(seconds: Any) -> sa.Case[Any]:
    """The histogram bucket of a time to accept in seconds (upper edges inclusive); -1 for
    rows that are not acceptances."""
    return sa.case((seconds.is_(None), -1),
                   *((seconds <= 60 * edge, i) for i, edge in enumerate(ACCEPT_EDGES_MINUTES)),
                   else_=len(ACCEPT_EDGES_MINUTES))


def folding(lock: int) -> bool:
    """Take the advisory lock of one kind of fold for this transaction; False (and the
    transaction ended) when another process is folding now: its fold takes these changes."""
    if db.session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(lock))):
        return True
    db.session.rollback()
    return False


def fold() -> int:
    """Fold the committed changes into the tallies and commit; returns how many tallies
    changed (0 as well when another process is folding now)."""
    if not kept() or not folding(FOLD_LOCK):
        return 0
    change = TallyChange.__table__
    gone = sa.delete(change).returning(
        change.c.metric, change.c.community_id, change.c.channel, change.c.status,
        change.c.seconds, change.c.n, change.c.total).cte("gone")
    key = bucket(gone.c.seconds)
    folded = (sa.select(gone.c.metric, gone.c.community_id, gone.c.channel, gone.c.status,
                        key, sa.func.sum(gone.c.n), sa.func.sum(gone.c.total))
              .group_by(gone.c.metric, gone.c.community_id, gone.c.channel, gone.c.status, key))
    added = pg_insert(Tally).from_select(
        ["metric", "community_id", "channel", "status", "bucket", "n", "total"], folded)
    upsert = added.on_conflict_do_update(
        constraint="uq_tally_metric",
        set_={"n": Tally.n + added.excluded.n, "total": Tally.total + added.excluded.total})
    count = len(db.session.execute(upsert.returning(Tally.id)).all())
    db.session.commit()
    return count


def rebuild() -> None:
    """Count everything again from the tables (after a bulk load that bypassed the triggers),
    then fold."""
    db.session.execute(sa.delete(TallyChange))
    db.session.execute(sa.delete(Tally))
    db.session.execute(sa.text(REBUILD))
    db.session.commit()
    fold()


def _both(*columns: str, metric: str) -> sa.Subquery:
    """The tallies and the changes not yet folded, as one set of rows."""
    folded = sa.select(*(Tally.__table__.c[c] for c in columns), Tally.n,
                       Tally.total).where(Tally.metric == metric)
    change = TallyChange.__table__
    pending = sa.select(*((bucket(change.c.seconds).label("bucket") if c == "bucket"
                           else change.c[c]) for c in columns), change.c.n,
                        change.c.total).where(change.c.metric == metric)
    return sa.union_all(folded, pending).subquery("counted")


def cases_by_status() -> list[tuple[str, str, int]]:
    """(community code, state, count) of every case."""
    rows = _both("community_id", "status", metric=CASES)
    total = sa.func.sum(rows.c.n)
    return [(code, status, int(count)) for code, status, count in db.session.execute(
        sa.select(Community.code, rows.c.status, total)
        .join(Community, Community.id == rows.c.community_id)
        .group_by(Community.code, rows.c.status).having(total != 0))]


def accept_counts() -> tuple[list[int], float]:
    """Acceptances per time-to-accept bucket, and their time to accept summed in seconds."""
    rows = _both("bucket", metric=ACCEPT)
    counts = [0] * (len(ACCEPT_EDGES_MINUTES) + 1)
    total = 0.0
    for index, count, seconds in db.session.execute(
            sa.select(rows.c.bucket, sa.func.sum(rows.c.n), sa.func.sum(rows.c.total))
            .group_by(rows.c.bucket)):
        counts[index] = int(count)
        total += float(seconds or 0)
    return counts, total


def notifications_by_outcome() -> list[tuple[str, str, int]]:
    """(channel, state, count) of every message."""
    rows = _both("channel", "status", metric=NOTIFICATIONS)
    total = sa.func.sum(rows.c.n)
    return [(channel, status, int(count)) for channel, status, count in db.session.execute(
        sa.select(rows.c.channel, rows.c.status, total)
        .group_by(rows.c.channel, rows.c.status).having(total != 0))]
