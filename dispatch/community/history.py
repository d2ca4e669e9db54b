"""Past cases for a demo community, made through the lifecycle, so the dashboard has something
to show on first look (`flask community demo --history 90`).

Each case is filed, asked, accepted, on site, resolved and answered by the same functions a
live case goes through, at past moments: the ladder asks whoever the roster had on duty then,
a slow building passes the case up to the grid, neighbours report the same problem again, and
the 回访 answers are mostly, not always, happy. Nothing decided here is ever queued (the
steps and messages of the past are long overdue): the messages are recorded and cancelled.
Every case ends resolved or closed, so the sweeper finds nothing to do.

Not imported by `dispatch.community` itself: it needs the case package, which needs the
community's settings.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import sqlalchemy as sa

from dispatch import clock, jobs
from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.community import settings
from dispatch.db import db
from dispatch.models import (
    Case,
    CaseStatus,
    Community,
    Notification,
    NotificationStatus,
    Place,
    PlaceKind,
    ReportKind,
    Solved,
)
from dispatch.roster import routing

#: (category, weight, what a resident writes): the mix of a year of 东湖's reports.
MIX: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("repair", 30, ("楼道灯不亮了", "水管漏水，楼下天花板在滴水", "单元门禁坏了，关不上")),
    ("elevator", 18, ("电梯停在8楼不动", "电梯门关不上", "电梯有异响，晃得厉害")),
    ("sanitation", 22, ("垃圾桶满了没人清", "楼道里堆了很多杂物", "绿化带有人乱倒垃圾")),
    ("noise", 14, ("楼上装修晚上还在打钻", "广场舞音响太大声", "半夜有人在楼道喧哗")),
    ("safety", 10, ("消防通道被车堵住了", "楼道里有人给电动车充电", "井盖松了，有孩子在附近玩")),
)


@dataclass(frozen=True, slots=True)
class Seeded:
    """What seeding made: cases, and reports (a case may have several)."""

    cases: int
    reports: int


def seed(community: Community, days: int, now: datetime, *, seed: int = 2018,
         per_day: float = 4.0) -> Seeded:
    """Seed `days` days of settled cases up to `now` (about `per_day` a day); commits."""
    rng = random.Random(seed)
    places = list(db.session.scalars(sa.select(Place).where(
        Place.community_id == community.id,
        Place.kind.in_((PlaceKind.UNIT, PlaceKind.ELEVATOR, PlaceKind.AREA)))
        .order_by(Place.id)))
    known = {c.code for c in settings.categories(community)}
    mix = [(code, weight, texts) for code, weight, texts in MIX if code in known]
    if not places or not mix:
        return Seeded(0, 0)
    made: list[int] = []
    reports = 0
    zone = clock.zone(community.timezone)
    first = clock.local(now, zone).date() - timedelta(days=days)
    with jobs.discarding():
        for day in range(days):
            midnight = datetime.combine(first + timedelta(days=day), time(0), zone)
            for _ in range(_poisson(rng, per_day)):
                reported = midnight + timedelta(minutes=_minute_of_day(rng))
                if reported >= now - timedelta(hours=6):
                    continue
                code, texts = _pick(rng, mix)
                place = _place_for(rng, places, code)
                case_id, count = _one_case(rng, place, code, rng.choice(texts), reported, now)
                made.append(case_id)
                reports += count
        _cancel_messages(made, now)
    return Seeded(len(set(made)), reports)


def _one_case(rng: random.Random, place: Place, category: str, text: str, at: datetime,
              now: datetime) -> tuple[int, int]:
    """File a case and take it through its life; returns its id and how many reports."""
    kind = rng.choices((ReportKind.MESSAGE, ReportKind.CALL, ReportKind.PHONE), (70, 20, 10))[0]
    case = file_report(place, category, kind=kind, text=text, now=at).case
    reports = 1
    lifecycle.run_step(case.id, case.token, now=at)
    if rng.random() < 0.15:  # a neighbour reports it too
        file_report(place, category, kind=ReportKind.ME_TOO, now=at + timedelta(minutes=3))
        reports += 1
    accepted = _accept(rng, case.id, at)
    if accepted is None:
        return case.id, reports
    member_id, taken = accepted
    arrived = taken + timedelta(minutes=rng.uniform(5, 45))
    lifecycle.on_site(case.id, member_id, now=arrived)
    hours = rng.lognormvariate(math.log(2.0), 0.9)
    resolved = min(arrived + timedelta(hours=min(hours, 72)), now - timedelta(minutes=1))
    lifecycle.resolve(case.id, member_id, rng.choice(("已处理", "已修好", "已清理", "已协调解决")),
                      now=resolved)
    answered = resolved + timedelta(hours=rng.uniform(6, 48))
    if answered < now and rng.random() < 0.9:
        solved = rng.choices((Solved.YES, Solved.PARTLY), (92, 8))[0]
        stars = rng.choices((5, 4, 3, 2), (60, 28, 9, 3))[0]
        done = db.session.get_one(Case, case.id)
        lifecycle.answer_callback(done, solved=solved, contacted=True, satisfaction=stars,
                                  now=answered)
    return case.id, reports


def _accept(rng: random.Random, case_id: int, at: datetime) -> tuple[int, datetime] | None:
    """Someone asked takes the case: usually at the building within minutes, sometimes only
    after the ladder went up a rung or two; returns who and when (None: nobody to take it)."""
    wait = timedelta(minutes=rng.lognormvariate(math.log(4), 0.8))
    for _ in range(3):
        case = db.session.get_one(Case, case_id)
        db.session.refresh(case)
        if case.status != CaseStatus.OPEN:
            return None
        due = case.next_step_at
        if due is None or at + wait < due:
            break
        lifecycle.run_step(case.id, case.token, now=due)  # nobody in time: up a rung
        at, wait = due, timedelta(minutes=rng.lognormvariate(math.log(6), 0.7))
    case = db.session.get_one(Case, case_id)
    member_id = _asked(case) or _anyone(case)
    if member_id is None:
        return None
    lifecycle.accept(case.id, member_id, now=at + wait)
    return member_id, at + wait


def _asked(case: Case) -> int | None:
    """A member the ladder asked at the case's current rung."""
    return db.session.scalar(sa.select(Notification.member_id).where(
        Notification.case_id == case.id, Notification.rung == case.rung,
        Notification.purpose == "alert").order_by(Notification.id).limit(1))


def _anyone(case: Case) -> int | None:
    found = routing.answering_for(case.place, case.category)
    return found[0].member.id if found else None


def _cancel_messages(case_ids: list[int], now: datetime) -> None:
    """The history's messages were never sent: they are recorded as cancelled, not queued."""
    if not case_ids:
        return
    db.session.execute(
        sa.update(Notification)
        .where(Notification.case_id.in_(case_ids),
               Notification.status == NotificationStatus.PENDING)
        .values(status=NotificationStatus.CANCELLED, updated_at=now,
                last_error="demo history: never sent"))
    db.session.commit()


def _poisson(rng: random.Random, mean: float) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _minute_of_day(rng: random.Random) -> float:
    """A local minute of the day: residents report mostly 7:00–22:00, most in the evening."""
    hour = rng.choices(range(24), (1, 1, 0, 0, 0, 1, 2, 5, 8, 9, 8, 7, 6, 6, 6, 7, 8, 9, 10,
                                   10, 8, 6, 4, 2))[0]
    return hour * 60 + rng.uniform(0, 60)


def _pick(rng: random.Random, mix: list[tuple[str, int, tuple[str, ...]]]
          ) -> tuple[str, tuple[str, ...]]:
    code, _, texts = rng.choices(mix, [weight for _, weight, _ in mix])[0]
    return code, texts


def _place_for(rng: random.Random, places: list[Place], category: str) -> Place:
    """Lift problems happen in lifts; the rest anywhere."""
    if category == "elevator":
        lifts = [p for p in places if p.kind == PlaceKind.ELEVATOR]
        if lifts:
            return rng.choice(lifts)
    return rng.choice(places)
