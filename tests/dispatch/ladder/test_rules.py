"""Ladder arithmetic: pure functions of a rung, a policy and a clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dispatch.community.settings import DEFAULT_POLICIES
from dispatch.ladder.rules import (
    Move,
    MoveKind,
    WorkingHours,
    add_working_time,
    next_move,
    next_working_start,
    step_due,
    wait_at,
)
from dispatch.models import Rung, Urgency

SHANGHAI = ZoneInfo("Asia/Shanghai")
URGENT, NORMAL, LOW = (DEFAULT_POLICIES[u] for u in (Urgency.URGENT, Urgency.NORMAL, Urgency.LOW))
OFFICE = WorkingHours.parse("Mon-Fri 08:30-17:30")


def local(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI)


@pytest.mark.parametrize(("rung", "step", "expected"), [
    (1, 0, Move(MoveKind.NOTIFY, 1)),  # a new case asks the building
    (1, 1, Move(MoveKind.ESCALATE, 2)),
    (3, 1, Move(MoveKind.ESCALATE, 4)),
    (4, 0, Move(MoveKind.NOTIFY, 4)),  # arrived at the top because the rungs below were empty
    (4, 1, Move(MoveKind.REPEAT, 4)),
    (4, 2, Move(MoveKind.REPEAT, 4)),
    (4, 3, Move(MoveKind.STUCK, 4)),  # asked 1 + repeat_last times
])
def test_the_ladder_climbs_then_repeats_the_top_rung_then_is_stuck(
        rung: int, step: int, expected: Move) -> None:
    assert next_move(rung, step, top=Rung.DISTRICT, repeat_last=2) == expected


def test_a_community_without_a_district_rule_repeats_its_community_rung() -> None:
    assert next_move(3, 1, top=Rung.COMMUNITY, repeat_last=1) == Move(MoveKind.REPEAT, 3)
    assert next_move(3, 2, top=Rung.COMMUNITY, repeat_last=1) == Move(MoveKind.STUCK, 3)


@pytest.mark.parametrize(("policy", "rung", "wait"), [
    (URGENT, Rung.BUILDING, timedelta(minutes=5)),
    (URGENT, Rung.COMMUNITY, timedelta(minutes=5)),
    (NORMAL, Rung.GRID, timedelta(minutes=30)),
    (URGENT, Rung.DISTRICT, timedelta(hours=24)),  # the referral's own deadline
    (NORMAL, Rung.DISTRICT, timedelta(hours=72)),
])
def test_each_rung_waits_its_policy_minutes_and_the_district_its_referral_hours(
        policy: dict, rung: int, wait: timedelta) -> None:
    assert wait_at(rung, policy) == wait


def test_urgent_and_normal_steps_fall_due_on_the_calendar_clock() -> None:
    asked = local("2026-12-05 23:58")  # a Saturday night
    assert step_due(asked, Rung.BUILDING, URGENT, SHANGHAI) == local("2026-12-06 00:03")
    assert step_due(asked, Rung.GRID, NORMAL, SHANGHAI) == local("2026-12-06 00:28")


@pytest.mark.parametrize(("asked", "due"), [
    ("2026-11-30 09:00", "2026-11-30 13:00"),  # four working hours on a Monday
    ("2026-12-04 16:30", "2026-12-07 11:30"),  # Friday 16:30: one hour now, three on Monday
    ("2026-12-05 10:00", "2026-12-07 12:30"),  # asked on a Saturday: counting starts Monday
    ("2026-11-30 20:00", "2026-12-01 12:30"),
])
def test_low_urgency_waits_count_working_hours_only(asked: str, due: str) -> None:
    assert step_due(local(asked), Rung.BUILDING, LOW, SHANGHAI) == local(due)


def test_a_low_referral_deadline_runs_in_calendar_hours_then_waits_for_office_hours() -> None:
    asked = local("2026-11-30 10:00")  # Monday; 168 hours later is the next Monday 10:00
    assert step_due(asked, Rung.DISTRICT, LOW, SHANGHAI) == local("2026-12-07 10:00")
    friday = local("2026-11-27 18:00")  # 168 h later is Friday 18:00, after hours: Monday 08:30
    assert step_due(friday, Rung.DISTRICT, LOW, SHANGHAI) == local("2026-12-07 08:30")


@pytest.mark.parametrize(("at", "start"), [
    ("2026-11-30 10:00", "2026-11-30 10:00"),  # inside: now
    ("2026-11-30 08:00", "2026-11-30 08:30"),
    ("2026-11-30 17:30", "2026-12-01 08:30"),
    ("2026-12-04 18:00", "2026-12-07 08:30"),  # Friday evening → Monday morning
])
def test_the_next_working_start_is_now_inside_office_hours_else_the_next_opening(
        at: str, start: str) -> None:
    assert next_working_start(local(at), OFFICE, SHANGHAI) == local(start)


def test_working_hours_may_run_past_midnight() -> None:
    nights = WorkingHours.parse("daily 22:00-06:00")
    assert add_working_time(local("2026-11-30 21:00"), timedelta(hours=3), nights,
                            SHANGHAI) == local("2026-12-01 01:00")
    assert next_working_start(local("2026-12-01 05:00"), nights, SHANGHAI) == local(
        "2026-12-01 05:00")


def test_working_hours_are_read_as_written_in_the_community_file() -> None:
    hours = WorkingHours.parse("周一至周五 08:30-17:30")
    assert hours == OFFICE
    with pytest.raises(ValueError):
        WorkingHours.parse("weekdays")
