"""The one state machine of a case: every change of its status and milestones happens here.

    open ─accept→ accepted ─on site→ on_site ─resolve→ resolved ─回访 yes/partly→ closed
      ↑  ←─ not on site in time, escalate ─┘                        └─回访 no→ open (reopened)
    staff: close, merge (closed as duplicate), assign (指派/改派), reclassify, refer up, note

The ladder (`dispatch.ladder.step`) moves a case from rung to rung; this module decides when it
may (`advance`, the step job `run_step`), and owns everything around it: status, resolution,
the milestones (`accepted_at`, `on_site_at`, `resolved_at`, `closed_at`, `closed_rung`,
`stuck_at`, `referred_at`, `first_notified_at`, …), the fencing token and which queued
messages have gone stale. `tests/dispatch/case/test_one_owner.py` fails on a write elsewhere.

Every action locks the case row and bumps `token`, so a stale or duplicated step job finds a
token that no longer matches and does nothing. Outbox rows and timeline lines are written in
the deciding transaction; the jobs they need are queued only after it commits.

Members act by signed links, SMS replies, voice key presses and WeCom buttons; staff from the
console; residents answer the 回访. They all call the functions below. Member and step actions
commit; staff actions other than `reassign` and `refer_up` leave the commit to the caller, who
adds its audit entry to the same transaction.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from dispatch import changes, clock, jobs, outbox, security, words
from dispatch.case.timeline import EventKind, record
from dispatch.community import settings
from dispatch.db import db
from dispatch.ladder import step as ladder
from dispatch.ladder import texts
from dispatch.ladder.rules import policy_of
from dispatch.models import (
    Callback,
    Case,
    CaseStatus,
    Community,
    Contact,
    Member,
    Notification,
    NotificationStatus,
    Photo,
    Place,
    Report,
    ReportKind,
    Resolution,
    Rung,
    Solved,
    StaffUser,
    Urgency,
)
from dispatch.outbox import Purpose as Message
from dispatch.outbox import groups, residents
from dispatch.roster import duty

#: Messages that stop mattering once somebody has taken the case.
CANCELLED_ON_ACCEPT = (Message.ALERT, Message.STUCK, Message.CALL)
#: The messages that asked someone to take the case: who got one hears who took it.
ASKED = (Message.ALERT, Message.STUCK)
SOLVED_WORDS = {Solved.YES: "已解决", Solved.PARTLY: "部分解决", Solved.NO: "未解决"}


class ActionRefused(Exception):
    """The action does not apply to the case as it is now; the message says why, in Chinese,
    for the page of whoever tried it."""


class NotAwaitingCallback(ActionRefused):
    """The case is not resolved-and-waiting: it was answered already, or is still open."""


# ---------------------------------------------------------------------------------------------
# Opening: one open case per (place, category).


def open_key(place: Place, category: str) -> str:
    return f"{place.id}:{category}"


def file(report: Report, place: Place, category: settings.Category, now: datetime, *,
         join: Case | None = None, urgency: Urgency | None = None) -> tuple[Case, bool]:
    """Put `report` on `join` if it is still open, else on the open case of its place and
    category, opening one if there is none; returns the case and whether it is new.

    `Case.open_key` carries a unique index while the case is open, so when two residents
    report the same broken lift in the same second, one insert wins and the other joins its
    case. A new case takes `urgency` if given (the desk heard the caller), else the category's;
    a joined case keeps its own (staff reclassify it). A new case is due for its first ladder
    step at once; its job is queued after the commit (the caller's), and the sweeper finds the
    case even if that job is lost.
    """
    case, opened = None, False
    if join is not None:
        case = _locked_open(sa.select(Case).where(Case.id == join.id))
    for _ in range(3):
        if case is not None:
            break
        case = _try_open(place, category, now, urgency or category.urgency)
        opened = case is not None
        if case is None:  # someone else holds the key: join their case
            case = _locked_open(sa.select(Case).where(
                Case.open_key == open_key(place, category.code)))
    if case is None:
        raise RuntimeError(f"could not open or join a case for {place.code}/{category.code}")
    report.case = case
    if opened:  # the opener's own link is the case's; a later reporter gets a link of their own
        report.public_token = case.public_token
    db.session.add(report)
    if not opened:  # a new case is inserted with its first report counted
        case.report_count += 1
    residents.receipt(case, report, now)
    if opened:
        how = "居民来电（工作人员登记）" if report.kind == ReportKind.PHONE else "居民反映"
        record(case, EventKind.REPORTED, f"{how}：{category.name}", at=now,
               report_kind=str(report.kind))
        groups.post(case, "opened", "新事项", "居民刚刚反映，正在通知负责人", now)
        jobs.enqueue_after_commit(jobs.Job.STEP, case.id, case.token,
                                  job_id=jobs.step_job_id(case.id, case.token))
    else:
        record(case, EventKind.JOINED, f"又有邻居反映（共 {case.report_count} 人次）", at=now,
               report_kind=str(report.kind))
    return case, opened


def _try_open(place: Place, category: settings.Category, now: datetime,
              urgency: Urgency) -> Case | None:
    """Insert a new open case, or return None if one is already open for the same key."""
    community = place.community
    policy = policy_snapshot(community, urgency, now)
    case = Case(community_id=community.id, place_id=place.id, category=category.code,
                urgency=urgency, open_key=open_key(place, category.code),
                policy=policy, status=CaseStatus.OPEN, reported_at=now, next_step_at=now,
                report_count=1)
    try:
        with db.session.begin_nested():
            db.session.add(case)
    except IntegrityError:
        return None
    return case


def policy_snapshot(community: Community, urgency: Urgency, now: datetime) -> dict[str, Any]:
    """The escalation policy a case keeps: the community file's for `urgency`, as at `now`.

    `version` (a hash of the settings) tells two snapshots apart; `taken_at` is what people
    read ("派单规则：12月6日 14:05 时的社区设置"), since a hash means nothing to them.
    """
    policy = settings.policy(community, urgency)
    policy["version"] = hashlib.sha256(
        json.dumps(community.settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    policy["taken_at"] = now.isoformat()
    return policy


def locking(query: sa.Select[Case], **options: Any) -> sa.Select[Case]:
    """`query` taking the row lock every writer of a case takes, its rows read afresh.

    The lock is FOR NO KEY UPDATE (`key_share=True`): it excludes every other writer of the
    case as FOR UPDATE does, but not the KEY SHARE lock PostgreSQL takes on the case when a
    row pointing at it is written twice in one transaction (a send's claim, then its reply
    code). With FOR UPDATE, an acceptance that holds the case and waits for a claimed message
    to cancel it, and the sender waiting for the case, deadlocked. `options` go to
    `with_for_update` (`of`, `skip_locked`).
    """
    return (query.with_for_update(key_share=True, **options)
            .execution_options(populate_existing=True))


def _locked(case_id: int) -> Case | None:
    """The case row, locked (`locking`), or None if there is no such case."""
    return db.session.scalar(locking(sa.select(Case).where(Case.id == case_id)))


def _locked_open(query: sa.Select[Case]) -> Case | None:
    """The case the query finds, row-locked (`locking`), if it is still open."""
    case = db.session.scalar(locking(query))
    return case if case is not None and case.is_open else None


# ---------------------------------------------------------------------------------------------
# The step: the case's timer has run out.


def run_step(case_id: int, token: int, now: datetime | None = None) -> bool:
    """The step job: take the case's due step if `token` still holds; returns whether it acted.

    Locks the case row. A job whose token is stale (the case moved on, was accepted, or this is
    a duplicate) or whose step is not due yet does nothing at all.
    """
    now = now or clock.now()
    case = db.session.scalar(_locked_for_step(), {"case": case_id})
    if case is None or case.token != token or not is_due(case, now):
        db.session.rollback()
        return False
    advance(case, now)
    db.session.commit()
    return True


@functools.cache
def _locked_for_step() -> sa.Select[Case]:
    """The case row `case`, locked, loaded with what a step reads besides it: the community
    (time zone, routing rules) and the place up to its grid (routing, the message text; deeper
    places still load on demand). Built once per process, like the send path's statements."""
    return locking(sa.select(Case).where(Case.id == sa.bindparam("case"))
                   .options(joinedload(Case.community),
                            joinedload(Case.place).joinedload(Place.parent)
                            .joinedload(Place.parent).joinedload(Place.parent)),
                   of=Case)


def is_due(case: Case, now: datetime) -> bool:
    return case.next_step_at is not None and case.next_step_at <= now


def advance(case: Case, now: datetime) -> None:
    """Take the due step of a locked case, in the caller's transaction.

    **open**: ask the rung (first time), or, if it was asked and nobody accepted, go up one
    rung, until the ladder says the case is stuck. **accepted**: the acceptor has not reported
    being on site within `on_site_minutes`: remind them once; if still nothing one rung-wait
    later, the case goes back up the ladder. On site, resolved, closed: nothing is due.
    """
    due = case.next_step_at
    case.token += 1
    case.next_step_at = None
    if case.status == CaseStatus.OPEN:
        why = None
        if case.dispatched_to_id is not None:
            # Staff's assignee did not take it in time: the ladder takes over where it stood.
            name = case.dispatched_to.name if case.dispatched_to is not None else "被指派人"
            why = f"{name}未在时限内接单"
            record(case, EventKind.NOTE, f"{why}，恢复逐级通知", at=now,
                   member_id=case.dispatched_to_id)
            case.dispatched_to_id = None
        _climb(case, now, due, why)
    elif case.status == CaseStatus.ACCEPTED:
        acceptor = case.accepted_by
        if acceptor is not None and case.step == 0:
            ladder.remind(case, acceptor, now, due)
        else:
            name = acceptor.name if acceptor is not None else "接单人"
            _back_on_ladder(case)
            _climb(case, now, due, why=f"{name}接单后提醒仍未到场")
    ladder.schedule(case)


def _climb(case: Case, now: datetime, due: datetime | None, why: str | None = None) -> None:
    """Climb the ladder and record what the climb came to: a referral, or a stuck case."""
    climbed = ladder.climb(case, now, due, why)
    if climbed.referred:
        _refer(case, now)
    if climbed.stuck is not None:
        case.stuck_at = case.stuck_at or now
        ladder.alert_duty_desk(case, now, climbed.stuck)


def _refer(case: Case, now: datetime) -> None:
    """The district rung is a referral: it gets its own deadline, which the timeline states."""
    hours = float(policy_of(case)["referral_hours"])
    zone: ZoneInfo = clock.zone(case.community.timezone)
    case.referred_at = case.referred_at or now
    case.referral_due_at = now + timedelta(hours=hours)
    deadline = texts.when(case.referral_due_at, zone)
    record(case, EventKind.REFERRED,
           f"转办街道/区相关部门，办理时限 {hours:g} 小时（{deadline}前）",
           at=now, due=case.referral_due_at.isoformat(),
           shown=True, hours=hours)


def _back_on_ladder(case: Case) -> None:
    """An accepted case goes back up the ladder from the rung it stands on."""
    case.status = CaseStatus.OPEN
    case.accepted_by_id = None
    case.accepted_rung = None
    case.dispatched_to_id = None
    case.step = max(case.step, 1)


def page_next_rung_now(case: Case, member: Member, error_code: str | None,
                       now: datetime) -> None:
    """Nobody else at the case's rung can be reached (`member`'s last channel failed): make
    its next step due now. Does nothing once the case moved on or is no longer open."""
    locked = _locked(case.id)
    if locked is None or locked.status != CaseStatus.OPEN or locked.next_step_at is None:
        return
    record(locked, EventKind.SKIPPED,
           f"{member.name}无法接收通知（{error_code}），本级已无人可通知，"
           f"立即通知下一级", at=now, member_id=member.id, rung=locked.rung)
    locked.next_step_at = min(locked.next_step_at, now)
    jobs.enqueue_after_commit(jobs.Job.STEP, locked.id, locked.token,
                              job_id=jobs.step_job_id(locked.id, locked.token, at_once=True))


# ---------------------------------------------------------------------------------------------
# Members' actions: the same functions serve the phone links, SMS replies, voice and the CLI.


def accept(case_id: int, member_id: int, now: datetime | None = None) -> Case:
    """Take the case: the ladder stops for everyone and everyone already paged hears who took it.

    Accepting again by the same member changes nothing. `accepted_at` keeps the first
    acceptance (the response time); `accepted_by` and `accepted_rung` name the current one.
    """
    now = now or clock.now()
    case, member = _lock(case_id, member_id)
    if not _accept(case, member, now):
        db.session.rollback()
        return case
    ladder.schedule(case)
    db.session.commit()
    return case


def on_site(case_id: int, member_id: int, now: datetime | None = None) -> Case:
    """The acceptor is on site (已到场): the on-site timer stops. Taking an open case accepts it."""
    now = now or clock.now()
    case, member = _lock(case_id, member_id)
    if case.status == CaseStatus.ON_SITE and case.accepted_by_id == member.id:
        db.session.rollback()
        return case
    _accept(case, member, now)
    case.token += 1
    case.status = CaseStatus.ON_SITE
    case.on_site_at = case.on_site_at or now
    case.next_step_at = None
    record(case, EventKind.ON_SITE, f"{member.name}已到场", at=now, member_id=member.id,
           shown=True, name=member.display_name)
    db.session.commit()
    return case


def resolve(case_id: int, member_id: int, note: str, now: datetime | None = None, *,
            photos: Sequence[Photo] = ()) -> Case:
    """The problem is solved (已解决): the case leaves the ladder and frees its open key.

    The responder's result note and after-photos (办理后照片) are kept with the case, in the
    same transaction (`dispatch.case.result` reads them back). A new report about the same
    place and category then opens a new case; the 回访 that follows may reopen this one.
    """
    now = now or clock.now()
    note = note.strip()[:500]
    case, member = _lock(case_id, member_id)
    if case.status == CaseStatus.RESOLVED and case.accepted_by_id == member.id:
        db.session.rollback()
        return case
    _accept(case, member, now)
    case.token += 1
    case.status = CaseStatus.RESOLVED
    case.resolution = Resolution.FIXED
    case.resolved_at = now
    case.closed_rung = _closing_rung(case)
    case.open_key = None
    case.next_step_at = None
    _cancel_pending(case, now, (*CANCELLED_ON_ACCEPT, Message.REMINDER))
    for photo in photos:
        photo.after_case = case
        db.session.add(photo)
    db.session.flush()
    shown = f"（照片 {len(photos)} 张）" if photos else ""
    record(case, EventKind.RESOLVED,
           f"{member.name}：已解决" + (f"。{note}" if note else "") + shown,
           at=now, member_id=member.id, note=note, photos=[p.id for p in photos],
           shown=True, name=member.display_name)
    residents.ask_for_callback(case, now)
    groups.post(case, f"resolved{case.reopen_count}", "已解决",
                f"{member.name}已处理完毕" + (f"：{security.without_phones(note)}" if note else ""),
                now)
    db.session.commit()
    return case


def hand_over(case_id: int, member_id: int, to_member_id: int,
              now: datetime | None = None) -> Case:
    """Pass the case to a named colleague, who is told at once.

    Handing over an accepted case makes the colleague its acceptor (the on-site timer starts
    again for them); handing over an open case asks the colleague directly while the ladder
    keeps running.
    """
    now = now or clock.now()
    case, member = _lock(case_id, member_id)
    colleague = db.session.get(Member, to_member_id)
    if colleague is None or colleague.community_id != case.community_id or not colleague.active:
        db.session.rollback()
        raise ActionRefused("找不到这位同事")
    if colleague.id == member.id:
        db.session.rollback()
        raise ActionRefused("不能转交给自己")
    contact = duty.working_contact(colleague)
    if contact is None:
        db.session.rollback()
        raise ActionRefused(f"{colleague.name}没有可用的联系方式，请选择其他同事")
    _refuse_closed(case)
    case.token += 1
    if case.status in (CaseStatus.ACCEPTED, CaseStatus.ON_SITE):
        _refuse_others(case, member)
        case.status = CaseStatus.ACCEPTED
        case.accepted_by = colleague
        case.step = 0
        case.next_step_at = now + timedelta(minutes=float(policy_of(case)["on_site_minutes"]))
    outbox.add(case, colleague, contact, Message.HANDOVER,
               texts.handover_body(case, member, colleague),
               dedupe_key=f"c{case.id}:t{case.token}:handover:m{colleague.id}", now=now,
               rung=case.rung)
    record(case, EventKind.HANDED_OVER, f"{member.name}转交给{colleague.name}", at=now,
           member_id=member.id, to_member=colleague.id,
           shown=True, name=colleague.display_name)
    ladder.schedule(case)
    db.session.commit()
    return case


def escalate(case_id: int, *, member_id: int | None = None, staff_name: str | None = None,
             now: datetime | None = None) -> Case:
    """Send an open or accepted case up one rung at once (this needs more than we can do
    here), on a member's word or on staff's (`staff_name`); the timeline names who."""
    now = now or clock.now()
    if member_id is not None:
        case, member = _lock(case_id, member_id)
        who = f"{member.name}要求立即升级"
    else:
        found = _locked(case_id)
        if found is None:
            db.session.rollback()
            raise ActionRefused("没有这个事项")
        case, member, who = found, None, f"工作人员{staff_name}要求立即上报"
    _refuse_closed(case)
    if case.status != CaseStatus.OPEN:
        if member is not None:
            _refuse_others(case, member)
        _back_on_ladder(case)
    case.token += 1
    case.step = max(case.step, 1)
    _climb(case, now, now, why=who)
    ladder.schedule(case)
    db.session.commit()
    return case


# ---------------------------------------------------------------------------------------------
# Staff: notes, closing, merging, assigning and referring, from the console.


def add_note(case: Case, staff: StaffUser, text: str, *, now: datetime | None = None) -> None:
    """Write a staff note on the timeline (staff only: never shown to residents)."""
    text = text.strip()
    if not text:
        raise ActionRefused("备注不能为空 / A note needs some text")
    record(case, EventKind.NOTE, text[:2000], at=now or clock.now(), staff_id=staff.id)


def close(case: Case, staff: StaffUser, *, fixed: bool, note: str = "",
          now: datetime | None = None) -> None:
    """Close the case as fixed or, honestly, as not fixed.

    Closing as fixed also marks it resolved if nobody had, so its time to resolve counts.
    """
    if case.status == CaseStatus.CLOSED:
        raise ActionRefused("案件已办结 / The case is already closed")
    now = now or clock.now()
    if fixed and case.resolved_at is None:
        case.resolved_at = now
    _finish(case, Resolution.FIXED if fixed else Resolution.NOT_FIXED, now)
    outcome = "已解决" if fixed else "未解决"
    why = f"：{note.strip()}" if note.strip() else ""
    record(case, EventKind.CLOSED, f"工作人员办结（{outcome}）{why}", at=now, staff_id=staff.id,
           fixed=fixed, shown=True)


def merge(duplicate: Case, into: Case, staff: StaffUser, *, now: datetime | None = None) -> None:
    """Close `duplicate` as a duplicate of `into`; its reports count on `into` from now on.

    The reports stay on the duplicate (the record of what each resident said is never
    rewritten); `into` counts them and its page lists them.
    """
    if duplicate.id == into.id:
        raise ActionRefused("不能合并到自身 / A case cannot be merged into itself")
    if duplicate.community_id != into.community_id:
        raise ActionRefused("不是同一社区的案件 / Not a case of this community")
    if duplicate.status == CaseStatus.CLOSED:
        raise ActionRefused("案件已办结 / The case is already closed")
    if into.resolution == Resolution.DUPLICATE:
        raise ActionRefused(f"{into.number} 本身是重复案件 / That case is itself a duplicate")
    now = now or clock.now()
    _finish(duplicate, Resolution.DUPLICATE, now)
    duplicate.merged_into_id = into.id
    into.report_count += duplicate.report_count
    record(duplicate, EventKind.MERGED, f"与 {into.number} 重复，已合并", at=now,
           staff_id=staff.id, into=into.id,
           shown=True, number=into.number, why="duplicate")
    record(into, EventKind.MERGED,
           f"合并重复案件 {duplicate.number}（{duplicate.report_count} 人次）", at=now,
           staff_id=staff.id, merged=duplicate.id)


def first_assignment(case: Case) -> bool:
    """Whether giving the case to someone now is its first assignment (指派), not a change of
    hands (改派): nobody has accepted it and staff have not assigned it before."""
    return case.accepted_by_id is None and case.dispatched_at is None


def reassign(case: Case, to: Member, staff: StaffUser, *, now: datetime | None = None) -> None:
    """Give the case to `to` on staff's authority: 指派, or 改派 if it had someone. Commits.

    A case nobody has taken is *dispatched*: `to` is asked directly and the ladder's unsent
    alerts to others are cancelled; the ladder waits one rung's time (`rung_minutes`) for
    `to`'s own 接单, then resumes where it stood. The assignment is its own milestone
    (`dispatched_at`, `dispatched_by`); `accepted_at` stays for the member's own acceptance,
    so 响应率 measures members, not the desk. Anyone already asked may still accept first.

    An accepted case is handed over as a member would (the acceptor named as the giver), and
    `to` becomes its acceptor at once: its acceptance time is the first acceptor's already.
    """
    if not case.is_open:
        raise ActionRefused("案件已解决或已办结 / The case is resolved or closed")
    now = now or clock.now()
    contact = duty.working_contact(to)
    if contact is None:
        raise ActionRefused(f"{to.name}没有可用的联系方式，请选择其他人")
    if to.id == case.accepted_by_id:
        raise ActionRefused(f"{to.name}已经在处理这个案件")
    verb = "指派" if first_assignment(case) else "改派"
    case.dispatched_at = case.dispatched_at or now
    case.dispatched_by_id = staff.id
    if case.accepted_by_id is not None:
        record(case, EventKind.NOTE, f"工作人员{staff.name}{verb}给{to.name}", at=now,
               staff_id=staff.id, to_member=to.id)
        hand_over(case.id, case.accepted_by_id, to.id, now)
        return
    case.token += 1
    case.dispatched_to_id = to.id
    _cancel_pending(case, now, CANCELLED_ON_ACCEPT)
    minutes = float(policy_of(case)["rung_minutes"])
    case.next_step_at = now + timedelta(minutes=minutes)
    outbox.add(case, to, contact, Message.ASSIGNED, texts.assigned_body(case, staff, to),
               dedupe_key=f"c{case.id}:t{case.token}:assigned:m{to.id}", now=now, rung=case.rung)
    wait = texts.duration(timedelta(minutes=minutes))
    record(case, EventKind.DISPATCHED,
           f"工作人员{staff.name}{verb}给{to.name}，等待其接单（{wait}内）",
           at=now, staff_id=staff.id, member_id=to.id, to_member=to.id,
           shown=True, name=to.display_name)
    ladder.schedule(case)
    db.session.commit()


def reclassify(case: Case, staff: StaffUser, *, category: str, urgency: Urgency,
               now: datetime | None = None) -> None:
    """Correct the case's category and urgency (a blocked fire escape filed as 环境卫生).

    The case takes the policy of its new urgency, as the community file has it now, and
    metrics count it under the new category. An open case nobody has taken is routed again:
    its current rung is asked afresh under the new routing, now (a new token kills the queued
    step; unsent alerts of the old routing are cancelled). A case staff assigned keeps its
    assignee; an accepted one its acceptor. The caller commits, with its audit entry.
    """
    now = now or clock.now()
    found = settings.category(case.community, category)
    if found is None:
        raise ActionRefused("没有这个问题类型 / No such category")
    if case.status == CaseStatus.CLOSED:
        raise ActionRefused("案件已办结 / The case is already closed")
    if case.category == category and case.urgency == urgency:
        raise ActionRefused("类别和紧急程度都没有变化 / Nothing changed")
    old = settings.category(case.community, case.category)
    old_name = old.name if old is not None else case.category
    if case.open_key is not None and category != case.category:
        key = open_key(case.place, category)
        other = db.session.scalar(sa.select(Case).where(Case.open_key == key))
        if other is not None:
            raise ActionRefused(f"该地点已有未办结的“{found.name}”案件 {other.number}，"
                                f"请把本案并入它")
        try:
            with db.session.begin_nested():
                case.open_key = key
                db.session.flush()
        except IntegrityError:
            raise ActionRefused(f"该地点刚刚有了“{found.name}”案件，请刷新后合并") from None
    before = f"{old_name}·{words.URGENCY_NAMES.get(case.urgency, case.urgency)}"
    after = f"{found.name}·{words.URGENCY_NAMES.get(urgency, urgency)}"
    case.category = category
    case.urgency = urgency
    case.policy = policy_snapshot(case.community, urgency, now)
    rerouted = case.status == CaseStatus.OPEN and case.dispatched_to_id is None
    record(case, EventKind.RECLASSIFIED,
           f"工作人员{staff.name}改类：{before} → {after}"
           + ("，按新类别重新通知" if rerouted else ""),
           at=now, staff_id=staff.id, category_from=old.code if old else None,
           category_to=category, urgency_to=str(urgency), shown=True)
    if rerouted:
        case.token += 1
        case.step = 0
        case.next_step_at = now
        _cancel_pending(case, now, CANCELLED_ON_ACCEPT)
        jobs.enqueue_after_commit(jobs.Job.STEP, case.id, case.token,
                                  job_id=jobs.step_job_id(case.id, case.token, at_once=True))


def refer_up(case: Case, staff: StaffUser, *, now: datetime | None = None) -> None:
    """Send the case up one rung now, naming the staff member. Commits.

    An accepted case goes back on the ladder one rung up, as when its acceptor escalates.
    """
    if not case.is_open:
        raise ActionRefused("案件已解决或已办结 / The case is resolved or closed")
    now = now or clock.now()
    record(case, EventKind.NOTE, f"工作人员{staff.name}要求立即上报上一级", at=now,
           staff_id=staff.id)
    escalate(case.id, staff_name=staff.name, now=now)


# ---------------------------------------------------------------------------------------------
# The 回访: the resident's answer after a case is resolved settles it.


@dataclass(frozen=True, slots=True)
class Answered:
    """What a 回访 did: its row, and the case that now carries the problem.

    `follow` is the case itself, or, when "not solved" found another case already open for
    the same problem, that case (the complaint was added to it).
    """

    callback: Callback
    follow: Case
    reopened: bool

    @property
    def joined(self) -> bool:
        return self.follow.id != self.callback.case_id


def answer_callback(case: Case, *, solved: Solved, contacted: bool | None = None,
                    satisfaction: int | None = None, comment: str | None = None,
                    now: datetime | None = None) -> Answered:
    """Record the resident's 回访 on a resolved case and close or reopen it. Commits.

    "Solved" and "partly solved" close the case as fixed (the answer itself keeps "partly"
    apart for the 解决率); "not solved" reopens it, as Beijing's 12345 does. A case takes one
    answer per resolution: once it is closed or reopened, the form is gone.
    """
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise ValueError("satisfaction is 1 to 5")
    now = now or clock.now()
    locked = _locked(case.id)
    if locked is None or locked.status != CaseStatus.RESOLVED:
        raise NotAwaitingCallback("这个事项不在待回访状态")
    case = locked
    callback = Callback(case_id=case.id, contacted=contacted, solved=solved,
                        satisfaction=satisfaction, comment=comment or None, at=now)
    db.session.add(callback)
    case.callback_at = now
    stars = f"，满意度 {satisfaction}" if satisfaction else ""
    record(case, EventKind.CALLBACK, f"居民回访：{SOLVED_WORDS[solved]}{stars}", at=now,
           solved=str(solved), satisfaction=satisfaction, contacted=contacted)
    if solved == Solved.NO:
        follow = reopen(case, f"居民回访：未解决{'：' + comment if comment else ''}", now=now)
        return Answered(callback, follow, reopened=follow.id == case.id)
    case.status = CaseStatus.CLOSED
    case.resolution = Resolution.FIXED
    case.closed_at = now
    case.closed_rung = case.closed_rung or _closing_rung(case)
    record(case, EventKind.CLOSED, "回访后办结", at=now, shown=True)
    db.session.commit()
    return Answered(callback, case, reopened=False)


def reopen(case: Case, reason: str, *, now: datetime | None = None) -> Case:
    """Put a resolved or closed case back on its ladder from the first rung ("not solved").

    Returns the case that now carries the problem. That is `case` itself, open again with a
    new fencing token so every stale job dies, due for its first step at once; or, when
    another case has meanwhile opened for the same place and category (the unique open key
    is taken), that case: the complaint is filed on it as a report and `case` is closed as
    not fixed, pointing at it. Commits; the step job is queued only after the commit.
    """
    now = now or clock.now()
    locked = _locked(case.id)
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
    case.dispatched_to_id = None
    case.accepted_at = case.on_site_at = case.resolved_at = case.closed_at = None
    case.stuck_at = None
    record(case, EventKind.REOPENED, f"重新派单：{reason}", at=now, reason=reason)
    jobs.enqueue_after_commit(jobs.Job.STEP, case.id, case.token,
                              job_id=jobs.step_job_id(case.id, case.token))
    db.session.commit()
    return case


def _join_open_case(case: Case, reason: str, now: datetime) -> Case:
    """`reopen` when another case is open for the same problem: file the complaint there."""
    other = db.session.scalar(sa.select(Case).where(
        Case.open_key == open_key(case.place, case.category)))
    case.status = CaseStatus.CLOSED
    case.resolution = Resolution.NOT_FIXED
    case.closed_at = case.closed_at or now
    category = settings.category(case.community, case.category)
    if category is None:
        raise ValueError(f"unknown category {case.category!r}")
    # Joins `other`; should it have closed meanwhile, this opens or joins as usual.
    report = Report(place_id=case.place_id, kind=ReportKind.MESSAGE, category=case.category,
                    text=f"回访未解决：{reason}", anonymous=False, created_at=now)
    follow, _opened = file(report, case.place, category, now, join=other)
    case.merged_into_id = follow.id
    number = follow.number
    record(case, EventKind.MERGED, f"回访未解决，并入正在处理的 {number}", at=now,
           into=follow.id, reason=reason, shown=True, number=number, why="not_solved")
    db.session.commit()
    return follow


# ---------------------------------------------------------------------------------------------
# Messages about the case: which are still wanted, and the milestones of the first ones.


def why_stale(purpose: str, case: Case | None, member_id: int | None) -> str | None:
    """Why a message about `case` is no longer wanted, or None: the one rule the outbox (right
    before sending), the channel fallback (before trying another channel) and the actions
    (cancelling what was queued) follow.

    Alerts and the duty desk's alarm only matter while nobody has the case; a reminder only
    to its acceptor while not yet on site; a hand-over or assignment while the case is open.
    """
    if case is None:
        return None
    if purpose in CANCELLED_ON_ACCEPT and case.status != CaseStatus.OPEN:
        return f"case {case.status} before sending"
    if purpose == Message.REMINDER and (
            case.status != CaseStatus.ACCEPTED or case.accepted_by_id != member_id):
        return f"case {case.status} before sending"
    if purpose in (Message.HANDOVER, Message.ASSIGNED) and not case.is_open:
        return f"case {case.status} before sending"
    if purpose == Message.CALLBACK and case.status != CaseStatus.RESOLVED:
        return f"case {case.status} before sending"  # answered, reopened or closed meanwhile
    return None


def first_notified(case_id: int, now: datetime) -> None:
    """A message about the case reached a provider: the first one is its notified milestone.

    One conditional UPDATE, so concurrent senders never both set it. The sticker page says
    "已通知负责人" from then on, so the case's place is told of the change (`dispatch.changes`)."""
    place_id = db.session.scalar(
        sa.update(Case).where(Case.id == case_id, Case.first_notified_at.is_(None))
        .values(first_notified_at=now).returning(Case.place_id)
        .execution_options(synchronize_session=False, changes=()))
    if place_id is not None:
        changes.touch(db.session(), [changes.place(place_id)])


def first_delivered(case_id: int, now: datetime) -> bool:
    """An alert was delivered: the first is the case's delivered milestone; True if this was it."""
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as
    # returning the general Result whatever the statement.
    first = cast(sa.CursorResult[Any], db.session.execute(
        sa.update(Case).where(Case.id == case_id, Case.first_delivered_at.is_(None))
        .values(first_delivered_at=now)  # no page shows it: `dispatch.changes`
        .execution_options(synchronize_session=False, changes=())))
    return bool(first.rowcount)


# ---------------------------------------------------------------------------------------------
# The pieces every action shares.


def _lock(case_id: int, member_id: int) -> tuple[Case, Member]:
    """The case row, locked, and the acting member, who must belong to its community."""
    case = _locked(case_id)
    member = db.session.get(Member, member_id)
    if case is None:
        db.session.rollback()
        raise ActionRefused("找不到这个事项")
    if member is None or member.community_id != case.community_id or not member.active:
        db.session.rollback()
        raise ActionRefused("您不在本社区的值守名单中")
    return case, member


def _refuse_closed(case: Case) -> None:
    if case.status in (CaseStatus.RESOLVED, CaseStatus.CLOSED):
        db.session.rollback()
        raise ActionRefused("这个事项已经解决了，谢谢！")


def _refuse_others(case: Case, member: Member) -> None:
    if case.accepted_by_id != member.id:
        name = case.accepted_by.name if case.accepted_by else "其他人"
        db.session.rollback()
        raise ActionRefused(f"这个事项已由{name}接单")


def _accept(case: Case, member: Member, now: datetime) -> bool:
    """Make `member` the acceptor of the locked case; False if they already are."""
    _refuse_closed(case)
    if case.status in (CaseStatus.ACCEPTED, CaseStatus.ON_SITE):
        _refuse_others(case, member)
        return False
    case.token += 1
    case.status = CaseStatus.ACCEPTED
    case.accepted_by = member
    case.accepted_at = case.accepted_at or now
    paged_at = db.session.scalar(
        sa.select(sa.func.max(Notification.rung))
        .where(Notification.case_id == case.id, Notification.member_id == member.id,
               Notification.purpose == Message.ALERT))
    case.accepted_rung = paged_at or case.rung
    case.step = 0
    case.next_step_at = now + timedelta(minutes=float(policy_of(case)["on_site_minutes"]))
    _cancel_pending(case, now, CANCELLED_ON_ACCEPT)
    rung = case.accepted_rung
    record(case, EventKind.ACCEPTED,
           f"{member.name}在第{rung}级（{words.rung(rung)}）接单", at=now,
           member_id=member.id, rung=rung,
           shown=True, name=member.display_name)
    _tell_the_others(case, member, now)
    return True


def _closing_rung(case: Case) -> int:
    """The rung a case closes at: the rung that accepted it, else where the ladder stood."""
    return case.accepted_rung or case.rung


def _finish(case: Case, resolution: Resolution, now: datetime) -> None:
    """Take the case off its ladder for good: free its open key, kill every queued step (the
    token), stop the sweeper looking, and cancel what no provider has yet."""
    case.status = CaseStatus.CLOSED
    case.resolution = resolution
    case.closed_at = now
    case.closed_rung = case.closed_rung or _closing_rung(case)
    case.open_key = None
    case.token += 1
    case.next_step_at = None
    db.session.execute(
        sa.update(Notification)
        .where(Notification.case_id == case.id,
               Notification.status == NotificationStatus.PENDING,
               Notification.provider_id.is_(None))
        .values(status=NotificationStatus.CANCELLED, updated_at=now))


def _cancel_pending(case: Case, now: datetime, purposes: Sequence[str]) -> None:
    """Unsent messages that no longer make sense are cancelled, in the deciding transaction."""
    db.session.execute(
        sa.update(Notification)
        .where(Notification.case_id == case.id, Notification.status == NotificationStatus.PENDING,
               Notification.purpose.in_(purposes))
        .values(status=NotificationStatus.CANCELLED, updated_at=now,
                last_error="case taken before sending")
        .execution_options(synchronize_session=False))


def _tell_the_others(case: Case, acceptor: Member, now: datetime) -> None:
    """Everyone already paged about the case hears who took it, so two people do not go."""
    paged = db.session.scalars(
        sa.select(Notification)
        .where(Notification.case_id == case.id,
               Notification.purpose.in_((*ASKED, Message.ASSIGNED)),
               Notification.status.in_((NotificationStatus.SENDING, NotificationStatus.SENT,
                                        NotificationStatus.DELIVERED)),
               Notification.member_id != acceptor.id)
        .order_by(Notification.id.desc()))
    told: set[int] = set()
    names: list[str] = []
    for notification in paged:
        member = notification.member
        if member is None or member.id in told:
            continue
        told.add(member.id)
        contact: Contact | None = notification.contact or duty.working_contact(member)
        if contact is None:
            continue
        outbox.add(case, member, contact, Message.TAKEN, texts.taken_body(case, acceptor),
                   dedupe_key=f"c{case.id}:t{case.token}:taken:m{member.id}",
                   now=now, rung=notification.rung)
        names.append(member.name)
    if names:
        record(case, EventKind.NOTE, f"已告知{'、'.join(names)}：{acceptor.name}已接单，无需前往",
               at=now, members=sorted(told))
