"""Cases and reports: every resident report is kept, and joins the open case it belongs to.

One open case per (place, category): `Case.open_key` carries a unique index while the case is
open, so when two residents report the same broken lift in the same second, one insert wins
and the other joins its case. A new case is due for its first ladder step at once
(`next_step_at = now`); the escalation job is only queued after commit, and the sweeper
finds the case even if that job is lost.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dispatch import jobs
from dispatch.community import settings
from dispatch.db import db, utcnow
from dispatch.models import Case, CaseEvent, Place, Report, ReportKind, Sticker

#: The job that moves a case along its ladder (see `dispatch.escalation`).
STEP_JOB = "dispatch.escalation.run_step"


class EventKind(enum.StrEnum):
    """The vocabulary of a case's timeline."""

    REPORTED = "reported"  # the first report opened the case
    JOINED = "joined"  # another report joined it (另有邻居也反映了)
    NOTIFIED = "notified"
    DELIVERED = "delivered"
    SEND_FAILED = "send_failed"
    SKIPPED = "skipped"  # nobody reachable at a rung, or a member without a working contact
    ESCALATED = "escalated"
    ACCEPTED = "accepted"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    HANDED_OVER = "handed_over"
    REMINDED = "reminded"
    STUCK = "stuck"
    REFERRED = "referred"
    CALLBACK = "callback"
    REOPENED = "reopened"
    CLOSED = "closed"
    NOTE = "note"
    MERGED = "merged"


@dataclass(frozen=True, slots=True)
class Filed:
    """What filing a report did: the case it landed on, the report, and whether it was new."""

    case: Case
    report: Report
    opened: bool


def open_key(place: Place, category: str) -> str:
    return f"{place.id}:{category}"


def record(case: Case, kind: EventKind, message: str, *, at: datetime | None = None,
           member_id: int | None = None, staff_id: int | None = None, **data: object) -> CaseEvent:
    """Append a line to the case's timeline (in the caller's transaction)."""
    event = CaseEvent(case=case, kind=str(kind), message=message, at=at or utcnow(),
                      member_id=member_id, staff_id=staff_id, data=data)
    db.session.add(event)
    return event


def file_report(place: Place, category: str, *, kind: ReportKind = ReportKind.MESSAGE,
                text: str | None = None, callback_phone: str | None = None,
                anonymous: bool = False, sticker: Sticker | None = None,
                client_hash: str | None = None, join: Case | None = None,
                now: datetime | None = None) -> Filed:
    """Record a report, on `join` if it is still open, else on the open case of its kind.

    Commits. Raises `ValueError` for a category the community does not have.
    """
    now = now or utcnow()
    community = place.community
    found = settings.category(community, category)
    if found is None:
        raise ValueError(f"unknown category {category!r}")
    case, opened = None, False
    if join is not None:
        case = _locked_open(sa.select(Case).where(Case.id == join.id))
    for _ in range(3):
        if case is not None:
            break
        case = _try_open(place, found, now)
        opened = case is not None
        if case is None:  # someone else holds the key: join their case
            case = _locked_open(sa.select(Case).where(Case.open_key == open_key(place, category)))
    if case is None:
        raise RuntimeError(f"could not open or join a case for {place.code}/{category}")
    report = Report(case=case, place_id=place.id, sticker_id=sticker.id if sticker else None,
                    kind=kind, category=category, text=text, callback_phone=callback_phone,
                    anonymous=anonymous, client_hash=client_hash, created_at=now)
    db.session.add(report)
    case.report_count += 1
    if opened:
        record(case, EventKind.REPORTED, f"居民反映：{found.name}", at=now, report_kind=str(kind))
    else:
        record(case, EventKind.JOINED, f"又有邻居反映（共 {case.report_count} 人次）", at=now,
               report_kind=str(kind))
    db.session.commit()
    if opened:
        jobs.enqueue(STEP_JOB, case.id, case.token, job_id=f"step-{case.id}-{case.token}")
    return Filed(case, report, opened)


def _try_open(place: Place, category: settings.Category, now: datetime) -> Case | None:
    """Insert a new open case, or return None if one is already open for the same key."""
    community = place.community
    policy = settings.policy(community, category.urgency)
    policy["version"] = hashlib.sha256(
        json.dumps(community.settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    case = Case(community_id=community.id, place_id=place.id, category=category.code,
                urgency=category.urgency, open_key=open_key(place, category.code),
                policy=policy, reported_at=now, next_step_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(case)
    except IntegrityError:
        return None
    return case


def _locked_open(query: sa.Select[tuple[Case]]) -> Case | None:
    """The case the query finds, row-locked, if it is still open."""
    case = db.session.scalar(query.with_for_update())
    return case if case is not None and case.is_open else None
