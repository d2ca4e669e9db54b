"""A March of cases with known timestamps and callback answers, and the figures they must give.

Two grids: 第一网格 (the small test community's buildings) and 第二网格 (building 3), so that
grid scoping can be checked. Times are local (Asia/Shanghai) and written as the staff would
read them; `NOW` is when the figures are taken.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from dispatch.case.timeline import EventKind, record
from dispatch.community import import_data, tables_to_data
from dispatch.community.settings import category, policy
from dispatch.db import db
from dispatch.models import (
    Callback,
    Case,
    CaseStatus,
    Community,
    Member,
    Place,
    Report,
    ReportKind,
    Resolution,
    Solved,
)
from tests import factories

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 4, 5, 12, 0, tzinfo=ZONE)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def local(text: str) -> datetime:
    """'03-02 10:00' in 2026, local time."""
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=ZONE)


def two_grid_community() -> int:
    """Import the small community plus a second grid with building 3; returns its id."""
    data = factories.small_community()
    data["places"] += [
        {"code": "TS-G2", "kind": "grid", "name": "第二网格", "org_name": "第二网格党支部"},
        {"code": "TS-B3", "kind": "building", "name": "3栋", "parent": "TS-G2", "floors": 18},
        {"code": "TS-B3-U1", "kind": "unit", "name": "1单元", "parent": "TS-B3"},
    ]
    community, _ = import_data(tables_to_data(data, "small"))
    return community.id


def make_case(place: str, category_code: str, reported: datetime, *,
              accepted: timedelta | None = None, by: str | None = None, rung: int | None = None,
              on_site: timedelta | None = None, resolved: timedelta | None = None,
              closed: timedelta | None = None, closed_rung: int | None = None,
              resolution: Resolution | None = None, status: CaseStatus | None = None,
              answers: tuple[tuple[bool | None, Solved, int | None], ...] = (),
              merged_into: Case | None = None, texts: tuple[str, ...] = (),
              note: str | None = None) -> Case:
    """A case with milestones at the given offsets from `reported`, and its callbacks in order.

    `texts` are the residents' reports (one a minute from `reported`); `note` is what the
    member wrote when resolving, on a RESOLVED timeline line as `lifecycle.resolve` writes it.
    """
    spot = db.session.scalar(sa.select(Place).where(Place.code == place))
    community = spot.community
    found = category(community, category_code)
    member = db.session.scalar(sa.select(Member).where(Member.code == by)) if by else None
    if status is None:
        status = (CaseStatus.CLOSED if closed is not None else
                  CaseStatus.RESOLVED if resolved is not None else
                  CaseStatus.ON_SITE if on_site is not None else
                  CaseStatus.ACCEPTED if accepted is not None else CaseStatus.OPEN)
    def at(offset: timedelta | None) -> datetime | None:
        return None if offset is None else reported + offset

    case = Case(community_id=community.id, place_id=spot.id, category=category_code,
                urgency=found.urgency, status=status, resolution=resolution,
                policy=policy(community, found.urgency), reported_at=reported,
                accepted_at=at(accepted), accepted_by_id=member.id if member else None,
                accepted_rung=rung, on_site_at=at(on_site), resolved_at=at(resolved),
                closed_at=at(closed), closed_rung=closed_rung, report_count=1,
                merged_into_id=merged_into.id if merged_into else None,
                open_key=f"{spot.id}:{category_code}:{reported.timestamp()}"
                if status in (CaseStatus.OPEN, CaseStatus.ACCEPTED, CaseStatus.ON_SITE) else None)
    db.session.add(case)
    db.session.flush()
    for n, (contacted, solved, satisfaction) in enumerate(answers, start=1):
        db.session.add(Callback(case_id=case.id, contacted=contacted, solved=solved,
                                satisfaction=satisfaction, at=reported + n * 2 * DAY))
    for n, text in enumerate(texts):
        db.session.add(Report(case_id=case.id, place_id=spot.id, kind=ReportKind.MESSAGE,
                              category=category_code, text=text, created_at=reported + n * MINUTE))
    if note is not None and case.resolved_at is not None:
        name = member.name if member else "工作人员"
        record(case, EventKind.RESOLVED, f"{name}：已解决" + (f"。{note}" if note else ""),
               at=case.resolved_at, member_id=member.id if member else None, note=note)
    db.session.flush()
    return case


def march() -> dict[str, Case]:
    """The known history; see `EXPECTED` for what it adds up to."""
    cases: dict[str, Case] = {}
    cases["A"] = make_case(  # lift, accepted in 3 min at the building, fixed, 满意 after a reopen
        "TS-B1-U1-E1", "elevator", local("03-02 10:00"), accepted=3 * MINUTE, by="L1", rung=1,
        on_site=20 * MINUTE, resolved=HOUR, closed=DAY, closed_rung=1,
        resolution=Resolution.FIXED, answers=((True, Solved.NO, 2), (True, Solved.YES, 5)))
    cases["B"] = make_case(  # repair, accepted late at the grid, on site late, partly solved
        "TS-B1-U1", "repair", local("03-03 09:00"), accepted=45 * MINUTE, by="S1", rung=2,
        on_site=5 * HOUR, resolved=6 * HOUR, closed=2 * DAY, closed_rung=2,
        resolution=Resolution.FIXED, answers=((None, Solved.PARTLY, 3),))
    cases["C"] = make_case(  # noise, settled by phone (no on-site), not solved say residents
        "TS-B2-U1", "noise", local("03-10 20:00"), accepted=10 * MINUTE, by="L1", rung=1,
        resolved=2 * HOUR, closed=DAY, closed_rung=1, resolution=Resolution.FIXED,
        answers=((True, Solved.NO, 2),))
    cases["D"] = make_case(  # safety, nobody accepted, staff closed it not fixed; no answer
        "TS-G1-A1", "safety", local("03-15 12:00"), closed=2 * DAY, closed_rung=3,
        resolution=Resolution.NOT_FIXED, answers=((False, Solved.NO, None),))
    cases["E"] = make_case(  # sanitation in grid 2, referred to the street office; 基本满意
        "TS-B3-U1", "sanitation", local("03-20 08:00"), accepted=2 * HOUR, by="B1", rung=1,
        on_site=3 * HOUR, resolved=DAY, closed=3 * DAY, closed_rung=4,
        resolution=Resolution.REFERRED,
        answers=((True, Solved.YES, 4), (False, Solved.NO, None)))
    cases["F"] = make_case("TS-B3", "other", local("03-25 10:00"))  # still waiting
    cases["G"] = make_case(  # closed as spam within 10 minutes: never due
        "TS-B1", "repair", local("03-31 23:50"), closed=10 * MINUTE,
        resolution=Resolution.NOT_FIXED)
    cases["J"] = make_case(  # accepted on time, nobody has gone yet
        "TS-B2", "repair", local("03-28 15:00"), accepted=20 * MINUTE, by="L1", rung=1)
    cases["H"] = make_case(  # a duplicate merged into A: left out of every figure
        "TS-B1-U1-E1", "elevator", local("03-02 10:01"), closed=HOUR,
        resolution=Resolution.DUPLICATE, merged_into=cases["A"])
    cases["I"] = make_case(  # February: outside the period
        "TS-B1-U1", "repair", local("02-27 09:00"), accepted=5 * MINUTE, by="L1", rung=1)
    db.session.commit()
    return cases


#: What residents write, short and long, as the case sheet has to show it.
WORDS = (
    "3单元电梯停在5楼不动，按钮没反应",
    "楼道灯坏了一个星期，晚上看不见台阶，老人上下楼很危险",
    "楼上每天夜里12点以后还在装修，电钻声音很大，孩子睡不着觉，希望社区出面协调一下",
    "垃圾桶满了没人清",
    "地下车库入口有积水，车开不进去，请物业尽快抽水并检查排水沟是不是堵了",
    "单元门禁坏了，外人随便进出",
)
NOTES = ("已联系电梯维保，更换控制板后恢复运行", "换了灯泡", "已上门沟通，对方同意晚上十点后停工",
         "已通知保洁清运", "")
PLACES = (("TS-B1-U1-E1", "elevator"), ("TS-B1-U1", "repair"), ("TS-B2-U1", "noise"),
          ("TS-B3-U1", "sanitation"), ("TS-B2", "repair"), ("TS-G1-A1", "safety"))


def busy_month(count: int) -> list[Case]:
    """`count` cases in March, eight hours apart (closer if need be), most of them closed.

    Each has a resident's words and, when resolved, the member's note; every fifth was
    reported twice. Enough variety that the case sheet's columns and row heights are real.
    """
    made, step = [], min(8 * HOUR, 30 * DAY / max(count, 1))  # all of them in March
    for n in range(count):
        place, code = PLACES[n % len(PLACES)]
        handled = n % 7 != 6
        texts = (WORDS[n % len(WORDS)],) + (("我家也是这样",) if n % 5 == 0 else ())
        made.append(make_case(
            place, code, local("03-01 07:00") + n * step, texts=texts,
            accepted=(4 + n % 40) * MINUTE, by=("L1", "S1", "B1")[n % 3], rung=1 + n % 2,
            on_site=HOUR if handled else None, resolved=3 * HOUR if handled else None,
            closed=DAY if handled else None, closed_rung=1 + n % 2 if handled else None,
            resolution=Resolution.FIXED if handled else None,
            note=NOTES[n % len(NOTES)] if handled else None))
    db.session.commit()
    return made


#: The figures the March history must give (taken at `NOW`).
EXPECTED: dict[str, Any] = {
    "cases": 8, "open": 2, "accepted": 5, "due": 7, "accepted_on_time": 4,
    "response_rate": 4 / 7,
    "callbacks_due": 6, "callbacks_answered": 4, "callback_rate": 4 / 6,
    "solved": 2, "partly": 1, "not_solved": 1,
    "solve_rate": 0.5, "partly_rate": 0.25, "satisfied": 2, "satisfaction_rate": 0.5,
    "closed": 6,
    "ladder": {"building": 2, "grid": 1, "community": 1, "referred": 1, "unknown": 1},
    "retention": {"building": 2 / 6, "grid": 1 / 6, "community": 1 / 6, "referred": 1 / 6,
                  "unknown": 1 / 6},
    "sla": {
        "urgent": {"due": 2, "on_time": 1, "late": 1, "on_site_due": 1, "on_site_late": 0},
        "normal": {"due": 4, "on_time": 2, "late": 2, "on_site_due": 3, "on_site_late": 2},
        "low": {"due": 1, "on_time": 1, "late": 0, "on_site_due": 1, "on_site_late": 0},
    },
    "seconds": {
        # accept: 180, 600, 1200, 2700, 7200 → rank 3.6 for p90: 2700 + 0.6 × 4500
        "accept": {"n": 5, "median": 1200.0, "p90": 5400.0},
        # on site: 1200, 10800, 18000 → rank 1.8: 10800 + 0.8 × 7200
        "on_site": {"n": 3, "median": 10800.0, "p90": 16560.0},
        # resolve: 3600, 7200, 21600, 86400 → median 14400, rank 2.7: 21600 + 0.7 × 64800
        "resolve": {"n": 4, "median": 14400.0, "p90": 66960.0},
    },
}


def community_id() -> int:
    return db.session.scalar(sa.select(Community.id).where(Community.code == "TS"))
