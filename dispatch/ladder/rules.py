"""The ladder's arithmetic: pure functions of a rung, a policy snapshot and a moment.

楼栋 building → 网格 grid → 社区 community → 街道/区 district. What a due step does
(`next_move`), how long a rung has (`wait_at`) and when the next step falls due, in working
hours where a low-urgency policy names them (`step_due`). Nothing here reads the database or
the clock; `dispatch.ladder.step` applies these to a case.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dispatch.community import settings
from dispatch.community.days import parse_days
from dispatch.models import Case, Rung, Urgency


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

