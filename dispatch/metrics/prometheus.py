"""`GET /metrics`: the service's state in the Prometheus text format (version 0.0.4).

Everything is read from the database, so any web process answers for the whole service:

- `linli_cases{community,status}`: cases by workflow state;
- `linli_case_time_to_accept_seconds`: a histogram of time to accept over every accepted case
  (cumulative, so `rate()` and `histogram_quantile()` work as usual; see `accept_histogram`);
- `linli_outbox_backlog{channel}`: messages pending or being sent;
- `linli_sweeper_lag_seconds{kind}`: how overdue the oldest due-but-unprocessed work is, for
  ladder steps (`step`) and outbox rows (`outbox`); 0 when nothing is overdue. A growing lag
  means neither the jobs nor the sweeper are running;
- `linli_notifications{channel,status}`: messages by channel and outcome.

Scrapes of a big database stay cheap: the whole-table counts by state and outcome are cached
per process for `CACHE_SECONDS`, the histogram adds only recent acceptances to sums it keeps,
and the backlog and lag are read fresh through their indexes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app

from dispatch import clock
from dispatch.db import db
from dispatch.metrics import ACCEPT_EDGES_MINUTES
from dispatch.models import (
    Case,
    CaseStatus,
    Community,
    Notification,
    NotificationStatus,
    Resolution,
)
from dispatch.outbox import SENDING_TIMEOUT

bp = Blueprint("prometheus", __name__)

CACHE_SECONDS = 30.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Sample = tuple[dict[str, str], float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample],
           suffix: Callable[[dict[str, str]], str] | None = None) -> list[str]:
    """One metric family in the text format: HELP, TYPE, then a line per sample."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        metric = suffix(labels) if suffix else name
        shown = {k: v for k, v in labels.items() if not k.startswith("_")}
        tags = ",".join(f'{k}="{_escape(v)}"' for k, v in shown.items())
        lines.append(f"{metric}{{{tags}}} {value:g}" if tags else f"{metric} {value:g}")
    return lines


def histogram_samples(buckets: list[int], total: float) -> list[Sample]:
    """Cumulative `_bucket` samples (seconds), then `_sum` and `_count`, from per-bucket counts."""
    samples: list[Sample] = []
    running = 0
    for edge, count in zip([*ACCEPT_EDGES_MINUTES, None], buckets, strict=True):
        running += count
        samples.append(({"le": "+Inf" if edge is None else f"{edge * 60}", "_s": "_bucket"},
                        running))
    samples.append(({"_s": "_sum"}, total))
    samples.append(({"_s": "_count"}, running))
    return samples


def _cached(key: str, compute: Callable[[], Any]) -> Any:
    """The value of `compute()`, kept for `CACHE_SECONDS` in this app's process."""
    cache: dict[str, tuple[float, Any]] = current_app.extensions.setdefault("linli.prometheus", {})
    hit = cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    value = compute()
    cache[key] = (time.monotonic(), value)
    return value


def cases_by_status() -> list[Sample]:
    rows = db.session.execute(
        sa.select(Community.code, Case.status, sa.func.count())
        .join(Community, Community.id == Case.community_id)
        .group_by(Community.code, Case.status)).all()
    found = {(code, str(status)): count for code, status, count in rows}
    communities = sorted({code for code, _ in found})
    return [({"community": code, "status": str(status)}, found.get((code, str(status)), 0))
            for code in communities for status in CaseStatus]


def accept_counts(since: datetime | None = None,
                  until: datetime | None = None) -> tuple[list[int], float]:
    """Per-bucket counts of time to accept, and their sum in seconds, for the cases accepted
    in [since, until) (open-ended where None)."""
    if db.session.get_bind().dialect.name == "postgresql":
        took = sa.type_coerce(sa.func.date_part("epoch", Case.accepted_at - Case.reported_at),
                              sa.Float)
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
    rows = db.session.execute(
        sa.select(Notification.channel, Notification.status, sa.func.count())
        .group_by(Notification.channel, Notification.status)).all()
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


def _aware(moment: datetime | None) -> datetime | None:
    """Aggregates bypass the column type on SQLite, so a bare min() may come back naive."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def exposition(now: datetime | None = None) -> str:
    """The whole /metrics page."""
    now = now or clock.now()
    buckets, total = accept_histogram(now)
    lines = [
        *family("linli_cases", "gauge", "Cases by community and workflow state.",
                _cached("cases", cases_by_status)),
        *family("linli_case_time_to_accept_seconds", "histogram",
                "Time from the first report to the first acceptance, over all accepted cases.",
                histogram_samples(buckets, total),
                suffix=lambda labels: "linli_case_time_to_accept_seconds" + labels["_s"]),
        *family("linli_outbox_backlog", "gauge", "Messages pending or being sent, by channel.",
                outbox_backlog()),
        *family("linli_sweeper_lag_seconds", "gauge",
                "Age of the oldest due-but-unprocessed ladder step or outbox row.",
                sweeper_lag(now)),
        *family("linli_notifications", "gauge", "Messages by channel and outcome.",
                _cached("notifications", notifications_by_outcome)),
    ]
    return "\n".join(lines) + "\n"


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus scrape endpoint."""
    return Response(exposition(), content_type=CONTENT_TYPE)
