"""The sticker page is rendered once and served from memory: fast, yet never wrong for long,
and every visitor still gets a CSRF token of their own."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from dispatch import clock
from dispatch.db import db
from dispatch.models import Case, Notice, Place, Scan
from dispatch.resident import scans
from qr import codes
from tests.clock import MIN, START, move_to
from tests.dispatch.resident.helpers import (
    Resident,
    csrf_token,
    receipt_token,
    walk_to_resolved,
)
from tests.sql import sent

SECOND = MIN / 60


def _building(code: str = "TS-B1") -> Place:
    return db.session.scalar(sa.select(Place).where(Place.code == code))


def test_a_second_view_asks_the_database_nothing_and_is_still_counted(
        app: Flask, resident: Resident) -> None:
    first = resident.scan("TS-B1-U1").get_data(as_text=True)
    with sent(app) as sql:
        second = resident.scan("TS-B1-U1").get_data(as_text=True)
    assert sql == []
    assert second == first
    scans.flush(app)  # the background writer may already have written some
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Scan.id))) == 2


def test_every_visitor_gets_a_token_of_their_own_that_files_a_report(
        app: Flask, resident: Resident) -> None:
    code = resident.stickers["TS-B1-U1"]
    first = csrf_token(resident.scan("TS-B1-U1").get_data(as_text=True))
    other = app.test_client()
    page = other.get(f"/s/{code}").get_data(as_text=True)
    token = csrf_token(page)
    assert token != first and first not in page
    assert page.count(token) == page.count('name="csrf_token"') >= 1  # in every form
    filed = other.post(f"/s/{code}/message", data={"csrf_token": token, "category": "repair"})
    receipt_token(filed)
    borrowed = app.test_client().post(f"/s/{code}/message",
                                      data={"csrf_token": first, "category": "repair"})
    assert borrowed.status_code == 400  # someone else's token is refused, as before


def test_a_report_filed_here_shows_on_the_next_view_at_once(app: Flask,
                                                           resident: Resident) -> None:
    assert "我也遇到了" not in resident.scan("TS-B1-U1").get_data(as_text=True)
    resident.message("TS-B1-U1", category="repair", text="楼道灯不亮")
    assert "我也遇到了" in resident.scan("TS-B1-U1").get_data(as_text=True)


def test_without_redis_changes_made_past_this_process_show_within_the_configured_seconds(
        app: Flask, resident: Resident, frozen_clock: None) -> None:
    assert app.config["RESIDENT_PAGE_CACHE_SECONDS"] == 5  # nothing else would tell it
    resident.scan("TS-B1-U1")
    with app.app_context():
        building = _building().id
        # Written past this process's session, as a `flask` command in another process would.
        with db.engine.begin() as conn:
            now = clock.now()
            conn.execute(sa.insert(Notice).values(place_id=building, text="3点停水",
                                                  starts_at=now, created_at=now))
    assert "3点停水" not in resident.scan("TS-B1-U1").get_data(as_text=True)
    move_to(START + 6 * SECOND)
    assert "3点停水" in resident.scan("TS-B1-U1").get_data(as_text=True)


def test_a_page_ends_when_a_notice_on_it_ends_or_starts(app: Flask, resident: Resident,
                                                        frozen_clock: None) -> None:
    app.extensions["linli.pages"].max_age = 60 * MIN  # kept for long: only notices end it
    with app.app_context():
        building = _building().id
        db.session.add_all([
            Notice(place_id=building, text="今天停水", starts_at=START,
                   ends_at=START + 10 * MIN, created_at=START),
            Notice(place_id=building, text="明早检修电梯", starts_at=START + 30 * MIN,
                   created_at=START)])
        db.session.commit()
    assert "今天停水" in resident.scan("TS-B1-U1").get_data(as_text=True)
    move_to(START + 9 * MIN)
    with sent(app) as sql:
        resident.scan("TS-B1-U1")
    assert sql == []  # still kept
    move_to(START + 10 * MIN)
    page = resident.scan("TS-B1-U1").get_data(as_text=True)
    assert "今天停水" not in page and "明早检修电梯" not in page
    move_to(START + 30 * MIN)
    assert "明早检修电梯" in resident.scan("TS-B1-U1").get_data(as_text=True)


def test_a_case_resolved_in_this_process_leaves_the_page_at_once(app: Flask,
                                                               resident: Resident) -> None:
    token = receipt_token(resident.message("TS-B1-U1", category="repair"))
    assert "我也遇到了" in resident.scan("TS-B1-U1").get_data(as_text=True)
    with app.app_context():
        case = db.session.scalar(sa.select(Case).where(Case.public_token == token))
        walk_to_resolved(case.id)
    assert "我也遇到了" not in resident.scan("TS-B1-U1").get_data(as_text=True)


def test_a_flashed_message_is_shown_to_its_visitor_only(app: Flask, resident: Resident) -> None:
    code = resident.stickers["TS-B1-U1"]
    with resident.client.session_transaction() as session:
        session["_flashes"] = [("message", "只给这位居民看的提示")]
    assert "只给这位居民看的提示" in resident.client.get(f"/s/{code}").get_data(as_text=True)
    assert "只给这位居民看的提示" not in app.test_client().get(f"/s/{code}").get_data(
        as_text=True)


def test_each_language_is_kept_apart(app: Flask, resident: Resident) -> None:
    code = resident.stickers["TS-B1-U1"]
    chinese = resident.client.get(f"/s/{code}").get_data(as_text=True)
    english = app.test_client()
    english.set_cookie("lang", "en")
    assert '<html lang="en">' in english.get(f"/s/{code}").get_data(as_text=True)
    assert '<html lang="zh-CN">' in chinese


def test_a_revoked_sticker_is_not_served_from_memory(app: Flask, resident: Resident) -> None:
    code = resident.stickers["TS-B1-U1"]
    assert resident.client.get(f"/s/{code}").status_code == 200
    with app.app_context():
        codes.revoke(codes.find(code))
        db.session.commit()
    assert resident.client.get(f"/s/{code}").status_code == 404
