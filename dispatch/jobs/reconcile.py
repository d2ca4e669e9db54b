"""Reconciliation: list every case and message that was lost or went out twice.

The fault drills end with it, and operators run it after an outage (`flask --app app
reconcile`). An empty list means everything is accounted for:

- **lost case**: open, no step due, and not marked stuck: nothing would ever move it again;
- **overdue step**: a step due longer ago than `slack`: the job and the sweeper both missed it;
- **report count**: a case whose `report_count` disagrees with its reports;
- **duplicate step**: one rung asked twice at the same step (two NOTIFIED events);
- **duplicate message**: two alerts (or stuck alerts) for the same rung, step and member;
- **lost message**: pending and due longer ago than `slack`, or "sending" past
  `outbox.SENDING_TIMEOUT` + `slack`: nothing would ever send it.

The documented at-least-once duplicate — a send interrupted after the provider took it, sent
again (a RESENT event on the timeline) — is listed as a **note**, not a problem.

"Twice" is counted within one episode of a case: reopening or accepting a case starts the
ladder again, so the same rung may legitimately be asked once per episode.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import with_appcontext

from dispatch import clock
from dispatch.case.timeline import EventKind
from dispatch.db import db
from dispatch.models import OPEN_STATUSES, Case, CaseEvent, Notification, NotificationStatus, Report
from dispatch.outbox import Purpose
from dispatch.outbox.delivery import SENDING_TIMEOUT

#: Events after which a case climbs its ladder afresh.
NEW_EPISODE = (EventKind.REOPENED, EventKind.ACCEPTED)
#: How late due work may be before it counts as lost (the sweeper's interval plus its grace).
SLACK = timedelta(seconds=30)
_TOKEN = re.compile(r":t\d+(?=:)")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing lost or duplicated (`problem`), or a documented possible duplicate (a note)."""

    kind: str
    case_id: int | None
    notification_id: int | None
    detail: str
    problem: bool = True

    def __str__(self) -> str:
        where = " ".join(f"{name}={value}" for name, value in (
            ("case", self.case_id), ("notification", self.notification_id)) if value)
        return f"{'PROBLEM' if self.problem else 'note'} {self.kind} {where}: {self.detail}"


def reconcile(now: datetime | None = None, *, since: datetime | None = None,
              slack: timedelta = SLACK) -> list[Finding]:
    """Everything lost or duplicated among cases reported (and messages written) since `since`."""
    now = now or clock.now()
    since = since or datetime.min.replace(tzinfo=now.tzinfo)
    case_ids = sa.select(Case.id).where(Case.reported_at >= since).scalar_subquery()
    findings = [*_cases(now, since, slack), *_report_counts(case_ids),
                *_duplicates(case_ids), *_messages(now, since, slack), *_resent(case_ids)]
    db.session.rollback()
    return findings


def problems(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.problem]


def _cases(now: datetime, since: datetime, slack: timedelta) -> list[Finding]:
    found = []
    rows = db.session.execute(
        sa.select(Case.id, Case.status, Case.next_step_at, Case.stuck_at)
        .where(Case.reported_at >= since, Case.status.in_(OPEN_STATUSES),
               sa.or_(Case.next_step_at.is_(None), Case.next_step_at < now - slack)))
    for case_id, status, due, stuck in rows:
        if due is None and status == "open" and stuck is None:
            found.append(Finding("lost case", case_id, None, "open, nothing due, not stuck"))
        elif due is not None:
            late = (now - due).total_seconds()
            found.append(Finding("overdue step", case_id, None,
                                 f"{status}, step {late:.0f} s late"))
    return found


def _report_counts(case_ids: sa.ScalarSelect[int]) -> list[Finding]:
    counted = (sa.select(Report.case_id, sa.func.count(Report.id).label("n"))
               .where(Report.case_id.in_(case_ids)).group_by(Report.case_id).subquery())
    rows = db.session.execute(
        sa.select(Case.id, Case.report_count, sa.func.coalesce(counted.c.n, 0))
        .outerjoin(counted, counted.c.case_id == Case.id)
        .where(Case.id.in_(case_ids), Case.report_count != sa.func.coalesce(counted.c.n, 0)))
    return [Finding("report count", case_id, None, f"says {said}, has {has} reports")
            for case_id, said, has in rows]


def _episodes(case_ids: sa.ScalarSelect[int]) -> dict[int, list[tuple[int, datetime]]]:
    """Per case, the events (id, time) that start a new episode (reopened, accepted)."""
    starts: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    for case_id, event_id, at in db.session.execute(
            sa.select(CaseEvent.case_id, CaseEvent.id, CaseEvent.at)
            .where(CaseEvent.case_id.in_(case_ids),
                   CaseEvent.kind.in_([str(k) for k in NEW_EPISODE]))
            .order_by(CaseEvent.id)):
        starts[case_id].append((event_id, at))
    return starts


def _episode(starts: dict[int, list[tuple[int, datetime]]], case_id: int,
             event_id: int | None = None, at: datetime | None = None) -> int:
    """How many episodes began before the event `event_id` (or before the time `at`)."""
    if event_id is not None:
        return sum(1 for start_id, _ in starts.get(case_id, ()) if start_id < event_id)
    assert at is not None, "give event_id or at"
    return sum(1 for _, start_at in starts.get(case_id, ()) if start_at <= at)


def _duplicates(case_ids: sa.ScalarSelect[int]) -> list[Finding]:
    starts = _episodes(case_ids)
    found = []
    steps: Counter[tuple[int, int, object, object]] = Counter()
    # Which episode an alert belongs to: the one of the NOTIFIED event that lists it.
    episode_of: dict[int, int] = {}
    for event_id, case_id, data in db.session.execute(
            sa.select(CaseEvent.id, CaseEvent.case_id, CaseEvent.data)
            .where(CaseEvent.case_id.in_(case_ids), CaseEvent.kind == str(EventKind.NOTIFIED))):
        episode = _episode(starts, case_id, event_id=event_id)
        steps[(case_id, episode, data.get("rung"), data.get("step"))] += 1
        for notification_id in data.get("notifications") or ():
            episode_of[notification_id] = episode
    for (case_id, episode, rung, step), count in steps.items():
        if count > 1:
            found.append(Finding("duplicate step", case_id, None,
                                 f"rung {rung} step {step} notified {count} times "
                                 f"(episode {episode})"))
    keys: dict[tuple[int, str], list[int]] = defaultdict(list)
    for notification_id, case_id, key, created in db.session.execute(
            sa.select(Notification.id, Notification.case_id, Notification.dedupe_key,
                      Notification.created_at)
            .where(Notification.case_id.in_(case_ids),
                   Notification.purpose.in_([Purpose.ALERT, Purpose.STUCK]))):
        assert case_id is not None  # the WHERE asks for these cases
        listed = episode_of.get(notification_id)
        episode = _episode(starts, case_id, at=created) if listed is None else listed
        keys[(case_id, f"{episode}|{_TOKEN.sub('', key)}")].append(notification_id)
    for (case_id, key), ids in keys.items():
        if len(ids) > 1:
            found.append(Finding("duplicate message", case_id, ids[1],
                                 f"{key.split('|', 1)[1]} written {len(ids)} times: {ids}"))
    return found


def _messages(now: datetime, since: datetime, slack: timedelta) -> list[Finding]:
    due = sa.func.coalesce(Notification.next_attempt_at, Notification.created_at)
    rows = db.session.execute(
        sa.select(Notification.id, Notification.case_id, Notification.status, due,
                  Notification.updated_at)
        .where(Notification.created_at >= since, sa.or_(
            sa.and_(Notification.status == NotificationStatus.PENDING, due < now - slack),
            sa.and_(Notification.status == NotificationStatus.SENDING,
                    Notification.updated_at < now - SENDING_TIMEOUT - slack))))
    found = []
    for notification_id, case_id, status, due_at, updated in rows:
        if status == NotificationStatus.PENDING:
            late = (now - due_at).total_seconds()
            found.append(Finding("lost message", case_id, notification_id,
                                 f"pending, due {late:.0f} s ago"))
        else:
            assert updated is not None  # the WHERE compared it
            found.append(Finding("lost message", case_id, notification_id,
                                 f"sending since {updated.isoformat()}"))
    return found


def _resent(case_ids: sa.ScalarSelect[int]) -> list[Finding]:
    rows = db.session.execute(
        sa.select(CaseEvent.case_id, CaseEvent.data)
        .where(CaseEvent.case_id.in_(case_ids), CaseEvent.kind == str(EventKind.RESENT)))
    return [Finding("resent", case_id, data.get("notification"),
                    "interrupted mid-send and sent again: the recipient may have it twice "
                    "(documented at-least-once)", problem=False)
            for case_id, data in rows]


@click.command("reconcile")
@click.option("--hours", type=float, default=None,
              help="Only cases reported and messages written in the last HOURS (default: all).")
@click.option("--slack", type=float, default=SLACK.total_seconds(), show_default=True,
              help="Seconds due work may be late before it counts as lost.")
@with_appcontext
def reconcile_command(hours: float | None, slack: float) -> None:
    """List cases and messages lost or duplicated; exits 1 when there is a problem."""
    now = clock.now()
    since = now - timedelta(hours=hours) if hours is not None else None
    findings = reconcile(now, since=since, slack=timedelta(seconds=slack))
    for finding in findings:
        click.echo(str(finding))
    bad = problems(findings)
    click.echo(f"{len(bad)} problem(s), {len(findings) - len(bad)} note(s).")
    if bad:
        raise SystemExit(1)


def init_app(app: Flask) -> None:
    app.cli.add_command(reconcile_command)
