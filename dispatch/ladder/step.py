"""The ladder's moves on a case: ask a rung, go up, remind an acceptor, alert the duty desk.

楼栋 building → 网格 grid → 社区 community → 街道/区 district ("小事不出楼栋、难事不出网格、
大事不出社区"). The case row is the source of truth: `rung` is where the case stands, `step`
how many times that rung has been asked (0: not yet), `next_step_at` when the next step is due.
These functions move those three, write the outbox rows and the timeline lines of a move, in
the caller's transaction, on a case the caller has locked. Whether a step is taken at all, and
every change of status or milestone around it (accepted, stuck, referred…), is decided by
`dispatch.case.lifecycle`, which calls them; the step job and the sweeper go through it too.

What asking does: who is asked is decided now (`roster.routing` + `roster.duty`); when nobody at
a rung can be reached the case goes up at once and the timeline says why. At the top rung the
rung is asked again `repeat_last` times, then the climb reports the case stuck. Low-urgency
policies name working hours: their steps wait for them, and their waits count working time.

Timeline convention: `CaseEvent.message` is for staff, in Chinese, and may name people in full
(never a phone number). Events residents should see carry `data["shown"]` and the parameters
their page words them from (`dispatch.resident.timeline`): roles and organisations, and
responders only by `Member.display_name` (李师傅).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dispatch import clock, jobs, outbox, security, words
from dispatch.case.timeline import EventKind, record
from dispatch.db import db
from dispatch.ladder import texts
from dispatch.ladder.rules import (
    MoveKind,
    next_move,
    next_working_start,
    policy_of,
    step_due,
    wait_at,
    working_hours,
)
from dispatch.models import (
    Case,
    Channel,
    Member,
    Notification,
    Responsibility,
    Role,
    Rung,
    Urgency,
)
from dispatch.outbox import Purpose as Message
from dispatch.outbox import groups
from dispatch.roster import duty, routing


@dataclass(frozen=True, slots=True)
class Climbed:
    """What a climb came to, for the lifecycle to record: the district was asked for the first
    time (a referral, with its own deadline), or nobody can be asked any more (why)."""

    referred: bool = False
    stuck: str | None = None


def schedule(case: Case) -> None:
    """Queue the job for the case's next step, fenced by its current token, after commit."""
    if case.next_step_at is not None:
        jobs.enqueue_after_commit(jobs.Job.STEP, case.id, case.token, at=case.next_step_at,
                                  job_id=jobs.step_job_id(case.id, case.token))


def climb(case: Case, now: datetime, due: datetime | None, why: str | None = None) -> Climbed:
    """Ask the rung the case is due to ask, going up at once past rungs where nobody answers.

    Outside a low-urgency policy's working hours the ask waits for them instead.
    """
    policy = policy_of(case)
    zone = clock.zone(case.community.timezone)
    hours = working_hours(policy)
    resume = next_working_start(now, hours, zone) if hours is not None else now
    if resume > now:
        case.next_step_at = resume
        record(case, EventKind.NOTE, f"非工作时间，顺延至{texts.when(resume, zone)}通知", at=now,
               shown=True, resume=resume.isoformat())
        return Climbed()
    top = routing.top_rung(case.place, case.category)
    while True:
        move = next_move(case.rung, case.step, top=top, repeat_last=int(policy["repeat_last"]))
        if move.kind == MoveKind.STUCK:
            case.next_step_at = None
            return Climbed(stuck=f"第{case.rung}级（{words.rung(case.rung)}）已通知 "
                                 f"{case.step} 次，仍无人接单")
        if move.kind == MoveKind.ESCALATE:
            waited = texts.duration(wait_at(case.rung, policy))
            reason = why or f"第{case.rung}级（{words.rung(case.rung)}）{waited}内无人接单"
            _record_escalation(case, move.rung, reason, now)
        if _ask(case, move.rung, now, due, repeat=move.kind == MoveKind.REPEAT):
            case.step = case.step + 1 if move.kind == MoveKind.REPEAT else 1
            case.rung = move.rung
            case.next_step_at = step_due(now, move.rung, policy, zone)
            return Climbed(referred=move.rung == Rung.DISTRICT and move.kind != MoveKind.REPEAT)
        if move.rung >= top:
            case.next_step_at = None
            return Climbed(stuck=f"第{move.rung}级（{words.rung(move.rung)}）无人可通知")
        case.rung, case.step = move.rung + 1, 0
        record(case, EventKind.SKIPPED,
               f"第{move.rung}级（{words.rung(move.rung)}）无人可通知，立即升级", at=now,
               rung=move.rung)
        _record_escalation(case, case.rung, f"第{move.rung}级（{words.rung(move.rung)}）无人可通知",
                           now)
        why = None


def waiting_for_hours(case: Case, now: datetime) -> datetime | None:
    """When a case nobody has been asked about yet will be passed on, if it waits for its
    policy's working hours (a low-urgency report at night or at the weekend); else None.

    What `climb` will do, said in advance: the resident's status page shows it, before the
    first step has run and after it has put the ask off.
    """
    if not case.is_open or case.accepted_by_id is not None or case.step != 0:
        return None
    hours = working_hours(policy_of(case))
    if hours is None:
        return None
    due = max(now, case.next_step_at or now)
    resume = next_working_start(due, hours, clock.zone(case.community.timezone))
    return resume if resume > now else None


def _ask(case: Case, rung: int, now: datetime, due: datetime | None, *, repeat: bool) -> bool:
    """Notify everyone reachable at `rung` now; False when nobody could be reached."""
    responders = routing.responders(case.place, case.category, rung, kept=True)
    by_member = {id(r.member): r for r in responders}
    duties = duty.on_duty([r.member for r in responders], now, case.community.timezone,
                          urgent=case.urgency == Urgency.URGENT)
    reached: list[tuple[duty.Duty, Notification]] = []
    asked: list[dict[str, str | None]] = []
    step = case.step + 1 if repeat else 1
    quote = texts.first_text(case)
    quote = security.without_links(quote) if quote else None
    reachable: list[duty.Duty] = []
    drafts: list[outbox.Draft] = []
    for answer in duties:
        if not answer.reachable:
            responder = by_member.get(id(answer.covering_for or answer.member))
            label = texts.role_label(answer, responder)
            record(case, EventKind.SKIPPED, f"跳过{answer.member.name}（{label}）：{answer.reason}",
                   at=now, member_id=answer.member.id, rung=rung)
            continue
        assert answer.contact is not None
        reachable.append(answer)
        drafts.append(outbox.Draft(
            answer.member, answer.contact, Message.ALERT,
            texts.alert_body(case, answer.member, quote, repeat=repeat),
            dedupe_key=f"c{case.id}:t{case.token}:r{rung}:s{step}:alert:m{answer.member.id}",
            rung=rung))
    for answer, notification in zip(reachable, outbox.add_all(case, drafts, now=now), strict=True):
        if notification is None:
            continue
        reached.append((answer, notification))
        responder = by_member.get(id(answer.covering_for or answer.member))
        if responder is not None:
            who = texts.asked_as(responder)
            if who not in asked:
                asked.append(who)
    if not reached:
        return False
    people = "、".join(
        f"{words.channel(n.channel, '')}通知{a.member.name}"
        f"（{texts.role_label(a, by_member.get(id(a.covering_for or a.member)))}）"
        for a, n in reached)
    again = f"第{step}次通知：" if repeat else ""
    people += _calls_if_unanswered(case, [a for a, _ in reached], rung, step, now)
    record(case, EventKind.NOTIFIED, f"第{rung}级（{words.rung(rung)}）{again}{people}", at=now,
           rung=rung, step=step, due=due.isoformat() if due else None,
           members=[a.member.id for a, _ in reached],
           notifications=[n.id for _, n in reached],
           shown=True, repeat=repeat, asked=asked)
    return True


def _calls_if_unanswered(case: Case, reached: list[duty.Duty], rung: int, step: int,
                         now: datetime) -> str:
    """Urgent means a call: queue a phone call to each member just asked by another channel,
    due `call_after_minutes` later (the policy's; 0 or none: never). The call is cancelled if
    anyone takes the case first (`lifecycle.why_stale`); the ladder's timing is unchanged.
    Returns the words for the timeline ("", or who will be rung when)."""
    minutes = float(policy_of(case).get("call_after_minutes") or 0)
    if not minutes:
        return ""
    drafts: list[outbox.Draft] = []
    for answer in reached:
        if answer.contact is None or answer.contact.channel == Channel.VOICE:
            continue  # asked by a call already
        phone = duty.working_contact(answer.member, channels=(Channel.VOICE,))
        if phone is None:
            continue
        drafts.append(outbox.Draft(
            answer.member, phone, Message.CALL, texts.call_body(case, answer.member),
            dedupe_key=f"c{case.id}:t{case.token}:r{rung}:s{step}:call:m{answer.member.id}",
            rung=rung, not_before=now + timedelta(minutes=minutes)))
    called = [draft.member.name for draft, row in
              zip(drafts, outbox.add_all(case, drafts, now=now), strict=True)
              if row is not None and draft.member is not None]
    if not called:
        return ""
    return f"；{texts.duration(timedelta(minutes=minutes))}内未接单将来电提醒{'、'.join(called)}"


def _record_escalation(case: Case, rung: int, reason: str, now: datetime) -> None:
    data: dict[str, Any] = {"rung": rung}
    if rung != Rung.DISTRICT:  # the referral event tells residents about the district
        data["shown"] = True
    record(case, EventKind.ESCALATED, f"{reason}，升级到第{rung}级（{words.rung(rung)}）", at=now,
           **data)
    groups.post(case, f"t{case.token}:up{rung}", f"已上报{words.rung(rung)}", reason, now)


def alert_duty_desk(case: Case, now: datetime, why: str) -> None:
    """Nobody takes the case at any rung: alert the community's duty desk (on duty first, else
    all of it), and say so on the timeline."""
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
                   texts.stuck_body(case, answer.member),
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


def remind(case: Case, acceptor: Member, now: datetime, due: datetime | None) -> None:
    """The acceptor is not on site in time: remind them, and give them one more rung-wait."""
    policy = policy_of(case)
    contact = duty.working_contact(acceptor)
    minutes = texts.duration(timedelta(minutes=float(policy["on_site_minutes"])))
    if contact is not None:
        outbox.add(case, acceptor, contact, Message.REMINDER,
                   texts.reminder_body(case, acceptor),
                   dedupe_key=f"c{case.id}:t{case.token}:reminder:m{acceptor.id}", now=now,
                   rung=case.accepted_rung or case.rung)
    record(case, EventKind.REMINDED,
           f"{acceptor.name}接单 {minutes} 后仍未到场，"
           + ("已发提醒" if contact is not None else "但没有可用的联系方式，无法提醒"),
           at=now, member_id=acceptor.id, due=due.isoformat() if due else None)
    case.step = 1
    case.next_step_at = now + timedelta(minutes=float(policy["rung_minutes"]))
