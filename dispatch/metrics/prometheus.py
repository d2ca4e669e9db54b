"""`GET /metrics`: the service's state for Prometheus, written by `prometheus_client`.

Everything is read from the database at scrape time, so any web process answers for the whole
service: `ServiceState` is a custom collector built for each scrape (no global metric objects,
nothing to share between processes), and `prometheus_client` writes the format the scraper
asks for (the text format 0.0.4 by default, OpenMetrics on request).

- `linli_cases{community,status}`: cases by workflow state;
- `linli_case_time_to_accept_seconds`: a histogram of time to accept over every accepted case
  (cumulative, so `rate()` and `histogram_quantile()` work as usual; see `accept_histogram`);
- `linli_outbox_backlog{channel}`: messages pending or being sent;
- `linli_sweeper_lag_seconds{kind}`: how overdue the oldest due-but-unprocessed work is, for
  ladder steps (`step`) and outbox rows (`outbox`); 0 when nothing is overdue. A growing lag
  means neither the jobs nor the sweeper are running;
- `linli_notifications{channel,status}`: messages by channel and outcome.

Scrapes of a big database stay cheap, the first of a process as much as any other. On
PostgreSQL the whole-history counts (cases by state, the histogram, messages by outcome) are
kept by the database as they change (`dispatch.metrics.totals`): a scrape folds the latest
changes and reads a few hundred rows, exact at its snapshot, and every process answers alike.
On SQLite (the demo) they are counted from the tables: the counts by state and outcome are
cached per process for `CACHE_SECONDS`, and the histogram adds only recent acceptances to sums
it keeps. The backlog and lag are read fresh through their indexes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cachetools import TTLCache
from flask import Blueprint, Response, current_app, request
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric

from dispatch import clock
from dispatch.db import db
from dispatch.metrics import ACCEPT_EDGES_MINUTES, totals
from dispatch.models import (
    Case,
    CaseStatus,
    Community,
    Notification,
    NotificationStatus,
    Resolution,
)
from dispatch.outbox.delivery import SENDING_TIMEOUT

bp = Blueprint("prometheus", __name__)

CACHE_SECONDS = 30.0
Sample = tuple[dict[str, str], float]


class _Cache:
    """One app's cached counts in this process; its threads share it (TTLCache is not
    thread-safe on its own)."""

    def __init__(self) -> None:
        self.values: TTLCache[str, Any] = TTLCache(maxsize=8, ttl=CACHE_SECONDS)
        self.lock = threading.Lock()


def _cached(key: str, compute: Callable[[], Any]) -> Any:
    """The value of `compute()`, kept for `CACHE_SECONDS` in this app's process."""
    cache: _Cache = current_app.extensions.setdefault("linli.prometheus", _Cache())
    with cache.lock:
        if key in cache.values:
            return cache.values[key]
    value = compute()  # outside the lock: a slow count must not hold up the other keys
    with cache.lock:
        cache.values[key] = value
    return value


def cases_by_status() -> list[Sample]:
    """Cases by community and state, counted from the table (SQLite)."""
    return by_community(db.session.execute(
        sa.select(Community.code, Case.status, sa.func.count())
        .join(Community, Community.id == Case.community_id)
        .group_by(Community.code, Case.status)).all())


def by_community(rows: Iterable[Any]) -> list[Sample]:
    """Samples of (community code, state, count) rows, every state of each community listed."""
    found = {(code, str(status)): count for code, status, count in rows}
    communities = sorted({code for code, _ in found})
    return [({"community": code, "status": str(status)}, found.get((code, str(status)), 0))
            for code in communities for status in CaseStatus]


def accept_counts(since: datetime | None = None,
                  until: datetime | None = None) -> tuple[list[int], float]:
    """Per-bucket counts of time to accept, and their sum in seconds, for the cases accepted
    in [since, until) (open-ended where None)."""
    if db.session.get_bind().dialect.name == "postgresql":
        took: sa.ColumnElement[Any] = sa.type_coerce(
            sa.func.date_part("epoch", Case.accepted_at - Case.reported_at), sa.Float)
    else:  # julianday() carries float noise: 300 s comes back as 300.00000x unrounded
        took = sa.func.round((sa.func.julianday(Case.accepted_at)
                              - sa.func.julianday(Case.reported_at)) * 86400, 3)
    bucket = sa.case(*((took <= 60 * edge, i) for i, edge in enumerate(ACCEPT_EDGES_MINUTES)),
                     else_=len(ACCEPT_EDGES_MINUTES))
    query = (sa.select(bucket, sa.func.count(), sa.func.sum(took))
             .where(Case.accepted_at.is_not(None),
                    sa.or_(Case.resolution.is_(None), Case.resolution != Resolution.DUPLICATE))
             .group_by(bucket))
    if since is not None:
        query = query.where(Case.accepted_at >= since)
    if until is not None:
        query = query.where(Case.accepted_at < until)
    counts = [0] * (len(ACCEPT_EDGES_MINUTES) + 1)
    total = 0.0
    for index, count, seconds in db.session.execute(query):
        counts[index] = count
        total += float(seconds or 0)
    return counts, total


#: Acceptances older than this are settled (their transactions committed long ago): each
#: process counts them once and keeps the sums, so a scrape reads only the recent rows.
SETTLED = timedelta(minutes=10)
_settling = threading.Lock()


def accept_histogram(now: datetime) -> tuple[list[int], float]:
    """Counts and sum of time to accept over every accepted case, cumulative for Prometheus.

    A case reopened after acceptance stays counted, which keeps the counters monotonic.
    """
    settled = now - SETTLED
    with _settling:
        kept = current_app.extensions.setdefault(
            "linli.prometheus.accept",
            {"upto": None, "counts": [0] * (len(ACCEPT_EDGES_MINUTES) + 1), "total": 0.0})
        if kept["upto"] is None or kept["upto"] < settled:
            counts, total = accept_counts(kept["upto"], settled)
            kept["counts"] = [a + b for a, b in zip(kept["counts"], counts, strict=True)]
            kept["total"] += total
            kept["upto"] = settled
        counts, total = accept_counts(kept["upto"], None)
        return ([a + b for a, b in zip(kept["counts"], counts, strict=True)],
                kept["total"] + total)


def notifications_by_outcome() -> list[Sample]:
    """Messages by channel and outcome, counted from the table (SQLite)."""
    return by_channel(db.session.execute(
        sa.select(Notification.channel, Notification.status, sa.func.count())
        .group_by(Notification.channel, Notification.status)).all())


def by_channel(rows: Iterable[Any]) -> list[Sample]:
    """Samples of (channel, outcome, count) rows, in a stable order."""
    return [({"channel": str(channel), "status": str(status)}, count)
            for channel, status, count in sorted(rows, key=lambda r: (str(r[0]), str(r[1])))]


def outbox_backlog() -> list[Sample]:
    rows = db.session.execute(
        sa.select(Notification.channel, sa.func.count())
        .where(Notification.status.in_((NotificationStatus.PENDING, NotificationStatus.SENDING)))
        .group_by(Notification.channel)).all()
    return [({"channel": str(channel)}, count) for channel, count in sorted(rows)]


def sweeper_lag(now: datetime) -> list[Sample]:
    """Seconds the oldest overdue step and outbox row have been waiting (0: none)."""
    step = db.session.scalar(sa.select(sa.func.min(Case.next_step_at))
                             .where(Case.next_step_at <= now))
    due = sa.func.coalesce(Notification.next_attempt_at, Notification.created_at)
    pending = db.session.scalar(sa.select(sa.func.min(due)).where(
        Notification.status == NotificationStatus.PENDING, due <= now))
    stuck = db.session.scalar(sa.select(sa.func.min(Notification.updated_at)).where(
        Notification.status == NotificationStatus.SENDING,
        Notification.updated_at <= now - SENDING_TIMEOUT))
    outbox = min((t for t in (pending, stuck and stuck + SENDING_TIMEOUT) if t), default=None)
    return [({"kind": kind}, max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
            for kind, oldest in (("step", _aware(step)), ("outbox", _aware(outbox)))]


def _aware(moment: datetime | str | None) -> datetime | None:
    """Aggregates bypass the column type on SQLite, so a bare min() may come back naive."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def gauge(name: str, help_text: str, labels: Sequence[str],
          samples: list[Sample]) -> GaugeMetricFamily:
    """One gauge family from (labels, value) samples."""
    family = GaugeMetricFamily(name, help_text, labels=labels)
    for values, value in samples:
        family.add_metric([values[label] for label in labels], value)
    return family


def histogram(name: str, help_text: str, buckets: list[int],
              total: float) -> HistogramMetricFamily:
    """A histogram family from per-bucket counts (made cumulative here) and their sum."""
    edges = [f"{edge * 60}" for edge in ACCEPT_EDGES_MINUTES] + ["+Inf"]
    running = 0
    cumulative: list[tuple[str, float]] = []
    for edge, count in zip(edges, buckets, strict=True):
        running += count
        cumulative.append((edge, running))
    return HistogramMetricFamily(name, help_text, buckets=cumulative, sum_value=total)


class ServiceState:
    """A `prometheus_client` collector for one scrape, read from the database at `now`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def collect(self) -> Iterator[Metric]:
        if totals.kept():
            totals.fold()
            buckets, total = totals.accept_counts()
            cases = by_community(totals.cases_by_status())
            outcomes = by_channel(totals.notifications_by_outcome())
        else:
            buckets, total = accept_histogram(self.now)
            cases = _cached("cases", cases_by_status)
            outcomes = _cached("notifications", notifications_by_outcome)
        yield gauge("linli_cases", "Cases by community and workflow state.",
                    ("community", "status"), cases)
        yield histogram("linli_case_time_to_accept_seconds",
                        "Time from the first report to the first acceptance, over all accepted "
                        "cases.", buckets, total)
        yield gauge("linli_outbox_backlog", "Messages pending or being sent, by channel.",
                    ("channel",), outbox_backlog())
        yield gauge("linli_sweeper_lag_seconds",
                    "Age of the oldest due-but-unprocessed ladder step or outbox row.",
                    ("kind",), sweeper_lag(self.now))
        yield gauge("linli_notifications", "Messages by channel and outcome.",
                    ("channel", "status"), outcomes)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus scrape endpoint, in the format the scraper's Accept header asks for."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(ServiceState(clock.now())), content_type=content_type)
