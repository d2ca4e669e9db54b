"""The ladder: move a case from rung to rung until someone takes it, and members' actions on it.

楼栋 building → 网格 grid → 社区 community → 街道/区 district ("小事不出楼栋、难事不出网格、
大事不出社区"). The case row is the source of truth: `rung` is where the case stands, `step`
how many times that rung has been asked (0: not yet), `next_step_at` when the next step is due
and `token` the fence. `advance()` is the one function that takes a due step; the step job
(`run_step`), the sweeper and members' actions all go through it or through the same helpers,
each holding the case row lock and bumping the token, so a stale or duplicated job finds a
token that no longer matches and does nothing. Outbox rows and timeline events are written in
the deciding transaction; the next step's job and the sends are queued only after it commits
(a step job sends its messages itself, right after the commit: see `jobs.run`).

What a due step does, by case status:

- **open**: ask the rung (first time), or, if it was asked and nobody accepted, go up one rung;
  at the top rung ask again `repeat_last` times, then mark the case stuck and alert the
  community duty desk. Who is asked is decided now (`routing` + `duty`); when nobody at a rung
  can be reached the case goes up at once and the timeline says why. The district rung is a
  referral with its own deadline (`referral_hours`). Low-urgency policies name working hours:
  their steps wait for them, and their waits count working time only.
- **accepted**: the acceptor has not reported being on site within `on_site_minutes`: remind
  them; if still nothing one rung-wait later, the case goes back up the ladder.
- on site, resolved, closed: nothing is due.

Timeline convention: `CaseEvent.message` is for staff, in Chinese, and may name people in full
(never a phone number). Events residents should see carry `data["public"]` (and
`data["public_en"]`), which names responders only by `Member.display_name` (李师傅).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from dispatch import clock, jobs, links, outbox, security
from dispatch.cases import STEP_JOB, EventKind, record, step_job_id
from dispatch.community import settings
from dispatch.community.load import parse_days
from dispatch.db import db
from dispatch.links import Purpose as Link
from dispatch.models import (
    Case,
    CaseStatus,
    Contact,
    Member,
    Notification,
    NotificationStatus,
    Place,
    Report,
    Resolution,
    Responsibility,
    Role,
    Rung,
    Urgency,
)
from dispatch.outbox import Purpose as Message
from dispatch.roster import duty, routing

RUNG_NAMES = {Rung.BUILDING: "楼栋", Rung.GRID: "网格", Rung.COMMUNITY: "社区",
              Rung.DISTRICT: "街道/区"}
RUNG_NAMES_EN = {Rung.BUILDING: "building", Rung.GRID: "grid", Rung.COMMUNITY: "community",
                 Rung.DISTRICT: "street and district"}
ROLE_NAMES = {
    Role.LEADER: "楼栋长", Role.BACKUP: "楼栋党小组成员", Role.SECRETARY: "网格支部书记",
    Role.GRID_MEMBER: "网格员", Role.DUTY_DESK: "社区值班", Role.PROPERTY: "物业服务中心",
    Role.OWNERS: "业主委员会", Role.POLICE: "社区民警", Role.DOCTOR: "家庭医生",
    Role.ELEVATOR: "电梯维保", Role.DEPARTMENT: "街道/区部门",
}
#: How residents are told who was asked: organisations and roles, never people.
PUBLIC_ROLE_NAMES = {
    Role.DUTY_DESK: ("社区值班人员", "the community duty desk"),
    Role.PROPERTY: ("物业服务中心", "the property service desk"),
    Role.OWNERS: ("业主委员会", "the owners' committee"),
    Role.POLICE: ("社区民警", "the community police officer"),
    Role.DOCTOR: ("家庭医生", "the family doctor"),
    Role.ELEVATOR: ("电梯维保单位", "the elevator maintainer"),
    Role.DEPARTMENT: ("街道/区相关部门", "the street and district departments"),
}
WEEKDAYS = "一二三四五六日"
#: Messages that stop mattering once somebody has taken the case.
CANCELLED_ON_ACCEPT = (Message.ALERT, Message.STUCK)


class ActionRefused(Exception):
    """A member's action cannot be done; the message says why, in Chinese, for their page."""


# ---------------------------------------------------------------------------------------------
# Ladder arithmetic: pure functions of the rung, the policy and a clock.


class MoveKind(enum.StrEnum):
    NOTIFY = "notify"  # ask this rung for the first time
    ESCALATE = "escalate"  # nobody took it here: ask the next rung
    REPEAT = "repeat"  # the top rung again
    STUCK = "stuck"  # the top rung has been asked 1 + repeat_last times


@dataclass(frozen=True, slots=True)
class Move:
    kind: MoveKind
    rung: int


def next_move(rung: int, step: int, *, top: int, repeat_last: int) -> Move:
    """What a due step does at (`rung`, `step`), where `top` is the highest rung with a rule."""
    if step == 0:
        return Move(MoveKind.NOTIFY, rung)
    if rung < top:
        return Move(MoveKind.ESCALATE, rung + 1)
    if step <= repeat_last:
        return Move(MoveKind.REPEAT, rung)
    return Move(MoveKind.STUCK, rung)


def policy_of(case: Case) -> dict[str, Any]:
    """The case's snapshot, with today's defaults for keys an older snapshot may lack."""
    return {**settings.DEFAULT_POLICIES[Urgency(case.urgency)], **(case.policy or {})}


def wait_at(rung: int, policy: Mapping[str, Any]) -> timedelta:
    """How long a rung has to accept: the referral deadline at the district, else a rung-wait."""
    if rung == Rung.DISTRICT:
        return timedelta(hours=float(policy["referral_hours"]))
    return timedelta(minutes=float(policy["rung_minutes"]))


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """Office hours on some weekdays, in local time: "Mon-Fri 08:30-17:30"."""

    days: frozenset[int]
    starts: time
    ends: time

    @classmethod
    def parse(cls, text: str) -> WorkingHours:
        days, _, hours = text.strip().partition(" ")
        match = re.fullmatch(r"(\d{1,2}):(\d{2})\s*[-–~至]\s*(\d{1,2}):(\d{2})", hours.strip())
        if match is None:
            raise ValueError(f"working hours like 'Mon-Fri 08:30-17:30', not {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        return cls(frozenset(parse_days(days)), time(h1 % 24, m1), time(h2 % 24, m2))

    def windows(self, since: datetime, zone: ZoneInfo) -> Iterator[tuple[datetime, datetime]]:
        """The working windows (aware) that end after `since`, in order, for up to two years."""
        length = (datetime.combine(date.min, self.ends) - datetime.combine(date.min, self.starts))
        if length <= timedelta(0):
            length += timedelta(days=1)
        day = since.astimezone(zone).date() - timedelta(days=1)
        for _ in range(750):
            if day.weekday() in self.days:
                start = datetime.combine(day, self.starts, tzinfo=zone)
                if start + length > since:
                    yield start, start + length
            day += timedelta(days=1)


def working_hours(policy: Mapping[str, Any]) -> WorkingHours | None:
    text = policy.get("working_hours")
    return WorkingHours.parse(text) if text else None


def next_working_start(at: datetime, hours: WorkingHours, zone: ZoneInfo) -> datetime:
    """`at` itself inside working hours, else the start of the next working window."""
    for start, _end in hours.windows(at, zone):
        return max(start, at)
    return at


def add_working_time(start: datetime, duration: timedelta, hours: WorkingHours,
                     zone: ZoneInfo) -> datetime:
    """`start` plus `duration` counted in working hours only (Friday 16:30 + 4 h → Monday)."""
    left = duration
    for window_start, window_end in hours.windows(start, zone):
        begin = max(window_start, start)
        if begin + left <= window_end:
            return begin + left
        left -= window_end - begin
    return start + duration


def step_due(asked_at: datetime, rung: int, policy: Mapping[str, Any], zone: ZoneInfo
             ) -> datetime:
    """When the rung asked at `asked_at` has run out of time and the next step is due."""
    wait = wait_at(rung, policy)
    hours = working_hours(policy)
    if hours is None:
        return asked_at + wait
    if rung == Rung.DISTRICT:
        # A referral's deadline runs in calendar hours, like 12345's; chase it in office hours.
        return next_working_start(asked_at + wait, hours, zone)
    return add_working_time(asked_at, wait, hours, zone)


# ---------------------------------------------------------------------------------------------
# The step job and the one function that takes a due step.


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
    return (sa.select(Case).where(Case.id == sa.bindparam("case"))
            .options(joinedload(Case.community),
                     joinedload(Case.place).joinedload(Place.parent).joinedload(Place.parent)
                     .joinedload(Place.parent))
            .with_for_update(of=Case)
            .execution_options(populate_existing=True))


def is_due(case: Case, now: datetime) -> bool:
    return case.next_step_at is not None and case.next_step_at <= now


def advance(case: Case, now: datetime) -> None:
    """Take the due step of a locked case, in the caller's transaction (see the module doc)."""
    due = case.next_step_at
    case.token += 1
    case.next_step_at = None
    if case.status == CaseStatus.OPEN:
        _climb(case, now, due)
    elif case.status == CaseStatus.ACCEPTED:
        _chase_acceptor(case, now, due)
    _schedule(case)


def _schedule(case: Case) -> None:
    """Queue the job for the case's next step, fenced by its current token, after commit."""
    if case.next_step_at is not None:
        jobs.enqueue_after_commit(STEP_JOB, case.id, case.token, at=case.next_step_at,
                                  job_id=step_job_id(case.id, case.token))


def _climb(case: Case, now: datetime, due: datetime | None, why: str | None = None) -> None:
    """Ask the rung the case is due to ask, going up at once past rungs where nobody answers."""
    policy = policy_of(case)
    zone = clock.zone(case.community.timezone)
    hours = working_hours(policy)
    resume = next_working_start(now, hours, zone) if hours is not None else now
    if resume > now:
        case.next_step_at = resume
        record(case, EventKind.NOTE, f"非工作时间，顺延至{_local(resume, zone)}通知", at=now,
               public=f"已受理，将在工作时间（{_local(resume, zone)}）通知处理",
               public_en="Received; it will be passed on in working hours")
        return
    top = routing.top_rung(case.place, case.category)
    while True:
        move = next_move(case.rung, case.step, top=top, repeat_last=int(policy["repeat_last"]))
        if move.kind == MoveKind.STUCK:
            _declare_stuck(case, now, f"第{case.rung}级（{_rung(case.rung)}）已通知 "
                                      f"{case.step} 次，仍无人接单")
            return
        if move.kind == MoveKind.ESCALATE:
            waited = _duration(wait_at(case.rung, policy))
            reason = why or f"第{case.rung}级（{_rung(case.rung)}）{waited}内无人接单"
            _record_escalation(case, move.rung, reason, now)
        if _ask(case, move.rung, now, due, repeat=move.kind == MoveKind.REPEAT):
            case.step = case.step + 1 if move.kind == MoveKind.REPEAT else 1
            case.rung = move.rung
            if move.rung == Rung.DISTRICT and move.kind != MoveKind.REPEAT:
                _refer(case, now, policy, zone)
            case.next_step_at = step_due(now, move.rung, policy, zone)
            return
        if move.rung >= top:
            _declare_stuck(case, now, f"第{move.rung}级（{_rung(move.rung)}）无人可通知")
            return
        case.rung, case.step = move.rung + 1, 0
        record(case, EventKind.SKIPPED,
               f"第{move.rung}级（{_rung(move.rung)}）无人可通知，立即升级", at=now,
               rung=move.rung)
        _record_escalation(case, case.rung, f"第{move.rung}级（{_rung(move.rung)}）无人可通知",
                           now)
        why = None


def _ask(case: Case, rung: int, now: datetime, due: datetime | None, *, repeat: bool) -> bool:
    """Notify everyone reachable at `rung` now; False when nobody could be reached."""
    responders = routing.responders(case.place, case.category, rung)
    by_member = {id(r.member): r for r in responders}
    duties = duty.on_duty([r.member for r in responders], now, case.community.timezone,
                          urgent=case.urgency == Urgency.URGENT)
    reached: list[tuple[duty.Duty, Notification]] = []
    public: list[tuple[str, str]] = []
    step = case.step + 1 if repeat else 1
    quote = _first_text(case)
    quote = security.without_links(quote) if quote else None
    reachable: list[duty.Duty] = []
    drafts: list[outbox.Draft] = []
    for answer in duties:
        if not answer.reachable:
            label = _role_label(answer, by_member.get(id(answer.covering_for or answer.member)))
            record(case, EventKind.SKIPPED, f"跳过{answer.member.name}（{label}）：{answer.reason}",
                   at=now, member_id=answer.member.id, rung=rung)
            continue
        assert answer.contact is not None
        reachable.append(answer)
        drafts.append(outbox.Draft(
            answer.member, answer.contact, Message.ALERT,
            _alert_body(case, answer.member, quote, repeat=repeat),
            dedupe_key=f"c{case.id}:t{case.token}:r{rung}:s{step}:alert:m{answer.member.id}",
            rung=rung))
    for answer, notification in zip(reachable, outbox.add_all(case, drafts, now=now), strict=True):
        if notification is None:
            continue
        reached.append((answer, notification))
        responder = by_member.get(id(answer.covering_for or answer.member))
        if responder is not None:
            names = _public_role(responder)
            if names not in public:
                public.append(names)
    if not reached:
        return False
    people = "、".join(
        f"{outbox.CHANNEL_NAMES.get(n.channel, '')}通知{a.member.name}"
        f"（{_role_label(a, by_member.get(id(a.covering_for or a.member)))}）"
        for a, n in reached)
    again = f"第{step}次通知：" if repeat else ""
    zh = "、".join(p[0] for p in public) or f"{_rung(rung)}负责人"
    en = ", ".join(p[1] for p in public) or f"the {RUNG_NAMES_EN[Rung(rung)]} responders"
    record(case, EventKind.NOTIFIED, f"第{rung}级（{_rung(rung)}）{again}{people}", at=now,
           rung=rung, step=step, due=due.isoformat() if due else None,
           members=[a.member.id for a, _ in reached],
           notifications=[n.id for _, n in reached],
           public=("已再次通知" if repeat else "已通知") + zh,
           public_en=("Reminded " if repeat else "Notified ") + en)
    return True


def _record_escalation(case: Case, rung: int, reason: str, now: datetime) -> None:
    data: dict[str, Any] = {"rung": rung}
    if rung != Rung.DISTRICT:  # the referral event tells residents about the district
        data["public"] = f"已上报{_rung(rung)}"
        data["public_en"] = f"Passed up to the {RUNG_NAMES_EN[Rung(rung)]}"
    record(case, EventKind.ESCALATED, f"{reason}，升级到第{rung}级（{_rung(rung)}）", at=now,
           **data)


def _refer(case: Case, now: datetime, policy: Mapping[str, Any], zone: ZoneInfo) -> None:
    """The district rung is a referral: it gets its own deadline, which the timeline states."""
    hours = float(policy["referral_hours"])
    case.referred_at = case.referred_at or now
    case.referral_due_at = now + timedelta(hours=hours)
    deadline = _local(case.referral_due_at, zone)
    record(case, EventKind.REFERRED,
           f"转办街道/区相关部门，办理时限 {hours:g} 小时（{deadline}前）",
           at=now, due=case.referral_due_at.isoformat(),
           public=f"已转交街道/区相关部门办理，时限 {hours:g} 小时",
           public_en=f"Referred to the street and district departments ({hours:g} h deadline)")


def _declare_stuck(case: Case, now: datetime, why: str) -> None:
    """Nobody takes the case at any rung: flag it and alert the community's duty desk."""
    case.stuck_at = case.stuck_at or now
    case.next_step_at = None
    desk = [r.member for r in _duty_desk(case)]
    answers = [a for a in duty.on_duty(desk, now, case.community.timezone, urgent=True)
               if a.reachable]
    whom = "在班的社区值班人员"
    if not answers:
        whom = "全部社区值班人员（无人在班）"
        answers = [duty.Duty(m, c, "") for m in desk if m.active
                   and (c := duty.working_contact(m)) is not None]
    for answer in answers:
        assert answer.contact is not None
        outbox.add(case, answer.member, answer.contact, Message.STUCK,
                   _stuck_body(case, answer.member),
                   dedupe_key=f"c{case.id}:t{case.token}:stuck:m{answer.member.id}",
                   now=now, rung=case.rung)
    told = "、".join(a.member.name for a in answers) or "无人可通知，请社区工作人员查看"
    record(case, EventKind.STUCK, f"{why}：已标记为无人接单，提醒{whom}：{told}", at=now,
           members=[a.member.id for a in answers])


def _duty_desk(case: Case) -> list[routing.Responder]:
    """The community duty desk (社区值班), in its order: who hears about stuck cases."""
    rows = db.session.scalars(
        sa.select(Responsibility).join(Responsibility.member)
        .where(Member.community_id == case.community_id, Responsibility.role == Role.DUTY_DESK,
               Responsibility.place_id.is_(None)))
    return routing.rank([], case.category, [Role.DUTY_DESK], rows)


def _chase_acceptor(case: Case, now: datetime, due: datetime | None) -> None:
    """The acceptor is not on site in time: remind them once, then send the case up again."""
    acceptor = case.accepted_by
    policy = policy_of(case)
    if acceptor is not None and case.step == 0:
        contact = duty.working_contact(acceptor)
        minutes = _duration(timedelta(minutes=float(policy["on_site_minutes"])))
        if contact is not None:
            outbox.add(case, acceptor, contact, Message.REMINDER, _reminder_body(case, acceptor),
                       dedupe_key=f"c{case.id}:t{case.token}:reminder:m{acceptor.id}",
                       now=now, rung=case.accepted_rung or case.rung)
        record(case, EventKind.REMINDED,
               f"{acceptor.name}接单 {minutes} 后仍未到场，"
               + ("已发提醒" if contact is not None else "但没有可用的联系方式，无法提醒"),
               at=now, member_id=acceptor.id, due=due.isoformat() if due else None)
        case.step = 1
        case.next_step_at = now + timedelta(minutes=float(policy["rung_minutes"]))
        return
    name = acceptor.name if acceptor is not None else "接单人"
    _reopen_ladder(case)
    _climb(case, now, due, why=f"{name}接单后提醒仍未到场")


def _reopen_ladder(case: Case) -> None:
    """An accepted case goes back up the ladder from the rung it stands on."""
    case.status = CaseStatus.OPEN
    case.accepted_by_id = None
    case.accepted_rung = None
    case.step = max(case.step, 1)


# ---------------------------------------------------------------------------------------------
# Members' actions: the same functions serve the phone links, SMS replies and the CLI.


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
    _schedule(case)
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
           public=f"{member.display_name}已到场",
           public_en=f"{member.display_name} is on site")
    db.session.commit()
    return case


def resolve(case_id: int, member_id: int, note: str, now: datetime | None = None) -> Case:
    """The problem is solved (已解决): the case leaves the ladder and frees its open key.

    A new report about the same place and category then opens a new case; the 回访 callback
    that follows may reopen this one.
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
    case.closed_rung = case.accepted_rung or case.rung
    case.open_key = None
    case.next_step_at = None
    _cancel_pending(case, now, (Message.ALERT, Message.STUCK, Message.REMINDER))
    record(case, EventKind.RESOLVED, f"{member.name}：已解决" + (f"。{note}" if note else ""),
           at=now, member_id=member.id, note=note,
           public=f"{member.display_name}已处理完毕",
           public_en=f"{member.display_name} has resolved it")
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
        raise ActionRefused("找不到这位同事")
    if colleague.id == member.id:
        raise ActionRefused("不能转交给自己")
    contact = duty.working_contact(colleague)
    if contact is None:
        raise ActionRefused(f"{colleague.name}没有可用的联系方式，请选择其他同事")
    _refuse_closed(case)
    case.token += 1
    if case.status in (CaseStatus.ACCEPTED, CaseStatus.ON_SITE):
        _refuse_others(case, member)
        case.status = CaseStatus.ACCEPTED
        case.accepted_by = colleague
        case.step = 0
        case.next_step_at = now + timedelta(minutes=float(policy_of(case)["on_site_minutes"]))
    outbox.add(case, colleague, contact, Message.HANDOVER, _handover_body(case, member, colleague),
               dedupe_key=f"c{case.id}:t{case.token}:handover:m{colleague.id}", now=now,
               rung=case.rung)
    record(case, EventKind.HANDED_OVER, f"{member.name}转交给{colleague.name}", at=now,
           member_id=member.id, to_member=colleague.id,
           public=f"已转交{colleague.display_name}处理",
           public_en=f"Handed over to {colleague.display_name}")
    _schedule(case)
    db.session.commit()
    return case


def escalate_now(case_id: int, member_id: int, now: datetime | None = None) -> Case:
    """Send the case up one rung at once (this needs more than we can do here)."""
    now = now or clock.now()
    case, member = _lock(case_id, member_id)
    _refuse_closed(case)
    if case.status != CaseStatus.OPEN:
        _refuse_others(case, member)
        _reopen_ladder(case)
    case.token += 1
    case.step = max(case.step, 1)
    _climb(case, now, now, why=f"{member.name}要求立即升级")
    _schedule(case)
    db.session.commit()
    return case


def escalate_for_staff(case_id: int, staff_name: str, now: datetime | None = None) -> Case:
    """Staff send an open or accepted case up one rung at once; the timeline names them."""
    now = now or clock.now()
    case = db.session.scalar(sa.select(Case).where(Case.id == case_id).with_for_update())
    if case is None:
        raise ActionRefused("没有这个事项")
    _refuse_closed(case)
    if case.status != CaseStatus.OPEN:
        _reopen_ladder(case)
    case.token += 1
    case.step = max(case.step, 1)
    _climb(case, now, now, why=f"工作人员{staff_name}要求立即上报")
    _schedule(case)
    db.session.commit()
    return case


def _lock(case_id: int, member_id: int) -> tuple[Case, Member]:
    """The case row, locked, and the acting member, who must belong to its community."""
    case = db.session.scalar(sa.select(Case).where(Case.id == case_id).with_for_update()
                             .execution_options(populate_existing=True))
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
    record(case, EventKind.ACCEPTED,
           f"{member.name}在第{case.accepted_rung}级（{_rung(case.accepted_rung)}）接单", at=now,
           member_id=member.id, rung=case.accepted_rung,
           public=f"{member.display_name}已接单",
           public_en=f"{member.display_name} has taken it")
    _tell_the_others(case, member, now)
    return True


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
               Notification.purpose.in_(CANCELLED_ON_ACCEPT),
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
        outbox.add(case, member, contact, Message.TAKEN, _taken_body(case, acceptor),
                   dedupe_key=f"c{case.id}:t{case.token}:taken:m{member.id}",
                   now=now, rung=notification.rung)
        names.append(member.name)
    if names:
        record(case, EventKind.NOTE, f"已告知{'、'.join(names)}：{acceptor.name}已接单，无需前往",
               at=now, members=sorted(told))


# ---------------------------------------------------------------------------------------------
# Message bodies: short, Simplified Chinese, with the place, the category and signed links.


def _category_name(case: Case) -> str:
    found = settings.category(case.community, case.category)
    return found.name if found else case.category


def _first_text(case: Case) -> str | None:
    """What the first resident who wrote something said (a busy case has hundreds of reports)."""
    return db.session.scalar(
        sa.select(Report.text).where(Report.case_id == case.id, Report.text.is_not(None),
                                     Report.text != "")
        .order_by(Report.id).limit(1))


def _alert_body(case: Case, member: Member, first: str | None, *, repeat: bool) -> str:
    lines = [f"【邻里{'·催办' if repeat else ''}】{_category_name(case)}：{case.place.full_name}"
             f"（{case.number}）"]
    if case.report_count > 1:
        lines.append(f"已有 {case.report_count} 位邻居反映")
    if first:
        lines.append(f"“{first[:40]}{'…' if len(first) > 40 else ''}”")
    lines.append(f"接单：{links.url(Link.ACCEPT, member.id, case.id)}")
    lines.append(f"详情：{links.url(Link.CASE, member.id, case.id)}")
    return "\n".join(lines)


def _taken_body(case: Case, acceptor: Member) -> str:
    return (f"【邻里】{_category_name(case)}：{case.place.full_name} 已由{acceptor.name}接单，"
            f"您无需前往。谢谢！")


def _reminder_body(case: Case, member: Member) -> str:
    return (f"【邻里·提醒】您接单的{_category_name(case)}（{case.place.full_name}）尚未到场。\n"
            f"已到场：{links.url(Link.ON_SITE, member.id, case.id)}\n"
            f"详情：{links.url(Link.CASE, member.id, case.id)}")


def _handover_body(case: Case, giver: Member, colleague: Member) -> str:
    return (f"【邻里】{giver.name}把{_category_name(case)}（{case.place.full_name}）"
            f"转交给您处理。\n"
            f"详情：{links.url(Link.CASE, colleague.id, case.id)}")


def _stuck_body(case: Case, member: Member) -> str:
    return (f"【邻里·告警】{_category_name(case)}：{case.place.full_name}（{case.number}）"
            f"已逐级通知仍无人接单，请安排处理。\n"
            f"接单：{links.url(Link.ACCEPT, member.id, case.id)}\n"
            f"详情：{links.url(Link.CASE, member.id, case.id)}")


# ---------------------------------------------------------------------------------------------
# Small helpers for the wording.


def _rung(rung: int | None) -> str:
    return RUNG_NAMES[Rung(rung)] if rung in set(Rung) else str(rung)


def _role_label(answer: duty.Duty, responder: routing.Responder | None) -> str:
    if answer.covering_for is not None:
        return f"代{answer.covering_for.name}"
    return ROLE_NAMES.get(responder.role, str(responder.role)) if responder else "值守人员"


def _public_role(responder: routing.Responder) -> tuple[str, str]:
    """Residents hear about the building's party group or the grid's branch, not people."""
    if responder.role in (Role.LEADER, Role.BACKUP):
        name = responder.place.org_name if responder.place and responder.place.org_name else None
        return (name or "楼栋党小组", "the building's party group")
    if responder.role in (Role.SECRETARY, Role.GRID_MEMBER):
        name = responder.place.org_name if responder.place and responder.place.org_name else None
        return (name or "网格党支部", "the grid's party branch")
    return PUBLIC_ROLE_NAMES.get(responder.role, ("值守人员", "the responders"))


def _duration(wait: timedelta) -> str:
    minutes = wait.total_seconds() / 60
    if minutes >= 120 and minutes % 60 == 0:
        return f"{minutes / 60:g} 小时"
    return f"{minutes:g} 分钟" if minutes >= 1 else f"{wait.total_seconds():g} 秒"


def _local(at: datetime, zone: ZoneInfo) -> str:
    local = clock.local(at, zone)
    return f"{local.month}月{local.day}日 周{WEEKDAYS[local.weekday()]} {local:%H:%M}"
