"""The ladder, driven on SQLite with the embedded runner and a clock the test moves.

The process clock is held (`tests/clock.py`) and `tick(at)` is the world at instant `at`: the
clock moves there, the sweeper takes every step due by then and the embedded runner runs what
is due by then. A job queued for a later time waits for the tick that reaches it, whatever
today's date is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask, current_app
from flask_babel import force_locale

from dispatch import jobs
from dispatch.case import lifecycle
from dispatch.case.lifecycle import ActionRefused
from dispatch.case.report import file_report
from dispatch.case.timeline import EventKind
from dispatch.db import db
from dispatch.jobs import sweeper
from dispatch.models import (
    Case,
    CaseEvent,
    CaseStatus,
    Channel,
    Community,
    Contact,
    Notification,
    NotificationStatus,
)
from dispatch.resident import timeline
from tests import clock, factories
from tests.clock import MIN, SHANGHAI
from tests.factories import member, place

MONDAY = clock.START  # the duty desk is on its day shift


@pytest.fixture
def ctx(app: Flask, frozen_clock: None) -> Iterator[Flask]:
    """The small test community, inside an app context, the clock held at MONDAY."""
    with app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        yield app


def tick(at: datetime) -> None:
    """Everything due by `at` happens: steps are taken, queued messages sent."""
    clock.move_to(at)
    sweeper.sweep(at, grace=timedelta(0))
    jobs.runner(current_app).drain()
    db.session.expire_all()


def report(code: str, category: str, at: datetime, text: str | None = None) -> Case:
    filed = file_report(place(code), category, text=text, now=at)
    tick(at)
    return filed.case


def shown(event: CaseEvent, language: str = "zh") -> str | None:
    """What a resident reading the case's page in `language` sees for the event."""
    with current_app.test_request_context(), force_locale(language):
        return timeline.event_text(event)


def events(case: Case, *kinds: EventKind) -> list[CaseEvent]:
    return [e for e in case.events if not kinds or e.kind in kinds]


def alerts(case: Case, **where: object) -> list[Notification]:
    query = sa.select(Notification).where(Notification.case_id == case.id)
    for column, value in where.items():
        query = query.where(getattr(Notification, column) == value)
    return list(db.session.scalars(query.order_by(Notification.id)))


def paged(case: Case, rung: int) -> list[str]:
    return [n.member.code for n in alerts(case, purpose="alert", rung=rung)]


def test_an_urgent_case_climbs_every_rung_on_time_then_is_referred_repeated_and_stuck(
        ctx: Flask) -> None:
    case = report("TS-B1-U1-E1", "elevator", MONDAY, text="电梯困人")
    assert paged(case, 1) == ["L1", "E1"]  # the building leader and the lift maintainer
    assert {n.status for n in alerts(case)} == {NotificationStatus.SENT}
    assert case.first_notified_at is not None and case.next_step_at == MONDAY + 5 * MIN

    tick(MONDAY + 5 * MIN - timedelta(seconds=1))
    assert paged(case, 2) == []
    tick(MONDAY + 5 * MIN)
    assert paged(case, 2) == ["S1"] and case.rung == 2
    tick(MONDAY + 10 * MIN)
    assert paged(case, 3) == ["D1"]
    tick(MONDAY + 15 * MIN)
    assert paged(case, 4) == ["X1"]
    assert case.referred_at == MONDAY + 15 * MIN
    assert case.referral_due_at == MONDAY + 15 * MIN + timedelta(hours=24)
    tick(MONDAY + 20 * MIN)  # a referral waits its own deadline, not five minutes
    assert paged(case, 4) == ["X1"]
    tick(case.referral_due_at)
    tick(case.next_step_at)
    assert paged(case, 4) == ["X1", "X1", "X1"]  # asked, then repeated twice
    assert case.stuck_at is None
    tick(case.next_step_at)
    assert case.stuck_at is not None and case.next_step_at is None
    assert [n.member.code for n in alerts(case, purpose="stuck")] == ["D1"]
    assert case.status == CaseStatus.OPEN  # still open: staff must step in

    kinds = [e.kind for e in case.events]
    assert kinds == ["reported", "notified", "escalated", "notified", "escalated", "notified",
                     "escalated", "notified", "referred", "notified", "notified", "stuck"]
    escalated = events(case, EventKind.ESCALATED)
    assert escalated[0].message == "第1级（楼栋）5 分钟内无人接单，升级到第2级（网格）"
    assert [shown(e) for e in escalated] == ["已上报网格", "已上报社区", None]
    assert [shown(e, "en") for e in escalated] == [
        "Passed up to the grid", "Passed up to the community", None]
    notified = events(case, EventKind.NOTIFIED)[0]
    assert shown(notified) == "已通知1栋党小组、电梯维保单位"
    assert shown(notified, "en") == (
        "Notified the building's party group, the elevator maintainer")


def test_nobody_reachable_at_a_rung_sends_the_case_up_at_once_with_the_reason(ctx: Flask) -> None:
    case = report("TS-B1-U1", "repair", MONDAY)  # repairs go to a property desk it lacks
    assert paged(case, 1) == [] and paged(case, 2) == ["S1"]
    skipped, escalated = events(case, EventKind.SKIPPED, EventKind.ESCALATED)
    assert skipped.message == "第1级（楼栋）无人可通知，立即升级"
    assert shown(escalated) == "已上报网格"
    assert case.next_step_at == MONDAY + 30 * MIN  # the normal policy's rung-wait


def test_a_member_in_quiet_hours_is_skipped_for_a_normal_case_and_the_timeline_says_why(
        ctx: Flask) -> None:
    night = MONDAY.replace(hour=23)
    case = report("TS-B1-U1", "noise", night)
    assert paged(case, 1) == ["B1"]
    [skipped] = events(case, EventKind.SKIPPED)
    assert skipped.message == "跳过李建国（楼栋长）：免打扰时段 22:00–07:00"
    lift = report("TS-B1-U1-E1", "elevator", night)  # urgent: quiet hours do not hold
    assert paged(lift, 1) == ["L1", "E1"]


def test_accepting_at_the_grid_rung_stops_the_ladder_and_tells_everyone_paged(
        ctx: Flask) -> None:
    case = report("TS-B1-U1-E1", "elevator", MONDAY)
    tick(MONDAY + 5 * MIN)
    lifecycle.accept(case.id, member("S1").id, now=MONDAY + 6 * MIN)
    tick(MONDAY + 6 * MIN)
    assert (case.status, case.accepted_by.code, case.accepted_rung) == ("accepted", "S1", 2)
    taken = alerts(case, purpose="taken")
    assert sorted(n.member.code for n in taken) == ["E1", "L1"]
    assert all("已由张伟接单" in n.body and n.status == NotificationStatus.SENT for n in taken)
    accepted = events(case, EventKind.ACCEPTED)[0]
    assert shown(accepted) == "张师傅已接单"
    assert shown(accepted, "en") == "张师傅 has taken it"
    tick(MONDAY + 20 * MIN)
    assert paged(case, 3) == []  # the ladder stopped
    assert lifecycle.accept(case.id, member("S1").id).accepted_by.code == "S1"  # idempotent
    with pytest.raises(ActionRefused, match="已由张伟接单"):
        lifecycle.accept(case.id, member("L1").id)


def test_an_alert_not_yet_sent_is_cancelled_when_the_case_is_taken(ctx: Flask) -> None:
    filed = file_report(place("TS-B1-U1-E1"), "elevator", now=MONDAY)
    lifecycle.run_step(filed.case.id, filed.case.token, now=MONDAY)  # sends stay queued
    lifecycle.accept(filed.case.id, member("L1").id, now=MONDAY + MIN)
    jobs.runner(current_app).drain()
    case = db.session.get(Case, filed.case.id)
    statuses = {n.member.code: n.status for n in alerts(case, purpose="alert")}
    assert statuses == {"L1": NotificationStatus.CANCELLED, "E1": NotificationStatus.CANCELLED}
    assert alerts(case, purpose="taken") == []  # nobody was paged, so nobody is told


def test_a_duplicate_stale_or_early_step_job_does_nothing(ctx: Flask) -> None:
    case = report("TS-B1-U1-E1", "elevator", MONDAY)
    before = (len(case.events), len(alerts(case)), case.token)
    assert not lifecycle.run_step(case.id, 0, now=MONDAY + MIN)  # the first step's job, again
    assert not lifecycle.run_step(case.id, case.token, now=MONDAY + MIN)  # not due yet
    assert not lifecycle.run_step(case.id, case.token - 1, now=MONDAY + 30 * MIN)  # stale
    db.session.expire_all()
    assert (len(case.events), len(alerts(case)), case.token) == before
    assert lifecycle.run_step(case.id, case.token, now=MONDAY + 5 * MIN)


def test_the_acceptor_is_reminded_then_the_case_goes_up_again(ctx: Flask) -> None:
    case = report("TS-B1-U1-E1", "elevator", MONDAY)
    lifecycle.accept(case.id, member("L1").id, now=MONDAY + MIN)
    tick(MONDAY + 30 * MIN)
    assert alerts(case, purpose="reminder") == []
    tick(MONDAY + 31 * MIN)  # urgent: on site within 30 minutes
    [reminder] = alerts(case, purpose="reminder")
    assert reminder.member.code == "L1" and "/m/on_site/" in reminder.body
    tick(MONDAY + 36 * MIN)
    assert case.status == CaseStatus.OPEN and case.accepted_by is None
    assert paged(case, 2) == ["S1"]
    assert events(case, EventKind.ESCALATED)[-1].message == (
        "李建国接单后提醒仍未到场，升级到第2级（网格）")
    assert case.accepted_at == MONDAY + MIN  # the first response is kept for the figures


def test_on_site_stops_the_timer_and_resolving_frees_the_place_for_a_new_case(
        ctx: Flask) -> None:
    case = report("TS-B1-U1-E1", "elevator", MONDAY)
    lifecycle.on_site(case.id, member("E1").id, now=MONDAY + 3 * MIN)  # accepts on the way
    tick(MONDAY + 2 * 60 * MIN)
    assert (case.status, case.on_site_at, case.next_step_at) == ("on_site", MONDAY + 3 * MIN,
                                                                  None)
    assert paged(case, 2) == []
    lifecycle.resolve(case.id, member("E1").id, "更换了门机皮带", now=MONDAY + 50 * MIN)
    db.session.expire_all()
    assert (case.status, case.resolved_at, case.closed_rung, case.open_key) == (
        "resolved", MONDAY + 50 * MIN, 1, None)
    assert [shown(e) for e in events(case, EventKind.ACCEPTED, EventKind.ON_SITE,
                                     EventKind.RESOLVED)] == [
        "陈师傅已接单", "陈师傅已到场", "陈师傅已处理完毕"]
    again = file_report(place("TS-B1-U1-E1"), "elevator", now=MONDAY + 60 * MIN)
    assert again.opened and again.case.id != case.id


def test_a_reopened_case_climbs_again_from_the_building(ctx: Flask) -> None:
    case = report("TS-B1-U1-E1", "elevator", MONDAY)
    lifecycle.resolve(case.id, member("L1").id, "", now=MONDAY + 10 * MIN)
    lifecycle.reopen(db.session.get(Case, case.id), "没修好", now=MONDAY + 60 * MIN)
    tick(MONDAY + 60 * MIN)
    assert case.status == CaseStatus.OPEN and case.rung == 1
    assert paged(case, 1) == ["L1", "E1", "L1", "E1"]  # asked again, as new decisions
    tick(MONDAY + 65 * MIN)
    assert paged(case, 2) == ["S1"]


def test_handing_over_an_accepted_case_makes_the_colleague_responsible(ctx: Flask) -> None:
    case = report("TS-B1-U1", "noise", MONDAY)
    lifecycle.accept(case.id, member("L1").id, now=MONDAY + MIN)
    lifecycle.hand_over(case.id, member("L1").id, member("B1").id, now=MONDAY + 2 * MIN)
    tick(MONDAY + 2 * MIN)
    assert case.accepted_by.code == "B1" and case.status == CaseStatus.ACCEPTED
    [handover] = alerts(case, purpose="handover")
    assert handover.member.code == "B1" and "李建国把噪音扰民" in handover.body
    assert shown(events(case, EventKind.HANDED_OVER)[0]) == "已转交王师傅处理"
    with pytest.raises(ActionRefused, match="不能转交给自己"):
        lifecycle.hand_over(case.id, member("B1").id, member("B1").id)


def test_escalate_now_asks_the_next_rung_at_once(ctx: Flask) -> None:
    case = report("TS-B1-U1", "noise", MONDAY)
    lifecycle.escalate(case.id, member_id=member("B1").id, now=MONDAY + 2 * MIN)
    tick(MONDAY + 2 * MIN)
    assert paged(case, 2) == ["S1"]
    assert events(case, EventKind.ESCALATED)[0].message == (
        "王秀英要求立即升级，升级到第2级（网格）")
    assert case.next_step_at == MONDAY + 32 * MIN


def test_a_low_urgency_case_waits_for_working_hours(ctx: Flask) -> None:
    saturday = datetime(2026, 12, 5, 10, 0, tzinfo=SHANGHAI)
    case = report("TS-B1-U1", "sanitation", saturday)
    assert paged(case, 1) == []
    [note] = events(case, EventKind.NOTE)
    assert note.message == "非工作时间，顺延至12月7日 周一 08:30通知"
    # The resident's page words the wait when it is read, in local time and their language.
    assert shown(note) == "已受理，将在工作时间（12月7日 08:30）通知处理"
    assert shown(note, "en") == "Received; it will be passed on in working hours (Dec 7 08:30)"
    monday = datetime(2026, 12, 7, 8, 30, tzinfo=SHANGHAI)
    tick(monday)
    assert paged(case, 1) == ["L1", "B1"]
    assert case.next_step_at == monday + timedelta(hours=4)


def test_timeline_texts_never_carry_phone_numbers_and_public_ones_no_full_names(
        ctx: Flask) -> None:
    case = report("TS-B1-U1-E1", "elevator", MONDAY)
    for minutes in (5, 10, 15):
        tick(MONDAY + minutes * MIN)
    lifecycle.accept(case.id, member("X1").id, now=MONDAY + 16 * MIN)
    lifecycle.on_site(case.id, member("X1").id, now=MONDAY + 20 * MIN)
    lifecycle.resolve(case.id, member("X1").id, "已处理", now=MONDAY + 30 * MIN)
    texts = [e.message for e in case.events] + [str(e.data) for e in case.events]
    assert not [t for t in texts if re.search(r"1[3-9]\d{9}", t)]
    public = " ".join(shown(e, language) or "" for e in case.events for language in ("zh", "en"))
    for full_name in ("李建国", "王秀英", "张伟", "刘芳", "陈磊", "赵强"):
        assert full_name not in public
    assert "赵师傅已接单" in public


def give_a_phone_that_rings(code: str) -> None:
    found = member(code)
    found.contacts.append(Contact(channel=Channel.VOICE, address=found.contacts[0].address,
                                  priority=1, created_at=MONDAY))
    db.session.commit()


def test_urgent_means_a_call_when_the_first_channel_is_not_answered_in_two_minutes(
        ctx: Flask) -> None:
    give_a_phone_that_rings("L1")
    case = report("TS-B1-U1-E1", "elevator", MONDAY)  # urgent: the leader and the maintainer
    [call] = alerts(case, purpose="call")  # the maintainer has no phone that rings
    assert (call.member.code, call.channel, call.status) == ("L1", "voice", "pending")
    assert call.next_attempt_at == MONDAY + 2 * MIN
    assert "2 分钟内未接单将来电提醒李建国" in events(case, EventKind.NOTIFIED)[0].message
    tick(MONDAY + MIN)
    assert alerts(case, purpose="call")[0].status == NotificationStatus.PENDING  # not yet
    tick(MONDAY + 2 * MIN)
    assert alerts(case, purpose="call")[0].status == NotificationStatus.SENT
    assert case.next_step_at == MONDAY + 5 * MIN  # the ladder keeps its own time


def test_a_call_is_cancelled_when_someone_takes_the_case_first(ctx: Flask) -> None:
    give_a_phone_that_rings("L1")
    case = report("TS-B1-U1-E1", "elevator", MONDAY)
    lifecycle.accept(case.id, member("E1").id, now=MONDAY + MIN)
    tick(MONDAY + 3 * MIN)
    [call] = alerts(case, purpose="call")
    assert call.status == NotificationStatus.CANCELLED
    assert [n.channel for n in alerts(case, purpose="taken")] == ["sms"]  # not a second call


def test_a_normal_case_or_a_policy_without_calls_rings_nobody(ctx: Flask) -> None:
    give_a_phone_that_rings("L1")
    assert alerts(report("TS-B1-U1", "noise", MONDAY), purpose="call") == []
    factories.set_policy(db.session.scalar(sa.select(Community)), "urgent",
                         call_after_minutes=0)
    assert alerts(report("TS-B1-U1-E1", "elevator", MONDAY), purpose="call") == []
