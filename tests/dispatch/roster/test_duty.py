"""Who is on duty: pure evaluation over an Asia/Shanghai week, with a clock we choose."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from dispatch.models import (
    Channel,
    Contact,
    ContactStatus,
    DutyOverride,
    Member,
    MemberKind,
    OverrideKind,
    Shift,
)
from dispatch.roster.duty import in_shift, on_duty, working_contact

SHANGHAI = ZoneInfo("Asia/Shanghai")
_ids = iter(range(1, 1000))


def local(text: str) -> datetime:
    """An aware instant from Shanghai wall-clock time, e.g. '2026-11-30 08:30' (a Monday)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI)


def create_member(code: str, *, shifts: list[tuple[int, str, str]] = (), dnd: str | None = None,
                  phone: str | None = "13800138000", active: bool = True,
                  channels: list[str] | None = None) -> Member:
    """A member in memory: shifts as (weekday, "08:30", "17:30"), dnd as "22:00-07:00"."""
    member = Member(id=next(_ids), code=code, name=f"成员{code}", kind=MemberKind.VOLUNTEER,
                    active=active, channel_order=channels or ["sms"])
    if dnd:
        start, end = dnd.split("-")
        member.dnd_start, member.dnd_end = _clock(start), _clock(end)
    for weekday, starts, ends in shifts:
        member.shifts.append(Shift(weekday=weekday, starts=_clock(starts), ends=_clock(ends)))
    if phone:
        member.contacts.append(Contact(channel=Channel.SMS, address=phone,
                                       status=ContactStatus.OK, priority=0))
    return member


def _clock(text: str) -> time:
    hour, minute = map(int, text.split(":"))
    return time(hour % 24, minute)


def give_leave(member: Member, starts: str, ends: str, stand_in: Member | None = None,
               kind: OverrideKind = OverrideKind.LEAVE, note: str | None = None) -> None:
    member.overrides.append(DutyOverride(kind=kind, starts_at=local(starts), ends_at=local(ends),
                                         stand_in=stand_in, note=note))


def reachable(members: list[Member], at: str, *, urgent: bool = False) -> list[str]:
    return [d.member.code for d in on_duty(members, local(at), "Asia/Shanghai", urgent=urgent)
            if d.reachable]


def week_roster() -> list[Member]:
    """Day desk Mon–Fri, a Monday night shift past midnight, an all-day Saturday, a volunteer."""
    day = create_member("DAY", shifts=[(d, "08:30", "17:30") for d in range(5)])
    night = create_member("NIGHT", shifts=[(0, "17:30", "08:30"), (6, "22:00", "06:00")])
    saturday = create_member("SAT", shifts=[(5, "00:00", "24:00")])
    volunteer = create_member("VOL", dnd="22:00-07:00")
    return [day, night, saturday, volunteer]


@pytest.mark.parametrize(("at", "expected"), [
    ("2026-11-30 08:29", ["VOL"]),  # Monday, before the day shift
    ("2026-11-30 08:30", ["DAY", "VOL"]),
    ("2026-11-30 17:29", ["DAY", "VOL"]),
    ("2026-11-30 17:30", ["NIGHT", "VOL"]),  # the day shift ends where the night one begins
    ("2026-11-30 23:00", ["NIGHT"]),  # the volunteer's quiet hours
    ("2026-12-01 03:00", ["NIGHT"]),  # Monday's night shift runs past midnight into Tuesday
    ("2026-12-01 08:29", ["NIGHT", "VOL"]),
    ("2026-12-01 08:30", ["DAY", "VOL"]),
    ("2026-12-01 20:00", ["VOL"]),  # no Tuesday night shift
    ("2026-12-05 00:00", ["SAT"]),  # 00:00–24:00 is the whole Saturday…
    ("2026-12-05 23:59", ["SAT"]),
    ("2026-12-06 00:00", []),  # …and not a minute of Sunday; the volunteer is asleep
    ("2026-12-06 12:00", ["VOL"]),
    ("2026-12-06 22:00", ["NIGHT"]),
    ("2026-12-07 05:59", ["NIGHT"]),  # Sunday night runs into Monday
    ("2026-12-07 06:00", []),
])
def test_a_shanghai_week_with_overnight_and_all_day_shifts(at: str, expected: list[str]) -> None:
    assert reachable(week_roster(), at) == expected


def test_urgent_cases_break_do_not_disturb_and_say_so() -> None:
    volunteer = create_member("VOL", dnd="22:00-07:00")
    [normal] = on_duty([volunteer], local("2026-11-30 23:00"), SHANGHAI)
    [urgent] = on_duty([volunteer], local("2026-11-30 23:00"), SHANGHAI, urgent=True)
    assert not normal.reachable and normal.reason == "免打扰时段 22:00–07:00"
    assert urgent.reachable and "紧急事项照常通知" in urgent.reason


def test_a_rostered_shift_beats_do_not_disturb() -> None:
    warden = create_member("W", shifts=[(0, "22:00", "06:00")], dnd="22:00-07:00")
    assert reachable([warden], "2026-11-30 23:00") == ["W"]


def test_leave_skips_the_member_and_brings_in_the_stand_in_whatever_their_shifts() -> None:
    day, night, _, _ = week_roster()
    give_leave(day, "2026-12-02 00:00", "2026-12-03 00:00", stand_in=night, note="出差")
    answers = on_duty([day], local("2026-12-02 10:00"), SHANGHAI)
    assert [(a.member.code, a.reachable) for a in answers] == [("DAY", False), ("NIGHT", True)]
    assert answers[0].reason == "请假中（出差），由成员NIGHT代班"
    assert answers[1].covering_for is day
    assert reachable([day], "2026-12-03 10:00") == ["DAY"]  # the leave is over


def test_an_on_duty_override_puts_someone_on_duty_outside_their_shifts_and_quiet_hours() -> None:
    day = create_member("DAY", shifts=[(0, "08:30", "17:30")], dnd="22:00-07:00")
    give_leave(day, "2026-12-05 20:00", "2026-12-06 08:00", kind=OverrideKind.ON_DUTY)
    assert reachable([day], "2026-12-05 23:30") == ["DAY"]
    assert reachable([day], "2026-12-06 08:00") == []


def test_a_member_listed_twice_keeps_the_answer_that_reaches_them() -> None:
    day, night, _, _ = week_roster()
    give_leave(day, "2026-12-02 00:00", "2026-12-03 00:00", stand_in=night)
    answers = on_duty([night, day], local("2026-12-02 10:00"), SHANGHAI)
    assert [(a.member.code, a.reachable) for a in answers] == [("NIGHT", True), ("DAY", False)]
    assert answers[0].covering_for is day


@pytest.mark.parametrize(("member", "reason"), [
    (create_member("OFF", active=False), "已停用"),
    (create_member("NOPHONE", phone=None), "随时可联系，但没有可用的联系方式（请核对号码）"),
])
def test_inactive_members_and_members_without_a_contact_are_skipped_with_a_reason(
        member: Member, reason: str) -> None:
    [answer] = on_duty([member], local("2026-11-30 10:00"), SHANGHAI)
    assert not answer.reachable
    assert answer.reason == reason


def test_a_broken_number_is_not_a_working_contact_and_the_channel_order_decides() -> None:
    member = create_member("M", phone="13800000001", channels=["voice", "sms"])
    member.contacts[0].status = ContactStatus.BROKEN
    member.contacts.append(Contact(channel=Channel.SMS, address="13800000002",
                                   status=ContactStatus.OK, priority=1))
    member.contacts.append(Contact(channel=Channel.VOICE, address="13800000002",
                                   status=ContactStatus.OK, priority=2))
    contact = working_contact(member)
    assert contact is not None and (contact.channel, contact.address) == (Channel.VOICE,
                                                                         "13800000002")


def test_the_next_channel_and_a_phone_that_rings_come_from_the_same_rule() -> None:
    member = create_member("M", phone="13800000001", channels=["push", "sms", "voice"])
    member.contacts.append(Contact(channel=Channel.VOICE, address="13800000001",
                                   status=ContactStatus.OK, priority=1))
    member.contacts.append(Contact(channel=Channel.PUSH, address="https://push.example/1",
                                   status=ContactStatus.OK, priority=0))
    assert working_contact(member).channel == Channel.PUSH  # their own order
    assert working_contact(member, skip={"push"}).channel == Channel.SMS  # the next one
    assert working_contact(member, skip={"push", "sms", "voice"}) is None
    ringing = working_contact(member, channels=(Channel.VOICE, Channel.SMS))
    assert ringing is not None and ringing.channel == Channel.VOICE  # a call rings a phone


def test_a_shift_ending_at_its_own_start_lasts_twenty_four_hours() -> None:
    shift = Shift(weekday=0, starts=time(8), ends=time(8))
    assert in_shift(shift, local("2026-11-30 08:00"))
    assert in_shift(shift, local("2026-12-01 07:59"))
    assert not in_shift(shift, local("2026-12-01 08:00"))
