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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dispatch import clock, jobs
from dispatch.community import settings
from dispatch.db import db
from dispatch.jobs import STEP_JOB as STEP_JOB  # re-exported: the ladder's job, queued on open
from dispatch.models import (
    Case,
    CaseEvent,
    CaseStatus,
    Photo,
    Place,
    Report,
    ReportKind,
    Resolution,
    Rung,
    Sticker,
)


class EventKind(enum.StrEnum):
    """The vocabulary of a case's timeline."""

    REPORTED = "reported"  # the first report opened the case
    JOINED = "joined"  # another report joined it (另有邻居也反映了)
    NOTIFIED = "notified"
    DELIVERED = "delivered"
    SEND_FAILED = "send_failed"
    RESENT = "resent"  # a send was interrupted and repeated: the recipient may get it twice
    RETRIED = "retried"  # a message that could not arrive went out again by another channel
    CONTACT_PROBLEM = "contact_problem"  # a number is invalid or opted out: staff must check
    CALLED = "called"  # a resident's phone call: who was rung, who answered
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


def step_job_id(case_id: int, token: int, *, at_once: bool = False) -> str:
    """The id a case's step job is queued under: one job per step, however often it is queued
    (the sweeper looks for it too, before queuing one of its own). `at_once` names the job
    that brings a step forward, which must not collide with the one already queued for later.
    """
    return f"step-{case_id}-{token}" + ("-now" if at_once else "")


def open_key(place: Place, category: str) -> str:
    return f"{place.id}:{category}"


def record(case: Case, kind: EventKind, message: str, *, at: datetime,
           member_id: int | None = None, staff_id: int | None = None, **data: object) -> CaseEvent:
    """Append a line to the case's timeline (in the caller's transaction), at the time of the
    decision it records."""
    event = CaseEvent(case=case, kind=str(kind), message=message, at=at,
                      member_id=member_id, staff_id=staff_id, data=data)
    db.session.add(event)
    return event


def file_report(place: Place, category: str, *, kind: ReportKind = ReportKind.MESSAGE,
                text: str | None = None, callback_phone: str | None = None,
                anonymous: bool = False, sticker: Sticker | None = None,
                client_hash: str | None = None, join: Case | None = None,
                photos: Sequence[Photo] = (), now: datetime | None = None) -> Filed:
    """Record a report, on `join` if it is still open, else on the open case of its kind.

    The report's photos are stored in the same transaction, so a report never lands without
    the photos the resident sent with it.

    Commits. Raises `ValueError` for a category the community does not have.
    """
    now = now or clock.now()
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
    report.photos.extend(photos)
    db.session.add(report)
    case.report_count += 1
    if opened:
        record(case, EventKind.REPORTED, f"居民反映：{found.name}", at=now, report_kind=str(kind))
    else:
        record(case, EventKind.JOINED, f"又有邻居反映（共 {case.report_count} 人次）", at=now,
               report_kind=str(kind))
    db.session.commit()
    if opened:
        jobs.enqueue(STEP_JOB, case.id, case.token, job_id=step_job_id(case.id, case.token))
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


def _locked_open(query: sa.Select[Case]) -> Case | None:
    """The case the query finds, row-locked, if it is still open."""
    case = db.session.scalar(query.with_for_update())
    return case if case is not None and case.is_open else None


def reopen(case: Case, reason: str, *, now: datetime | None = None) -> Case:
    """Put a resolved or closed case back on its ladder from the first rung ("not solved").

    Returns the case that now carries the problem. That is `case` itself, open again with a
    new fencing token so every stale job dies, due for its first step at once; or, when
    another case has meanwhile opened for the same place and category (the unique open key
    is taken), that case: the complaint is filed on it as a report and `case` is closed as
    not fixed, pointing at it. Commits; the step job is queued only after the commit.
    """
    now = now or clock.now()
    locked = db.session.scalar(sa.select(Case).where(Case.id == case.id).with_for_update()
                               .execution_options(populate_existing=True))
    if locked is None:
        raise LookupError("no such case")
    case = locked
    if case.is_open:
        return case
    try:
        with db.session.begin_nested():
            case.open_key = open_key(case.place, case.category)
            db.session.flush()
    except IntegrityError:
        return _join_open_case(case, reason, now)
    case.status = CaseStatus.OPEN
    case.resolution = None
    case.reopen_count += 1
    case.rung, case.step, case.token = Rung.BUILDING, 0, case.token + 1
    case.next_step_at = now
    # The earlier acceptance no longer holds: the ladder starts again from the building.
    case.accepted_by_id = case.accepted_rung = case.closed_rung = None
    case.accepted_at = case.on_site_at = case.resolved_at = case.closed_at = None
    case.stuck_at = None
    record(case, EventKind.REOPENED, f"重新派单：{reason}", at=now, reason=reason)
    db.session.commit()
    jobs.enqueue(STEP_JOB, case.id, case.token, job_id=step_job_id(case.id, case.token))
    return case


def _join_open_case(case: Case, reason: str, now: datetime) -> Case:
    """`reopen` when another case is open for the same problem: file the complaint there."""
    other = db.session.scalar(sa.select(Case).where(
        Case.open_key == open_key(case.place, case.category)))
    case.status = CaseStatus.CLOSED
    case.resolution = Resolution.NOT_FIXED
    case.closed_at = case.closed_at or now
    # Joins `other`; should it have closed meanwhile, file_report opens or joins as usual.
    filed = file_report(case.place, case.category, text=f"回访未解决：{reason}", join=other,
                        now=now)
    case.merged_into_id = filed.case.id
    number = filed.case.number
    record(case, EventKind.MERGED, f"回访未解决，并入正在处理的 {number}", at=now,
           into=filed.case.id, reason=reason, public=f"问题未解决，已并入正在处理的 {number}",
           public_en=f"Not solved: added to case {number}, which is being handled")
    db.session.commit()
    return filed.case
