"""The district's figures kept per day (`metrics.daily`, PostgreSQL) are the pure definitions'.

A generated history of three communities in three time zones (one with summer time, one half
an hour off the hour), with late callbacks, reopened cases, duplicates, policies without
deadlines and cases still waiting whose figures depend on `now`, is summed up for several
periods (local months, which start at local midnight, periods cut mid-day, periods shorter
than a day) and several moments; every `Figures` must be what `tally` gives over the cases'
facts. Then the cases change the ways the console and the workers change them, and the
kept figures must follow, folded or not; a rolled-back change must not count.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import downgrade, upgrade

from app import create_app
from dispatch import metrics
from dispatch.community.settings import policy
from dispatch.db import db
from dispatch.metrics import Period, Scope, daily
from dispatch.models import (
    Callback,
    Case,
    CaseStatus,
    Community,
    DailyChange,
    Place,
    Resolution,
    Solved,
    Urgency,
)
from tests import factories
from tests.conftest import PG_URL, ROOT, pg_config
from tests.dispatch.metrics.test_figures import flat

pytestmark = pytest.mark.postgres

ZONES = ("Asia/Shanghai", "America/New_York", "Asia/Kolkata")
#: When the figures are taken: the history runs up to a little after it.
NOW = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def community(code: str, zone: str) -> Community:
    """The small community under another code and time zone (places only)."""
    data = factories.small_community(members=[], responsibilities=[], shifts=[], overrides=[])
    data["community"] = [{"code": code, "name": f"社区{code}", "timezone": zone,
                          "hotline": "0752-1234567"}]
    for row in data["places"]:
        row["code"] = row["code"].replace("TS", code)
        if "parent" in row:
            row["parent"] = row["parent"].replace("TS", code)
    return factories.import_community(data)


def history(seed: int = 20, count: int = 240) -> list[int]:
    """`count` cases over March and the days around it, in three communities; their ids."""
    rng = random.Random(seed)
    places: dict[int, list[int]] = {}
    for n, zone in enumerate(ZONES):
        made = community(f"Z{n}", zone)
        places[made.id] = list(db.session.scalars(
            sa.select(Place.id).where(Place.community_id == made.id)))
    communities = {c.id: c for c in db.session.scalars(sa.select(Community))}
    start = datetime(2026, 2, 26, tzinfo=UTC)
    ids = []
    for n in range(count):
        community_id = rng.choice(list(places))
        urgency = rng.choice(list(Urgency))
        snapshot = policy(communities[community_id], urgency)
        if n % 11 == 0:
            snapshot = {}  # an old case from before policies: no deadlines at all
        elif n % 7 == 0:
            snapshot = {**snapshot, "rung_minutes": 0.5, "on_site_minutes": 2.5}
        if n % 5 == 0:  # waiting near NOW: due or not depending on the moment taken
            reported = NOW - timedelta(seconds=rng.uniform(0, 6 * 3600))
        else:
            reported = start + timedelta(seconds=rng.uniform(0, 36 * 86400),
                                         microseconds=rng.randrange(10**6))
        limit = 60 * float(snapshot.get("rung_minutes", 30))

        def later(after: datetime, scale: float) -> datetime | None:
            moment = after + timedelta(seconds=rng.expovariate(1 / scale))
            return moment if moment <= NOW + 2 * HOUR else None

        accepted = later(reported, limit) if rng.random() < 0.8 else None
        on_site = later(accepted, 3600) if accepted and rng.random() < 0.7 else None
        resolved = later(on_site or accepted, 7200) if accepted and rng.random() < 0.7 else None
        closed = None
        if resolved and rng.random() < 0.8:
            closed = later(resolved, 86400)
        elif not accepted and rng.random() < 0.3:
            closed = later(reported, limit)  # withdrawn, spam: before or after the deadline
        status = (CaseStatus.CLOSED if closed else CaseStatus.RESOLVED if resolved else
                  CaseStatus.ON_SITE if on_site else CaseStatus.ACCEPTED if accepted else
                  CaseStatus.OPEN)
        resolution = None
        if closed:
            resolution = rng.choice([Resolution.FIXED, Resolution.FIXED, Resolution.NOT_FIXED,
                                     Resolution.REFERRED, Resolution.DUPLICATE, None])
        case = Case(community_id=community_id, place_id=rng.choice(places[community_id]),
                    category="repair", urgency=urgency, status=status, resolution=resolution,
                    policy=snapshot, reported_at=reported, accepted_at=accepted,
                    accepted_rung=rng.choice([1, 2, 3]) if accepted else None,
                    on_site_at=on_site, resolved_at=resolved, closed_at=closed,
                    closed_rung=rng.choice([1, 2, 3, 4, None]) if closed else None,
                    report_count=1)
        db.session.add(case)
        db.session.flush()
        if resolved or closed:
            for k in range(rng.choice([0, 1, 1, 2, 3])):  # some answered weeks later
                db.session.add(Callback(
                    case_id=case.id, contacted=rng.choice([True, None, False]),
                    solved=rng.choice(list(Solved)),
                    satisfaction=rng.choice([1, 2, 3, 4, 5, None]),
                    at=(resolved or closed) + (k + 1) * rng.choice([HOUR, DAY, 30 * DAY])))
        ids.append(case.id)
    db.session.commit()
    return ids


#: Local months (from local midnight), periods cut mid-day, shorter than a day, and empty.
PERIODS = [
    *(Period.month(2026, 3, zone) for zone in ZONES),
    Period(datetime(2026, 3, 3, 7, 13, 5, tzinfo=UTC), datetime(2026, 3, 29, 18, 1, tzinfo=UTC)),
    Period(datetime(2026, 3, 10, 3, 0, tzinfo=UTC), datetime(2026, 3, 10, 21, 0, tzinfo=UTC)),
    Period(datetime(2026, 3, 10, 20, 0, tzinfo=UTC), datetime(2026, 3, 11, 4, 0, tzinfo=UTC)),
    Period(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)),
    Period(datetime(2026, 3, 31, 16, 0, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC)),
    Period(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)),
]
#: When the figures are taken: deadlines of the waiting cases fall on either side of these.
MOMENTS = [NOW, NOW - 40 * MINUTE, NOW - 3 * HOUR, NOW + 10 * MINUTE, NOW + 3 * DAY,
           datetime(2026, 3, 15, tzinfo=UTC)]


def assert_same_as_pure() -> None:
    for period in PERIODS:
        for now in MOMENTS:
            kept = metrics.summary(Scope(), period, now)
            pure = metrics.tally(metrics.facts(Scope(), period), now)
            assert kept.as_dict() == pure.as_dict(), (period, now)
        db.session.rollback()


@pytest.fixture
def district(app: Flask) -> Any:
    with app.app_context():
        yield history()


def test_the_kept_figures_are_the_pure_definitions(district: list[int]) -> None:
    figures = metrics.summary(Scope(), Period.month(2026, 3, "Asia/Shanghai"), NOW)
    assert figures.cases > 100 and figures.answered > 10 and figures.accept.n > 50
    assert_same_as_pure()
    assert daily.fold() > 0  # the same whether the changes are folded or not
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DailyChange)) == 0
    assert_same_as_pure()


def test_the_kept_figures_follow_every_change(district: list[int]) -> None:
    daily.fold()
    cases = [db.session.get_one(Case, case_id) for case_id in district]
    closed = [c for c in cases if c.status == CaseStatus.CLOSED
              and c.resolution != Resolution.DUPLICATE]
    waiting = [c for c in cases if c.accepted_at is None and c.closed_at is None]
    reopened = closed[0]  # reopened: back to its acceptance, its callbacks kept
    reopened.status, reopened.closed_at, reopened.resolved_at = CaseStatus.ACCEPTED, None, None
    reopened.on_site_at, reopened.resolution, reopened.closed_rung = None, None, None
    late = waiting[0]  # accepted late, then on site
    late.status, late.accepted_at = CaseStatus.ON_SITE, late.reported_at + 3 * HOUR
    late.on_site_at = late.reported_at + 5 * HOUR
    closed[1].resolution = Resolution.DUPLICATE  # merged after all
    closed[2].urgency = Urgency.URGENT if closed[2].urgency != Urgency.URGENT else Urgency.LOW
    closed[3].reported_at -= 20 * DAY  # a corrected report time: another day
    db.session.add(Callback(case_id=closed[4].id, contacted=True, solved=Solved.PARTLY,
                            satisfaction=4, at=NOW + 60 * DAY))  # answered two months later
    db.session.commit()
    assert_same_as_pure()
    daily.fold()
    assert_same_as_pure()
    answered = db.session.scalars(sa.select(Callback).order_by(Callback.id.desc())).first()
    assert answered is not None
    answered.contacted = False  # not reached after all: the answer before counts again
    db.session.delete(db.session.scalars(
        sa.select(Callback).where(Callback.case_id != answered.case_id)).first())
    db.session.commit()
    assert_same_as_pure()
    before = {(p.start, n): metrics.summary(Scope(), p, n).as_dict()
              for p in PERIODS for n in MOMENTS}
    db.session.rollback()
    rolled = waiting[1]
    rolled.status, rolled.accepted_at = CaseStatus.CLOSED, rolled.reported_at + MINUTE
    rolled.closed_at = rolled.reported_at + 2 * MINUTE
    db.session.add(Callback(case_id=rolled.id, contacted=True, solved=Solved.YES,
                            satisfaction=5, at=NOW))
    db.session.flush()
    db.session.rollback()  # never happened
    daily.fold()
    assert {(p.start, n): metrics.summary(Scope(), p, n).as_dict()
            for p in PERIODS for n in MOMENTS} == before
    db.session.rollback()
    db.session.delete(db.session.get_one(Case, waiting[2].id))  # a test case removed by hand
    db.session.commit()
    assert_same_as_pure()


def test_a_rebuild_counts_what_the_triggers_counted(district: list[int]) -> None:
    daily.fold()
    kept = {p.start: metrics.summary(Scope(), p, NOW).as_dict() for p in PERIODS}
    daily.rebuild()
    assert {p.start: metrics.summary(Scope(), p, NOW).as_dict() for p in PERIODS} == kept


def test_narrower_scopes_still_count_the_cases(district: list[int]) -> None:
    one = db.session.scalars(sa.select(Community.id)).first()
    march = Period.month(2026, 3, "Asia/Shanghai")
    counted = flat(metrics.summary(Scope(one), march, NOW).as_dict())
    assert counted == pytest.approx(flat(metrics.tally(metrics.facts(Scope(one), march),
                                                        NOW).as_dict()))


def test_the_migration_backfills_what_exists_and_goes_back() -> None:
    """0016_daily on a database with history: down to 0015 (the kept figures, columns and
    triggers gone, the cases and callbacks staying) and up again, the kept figures count
    every case that was there."""
    schema = f"linli_test_daily_{random.Random().randrange(16**8):08x}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    app = create_app(pg_config(schema))
    migrations = str(ROOT / "migrations")
    try:
        with app.app_context():
            upgrade(directory=migrations, revision="heads")
            history(seed=3, count=120)
            db.session.remove()
            downgrade(directory=migrations, revision="0015_voice")
            columns = {c["name"] for c in sa.inspect(db.engine).get_columns("case")}
            assert "answer_solved" not in columns and "settles_at" not in columns
            assert "daily_figure" not in sa.inspect(db.engine).get_table_names()
            upgrade(directory=migrations, revision="heads")
            assert db.session.scalar(sa.text("SELECT sum(cases) FROM daily_figure")) == \
                db.session.scalar(sa.text(
                    "SELECT count(*) FROM \"case\" WHERE resolution IS DISTINCT FROM 'duplicate'"))
            assert_same_as_pure()
            db.session.remove()
    finally:
        with app.app_context():
            db.engine.dispose()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
