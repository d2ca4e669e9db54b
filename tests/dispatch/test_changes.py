"""Every commit tells the app what it changed, in the terms kept pages are dropped by: the
place of each case it wrote, or everything for what every page may show."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import changes, clock
from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Case, Member, Place, Scan


@pytest.fixture
def told(app: Flask, community: int) -> Iterator[list[frozenset[str]]]:
    """What each commit in the test announced, in order."""
    heard: list[frozenset[str]] = []
    changes.listen(app, heard.append)
    with app.app_context():
        yield heard


def _place(code: str) -> Place:
    return db.session.scalar(sa.select(Place).where(Place.code == code))


def test_a_new_case_is_a_change_of_its_place_only(told: list[frozenset[str]]) -> None:
    lift = _place("TS-B1-U1-E1")
    file_report(lift, "elevator", text="停了")  # commits
    assert told == [{changes.place(lift.id)}]  # once: the case is inserted in a savepoint


def test_a_roster_change_is_a_change_of_everything(told: list[frozenset[str]]) -> None:
    member = db.session.scalar(sa.select(Member).where(Member.code == "L1"))
    member.public_name = "李书记"
    db.session.commit()
    assert told == [{changes.EVERYTHING}]


def test_what_no_page_shows_is_no_change(told: list[frozenset[str]]) -> None:
    db.session.add(Scan(sticker_id=None, code_seen="X", action="view", at=clock.now()))
    db.session.commit()
    assert told == []


def test_a_rolled_back_change_is_not_announced(told: list[frozenset[str]]) -> None:
    member = db.session.scalar(sa.select(Member).where(Member.code == "L1"))
    member.public_name = "李书记"
    db.session.flush()
    db.session.rollback()
    db.session.commit()
    assert told == []


def test_a_change_is_told_when_its_transaction_commits_not_when_a_savepoint_in_it_is_released(
        told: list[frozenset[str]]) -> None:
    """SQLAlchemy reports a savepoint's release as a commit. Told then, a roster change
    followed by a savepoint in the same transaction would reach the other processes before
    its rows: one re-reading the roster then keeps the old rows as fresh
    (`dispatch.roster.kept`), and a page re-rendered then is kept showing the past."""
    member = db.session.scalar(sa.select(Member).where(Member.code == "L1"))
    member.public_name = "李书记"
    db.session.flush()
    with db.session.begin_nested():
        db.session.add(Scan(sticker_id=None, code_seen="X", action="view", at=clock.now()))
    assert told == []
    db.session.commit()
    assert told == [{changes.EVERYTHING}]
    member.public_name = "李建国"
    db.session.flush()
    with db.session.begin_nested():
        db.session.add(Scan(sticker_id=None, code_seen="Y", action="view", at=clock.now()))
    db.session.rollback()
    db.session.commit()
    assert told == [{changes.EVERYTHING}]  # the second change never happened


def test_a_bulk_update_says_everything_unless_its_writer_says_what(
        told: list[frozenset[str]]) -> None:
    lift = _place("TS-B1-U1-E1")
    case = file_report(lift, "elevator").case
    told.clear()
    db.session.execute(sa.update(Case).where(Case.id == case.id).values(report_count=2))
    db.session.commit()
    assert told[-1] == {changes.EVERYTHING}
    lifecycle.first_notified(case.id, clock.now())  # the page says "已通知负责人" now
    db.session.commit()
    assert told[-1] == {changes.place(lift.id)}
    lifecycle.first_delivered(case.id, clock.now())  # no page shows it
    db.session.commit()
    assert told[-1] == {changes.place(lift.id)} and len(told) == 2
