"""A worker keeps who may answer (`dispatch.roster.kept`), and a roster change committed in
any process reaches its next step: two apps here are the console and a worker, on one
PostgreSQL schema and one Redis database, as two processes would be."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from redis import Redis

from app import create_app
from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import (
    Contact,
    ContactStatus,
    DutyOverride,
    Member,
    Notification,
    OverrideKind,
    Shift,
)
from dispatch.roster import kept
from tests import clock, factories
from tests.conftest import _dispose, _truncate_all, pg_config
from tests.factories import member, place
from tests.sql import sent

NOW = clock.START  # a Monday morning: the building leader L1 is reachable

#: Places whose noise reports ask the building leader L1 (and the backup B1) at the first
#: rung; each step below opens a case at the next one (one open case per place and category).
PLACES = ("TS-B1", "TS-B1-U1", "TS-B1-U1-E1")


@pytest.fixture
def apps(pg_schema: str, redis_url: str, frozen_clock: None
         ) -> Iterator[tuple[Flask, Flask]]:
    """The console and a worker: two apps on the same database and Redis."""
    console, worker = (create_app(pg_config(pg_schema, REDIS_URL=redis_url)) for _ in "cw")
    _truncate_all(console)
    with console.app_context():
        factories.import_community(factories.small_community(overrides=[]))
    yield console, worker
    for app in (console, worker):
        _dispose(app)


def step(worker: Flask, code: str) -> list[str]:
    """Noise reported at `code`, its first ladder step taken by the worker: who was asked."""
    with worker.app_context():
        case = file_report(place(code), "noise", now=NOW).case
        assert lifecycle.run_step(case.id, case.token, NOW)
        return list(db.session.scalars(
            sa.select(Member.code).join(Notification.member)
            .where(Notification.case_id == case.id, Notification.purpose == "alert")
            .order_by(Notification.id)))


def on_leave(app: Flask) -> None:
    with app.app_context():
        # By id: the member's row is not touched, only the roster's own table.
        db.session.add(DutyOverride(member_id=member("L1").id, kind=OverrideKind.LEAVE,
                                    starts_at=NOW - timedelta(hours=1),
                                    ends_at=NOW + timedelta(days=1), note="病假"))
        db.session.commit()


def deactivated(app: Flask) -> None:
    with app.app_context():
        member("L1").active = False
        db.session.commit()


def number_broken(app: Flask) -> None:
    with app.app_context():
        db.session.execute(sa.update(Contact).where(Contact.member_id == member("L1").id)
                           .values(status=ContactStatus.BROKEN))
        db.session.commit()


def off_shift(app: Flask) -> None:
    """L1 gets a weekly shift on Sundays only: on Monday morning, off duty."""
    with app.app_context():
        db.session.add(Shift(member_id=member("L1").id, weekday=6, starts=NOW.time(),
                             ends=(NOW + timedelta(hours=1)).time()))
        db.session.commit()


def test_a_step_asks_from_the_kept_roster_without_reading_it_again(
        apps: tuple[Flask, Flask]) -> None:
    _, worker = apps
    assert step(worker, PLACES[0]) == ["L1", "B1"]
    with sent(worker) as sql:
        assert step(worker, PLACES[1]) == ["L1", "B1"]
    read = " ".join(statement for statement, _ in sql)
    assert "FROM responsibility" not in read and "FROM shift" not in read
    assert "FROM duty_override" not in read


@pytest.mark.parametrize("change", [on_leave, deactivated, number_broken, off_shift],
                         ids=lambda change: change.__name__)
def test_a_roster_change_in_the_console_reaches_the_workers_next_step(
        apps: tuple[Flask, Flask], change: Callable[[Flask], None]) -> None:
    console, worker = apps
    assert step(worker, PLACES[0]) == ["L1", "B1"]  # the worker now keeps the roster
    change(console)
    assert step(worker, PLACES[1]) == ["B1"]


def test_without_a_redis_that_answers_a_step_reads_the_database(
        apps: tuple[Flask, Flask]) -> None:
    _, worker = apps
    with worker.app_context():
        away = kept.KeptRosters(Redis.from_url("redis://127.0.0.1:1",
                                               socket_connect_timeout=0.2))
        assert away.responsibilities(member("L1").community_id) is None


def test_rosters_read_together_are_read_again_at_different_ages_within_the_bound(
        apps: tuple[Flask, Flask], monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of steps reads many communities' rosters at once; a minute later they must not
    all be read again at once, in the middle of the burst, and none may be kept past
    `MAX_AGE_SECONDS` (what no commit announces is seen within it)."""
    _, worker = apps
    now = [1000.0]
    monkeypatch.setattr(kept.time, "monotonic", lambda: now[0])
    read: list[int] = []
    monkeypatch.setattr(kept, "_read", lambda community_id: read.append(community_id) or [])
    with worker.app_context():
        rosters = kept.KeptRosters(Redis.from_url(worker.config["REDIS_URL"]))
        communities = range(1, 41)
        for community_id in communities:
            rosters.responsibilities(community_id)
        assert read == list(communities)

        def read_again_by(age: float) -> int:
            read.clear()
            now[0] = 1000.0 + age
            for community_id in communities:
                rosters.responsibilities(community_id)
            return len(read)

        assert read_again_by(kept.MAX_AGE_SECONDS * kept.MAX_AGE_SPREAD - 1) == 0
        early = read_again_by(kept.MAX_AGE_SECONDS * 0.75)
        assert 5 <= early <= 35  # about half, spread out (out of this range: p < 1e-6)
        assert read_again_by(kept.MAX_AGE_SECONDS) == 40 - early  # the rest: none kept longer
