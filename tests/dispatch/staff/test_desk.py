"""The desk: a call logged as a case, reclassifying, assigning, the live board, who is on duty.

The small test community (`tests.factories.small_community`) with the clock held at Monday
10:00 in Shanghai: 1栋 has its leader 李建国 (L1) and backup 王秀英 (B1); the grid secretary is
张伟 (S1); the duty desk 刘芳 (D1) works weekdays 08:30–17:30; 陈磊 (E1) maintains the lifts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_babel import force_locale
from werkzeug.security import generate_password_hash

from dispatch import jobs, words
from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.case.timeline import EventKind
from dispatch.db import db
from dispatch.jobs import sweeper
from dispatch.metrics import queries
from dispatch.models import (
    AuditLog,
    BlockedPhone,
    Case,
    CaseEvent,
    CaseStatus,
    Notification,
    NotificationStatus,
    Report,
    ReportKind,
    StaffRole,
    Sticker,
    StickerStatus,
    Urgency,
)
from dispatch.resident import timeline
from dispatch.staff import auth
from qr import codes
from tests import clock, factories
from tests.clock import MIN, START
from tests.dispatch.staff.conftest import client_for, post


@pytest.fixture
def desk(app: Flask, frozen_clock: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The small community, an admin and a viewer, the clock at Monday 10:00."""
    monkeypatch.setattr(auth, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))
    with app.app_context():
        factories.import_community(factories.small_community())
    factories.add_staff(app, "admin", StaffRole.ADMIN)
    factories.add_staff(app, "viewer", StaffRole.VIEWER)
    yield app


def tick(app: Flask, at: datetime) -> None:
    """Everything due by `at` happens: steps are taken, queued messages sent."""
    clock.move_to(at)
    with app.app_context():
        sweeper.sweep(at, grace=timedelta(0))
        jobs.runner(app).drain()


def place_id(app: Flask, code: str) -> int:
    with app.app_context():
        return factories.place(code).id


def member_id(app: Flask, code: str) -> int:
    with app.app_context():
        return factories.member(code).id


def alerted(app: Flask, case_id: int, purpose: str = "alert") -> list[str]:
    """Codes of the members messaged about the case for `purpose`, in order."""
    with app.app_context():
        rows = db.session.scalars(sa.select(Notification).where(
            Notification.case_id == case_id, Notification.purpose == purpose,
            Notification.status != NotificationStatus.CANCELLED).order_by(Notification.id))
        return [n.member.code for n in rows]


def only_case(app: Flask) -> Case:
    with app.app_context():
        case = db.session.scalars(sa.select(Case)).one()
        db.session.expunge(case)
        return case


def new_case(app: Flask, code: str, category: str, **kwargs: Any) -> int:
    with app.app_context():
        return file_report(factories.place(code), category, **kwargs).case.id


def intake(client: Any, **fields: Any) -> Any:
    return post(client, "/staff/intake/", fields, page="/staff/intake/")


# --- 1. call intake ------------------------------------------------------------------------

def test_a_call_logged_at_the_desk_opens_a_case_the_ladder_routes_like_a_scan(
        desk: Flask) -> None:
    client = client_for(desk, "admin")
    response = intake(client, place=place_id(desk, "TS-B1-U1"), category="noise",
                      urgency="normal", text="楼上装修，晚上还在电钻", phone="138 0013 9999")
    case = only_case(desk)
    assert response.status_code == 302 and response.location.endswith(f"/staff/cases/{case.id}")
    with desk.app_context():
        report = db.session.scalars(sa.select(Report)).one()
        assert report.kind == ReportKind.PHONE and report.callback_phone == "+8613800139999"
        assert report.text == "楼上装修，晚上还在电钻" and not report.anonymous
        first = db.session.scalars(sa.select(CaseEvent).order_by(CaseEvent.id)).first()
        assert first.kind == "reported" and "来电" in first.message
        logged = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "case.intake"))
        assert logged.target == db.session.get(Case, case.id).number
    tick(desk, START)
    assert alerted(desk, case.id) == ["L1", "B1"]  # the building, as a scan there would
    page = client.get(f"/staff/cases/{case.id}").get_data(as_text=True)
    assert "来电登记" in page  # the report's way in, in words


def test_a_second_call_about_the_same_problem_joins_the_open_case(desk: Flask) -> None:
    client = client_for(desk, "admin")
    first = new_case(desk, "TS-B1-U1", "repair")
    response = intake(client, place=place_id(desk, "TS-B1-U1"), category="repair",
                      urgency="normal", text="又漏了")
    assert response.location.endswith(f"/staff/cases/{first}")
    with desk.app_context():
        assert db.session.get(Case, first).report_count == 2


def test_the_desk_sets_the_urgency_it_heard(desk: Flask) -> None:
    intake(client_for(desk, "admin"), place=place_id(desk, "TS-B1-U1"), category="sanitation",
           urgency="urgent", text="楼道堆满杂物，消防通道堵死")
    case = only_case(desk)
    assert case.urgency == Urgency.URGENT and case.policy["rung_minutes"] == 5


def test_intake_refuses_a_blocked_caller_number_and_keeps_what_was_typed(desk: Flask) -> None:
    with desk.app_context():
        db.session.add(BlockedPhone(phone="+8613800139999", created_at=START))
        db.session.commit()
    response = intake(client_for(desk, "admin"), place=place_id(desk, "TS-B1-U1"),
                      category="repair", urgency="normal", text="楼道灯坏了", phone="13800139999")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "黑名单" in page and "楼道灯坏了" in page
    with desk.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Case.id))) == 0


@pytest.mark.parametrize("fields, error", [
    ({"category": "repair", "urgency": "normal"}, "请先找到并选择地点"),
    ({"place": "TS-B1-U1", "category": "nonsense", "urgency": "normal"}, "请选择问题类型"),
    ({"place": "TS-B1-U1", "category": "repair", "urgency": "now!"}, "请选择紧急程度"),
    ({"place": "TS-B1-U1", "category": "repair", "urgency": "normal", "phone": "12"},
     "回拨电话不正确"),
])
def test_intake_says_what_is_missing_without_filing(desk: Flask, fields: dict[str, str],
                                                    error: str) -> None:
    response = intake(client_for(desk, "admin"), text="说的话", **fields)
    assert response.status_code == 400 and error in response.get_data(as_text=True)
    assert "说的话" in response.get_data(as_text=True)


def test_viewers_cannot_log_calls(desk: Flask) -> None:
    client = client_for(desk, "viewer")
    assert client.get("/staff/intake/").status_code == 403


def test_the_intake_page_shows_who_is_on_duty_at_the_chosen_place(desk: Flask) -> None:
    page = client_for(desk, "admin").get(
        f"/staff/intake/?place={place_id(desk, 'TS-B1-U1')}&category=noise").get_data(
        as_text=True)
    assert "李建国" in page and "王秀英" in page and "张伟" in page and "刘芳" in page
    assert "可通知：在班 08:30–17:30" in page  # the duty desk on its weekday shift


def test_the_place_search_finds_places_by_their_words_and_by_sticker_code(desk: Flask) -> None:
    client = client_for(desk, "admin")
    found = client.get("/staff/intake/places?q=1栋 电梯").get_json()
    assert [p["label"] for p in found] == ["1栋 1单元 · 1号电梯"]
    assert [p["label"] for p in client.get("/staff/intake/places?q=2栋").get_json()] == [
        "2栋", "2栋 1单元"]
    with desk.app_context():
        sticker = codes.issue(factories.place("TS-G1-A1"))
        db.session.commit()
        code = sticker.code
    assert [p["label"] for p in client.get(f"/staff/intake/places?q={code}").get_json()] == [
        "第一网格 · 北门"]
    page = client.get("/staff/intake/?q=2栋").get_data(as_text=True)  # without JavaScript
    assert page.count('type="radio" name="place"') == 2


# --- 2. reclassify -------------------------------------------------------------------------

def test_reclassifying_an_open_case_routes_it_again_under_its_new_category(
        desk: Flask) -> None:
    case_id = new_case(desk, "TS-B1-U1-E1", "sanitation", text="电梯里很脏")
    tick(desk, START)
    assert alerted(desk, case_id) == ["L1", "B1"]
    client = client_for(desk, "admin")
    clock.move_to(START + 2 * MIN)
    response = post(client, f"/staff/cases/{case_id}/reclassify",
                    {"category": "elevator", "urgency": "urgent"})
    assert response.status_code == 302
    tick(desk, START + 2 * MIN)
    assert alerted(desk, case_id)[2:] == ["L1", "E1"]  # the lift maintainer, now
    with desk.app_context():
        case = db.session.get(Case, case_id)
        assert case.category == "elevator" and case.urgency == Urgency.URGENT
        assert case.open_key.endswith(":elevator")
        assert case.policy["rung_minutes"] == 5 and "working_hours" not in case.policy
        line = db.session.scalar(sa.select(CaseEvent).where(
            CaseEvent.kind == EventKind.RECLASSIFIED))
        assert "环境卫生·较低 → 电梯故障·紧急" in line.message
        with desk.test_request_context():  # what the resident's status page says of it
            assert timeline.event_text(line) == "问题类型更正为：电梯故障"
            with force_locale("en"):
                assert timeline.event_text(line) == "Category corrected to: Elevator fault"
        assert db.session.scalar(sa.select(AuditLog.data).where(
            AuditLog.action == "case.reclassify")) == {"category": "elevator",
                                                       "urgency": "urgent"}


def test_reclassifying_onto_a_problem_already_open_there_asks_for_a_merge(
        desk: Flask) -> None:
    first = new_case(desk, "TS-B1-U1", "repair")
    second = new_case(desk, "TS-B1-U1", "noise")
    client = client_for(desk, "admin")
    response = post(client, f"/staff/cases/{second}/reclassify",
                    {"category": "repair", "urgency": "normal"})
    page = client.get(response.location).get_data(as_text=True)
    with desk.app_context():
        assert db.session.get(Case, second).category == "noise"
        assert f"{db.session.get(Case, first).number}，请把本案并入它" in page


def test_a_reclassified_case_counts_under_its_final_category(desk: Flask) -> None:
    case_id = new_case(desk, "TS-B1-U1", "noise")
    post(client_for(desk, "admin"), f"/staff/cases/{case_id}/reclassify",
         {"category": "repair", "urgency": "normal"})
    with desk.app_context():
        community = factories.place("TS-B1").community_id
        rows = queries.breakdown(queries.Scope(community_id=community),
                                 queries.Period(START - MIN, START + MIN), "category")
        assert list(rows) == ["repair"] and rows["repair"].cases == 1


# --- 3. assign -----------------------------------------------------------------------------

def test_an_assignment_is_not_the_members_acceptance(desk: Flask) -> None:
    case_id = new_case(desk, "TS-B1-U1", "noise")
    tick(desk, START)
    client = client_for(desk, "admin")
    clock.move_to(START + 1 * MIN)
    post(client, f"/staff/cases/{case_id}/reassign", {"member": member_id(desk, "D1")})
    with desk.app_context():
        case = db.session.get(Case, case_id)
        assert case.status == CaseStatus.OPEN and case.accepted_at is None
        assert case.dispatched_at == START + MIN and case.dispatched_to.code == "D1"
    assert alerted(desk, case_id, "assigned") == ["D1"]
    with desk.app_context():
        body = db.session.scalar(sa.select(Notification.body).where(
            Notification.purpose == "assigned"))
    assert len(body) <= 134 and "指派给您" in body
    link = re.search(r"http://linli\.test(/m/case/\S+)", body)[1]
    assert ">接单</button>" in desk.test_client().get(link).get_data(as_text=True)
    clock.move_to(START + 4 * MIN)
    with desk.app_context():
        lifecycle.accept(case_id, member_id(desk, "D1"))
        case = db.session.get(Case, case_id)
        assert case.accepted_at == START + 4 * MIN  # the member's own 接单, three minutes on
        assert case.accepted_by.code == "D1"
    assert sorted(alerted(desk, case_id, "taken")) == ["B1", "L1"]  # the others need not go
    page = client.get(f"/staff/cases/{case_id}").get_data(as_text=True)
    assert "<th>指派</th><td>11-30 10:01</td>" in page and "<button>改派</button>" in page


def test_an_assignment_nobody_takes_lapses_back_to_the_ladder(desk: Flask) -> None:
    case_id = new_case(desk, "TS-B1-U1", "noise")
    tick(desk, START)
    post(client_for(desk, "admin"), f"/staff/cases/{case_id}/reassign",
         {"member": member_id(desk, "D1")})
    tick(desk, START + 30 * MIN)  # the normal policy's rung time
    with desk.app_context():
        case = db.session.get(Case, case_id)
        assert case.dispatched_to_id is None and case.rung == 2
        assert any("刘芳未在时限内接单" in e.message for e in case.events)
    assert alerted(desk, case_id)[-1:] == ["S1"]


def test_the_assign_list_puts_who_is_on_duty_there_first_and_can_be_searched(
        desk: Flask) -> None:
    case_id = new_case(desk, "TS-B1-U1", "noise")
    client = client_for(desk, "admin")
    page = client.get(f"/staff/cases/{case_id}").get_data(as_text=True)
    on_duty = page[page.index('label="此地现在在班"'):page.index('label="其他人员"')]
    positions = [on_duty.index(name) for name in ("李建国", "王秀英", "张伟", "刘芳")]
    assert positions == sorted(positions)  # the ladder's order: building, grid, community
    assert "陈磊" not in on_duty and "<button>指派</button>" in page  # lifts only
    found = client.get(f"/staff/cases/{case_id}?who=电梯").get_data(as_text=True)
    start = found.index('id="reassign-member"')
    select = found[start:found.index("</select>", start)]
    assert "陈磊" in select and "李建国" not in select


# --- 4. the board --------------------------------------------------------------------------

def test_the_board_filters_by_urgency_place_and_who_assigned(desk: Flask) -> None:
    lift = new_case(desk, "TS-B1-U1-E1", "elevator")
    noise = new_case(desk, "TS-B2-U1", "noise")
    client = client_for(desk, "admin")
    numbers = {}
    with desk.app_context():
        for case_id in (lift, noise):
            numbers[case_id] = db.session.get(Case, case_id).number
        building2 = factories.place("TS-B2").id

    def shown(query: str) -> set[int]:
        page = client.get(f"/staff/cases/live?{query}").get_data(as_text=True)
        return {c for c, number in numbers.items() if number in page}

    assert shown("") == {lift, noise}
    assert shown("urgency=urgent") == {lift}
    assert shown(f"building={building2}") == {noise}
    assert shown("mine=1") == set()
    post(client, f"/staff/cases/{noise}/reassign", {"member": member_id(desk, "S1")})
    assert shown("mine=1") == {noise}
    assert f'data-urgent="{lift}"' in client.get("/staff/cases/live").get_data(as_text=True)


def test_the_board_marks_cases_waiting_for_working_hours(desk: Flask) -> None:
    saturday = START + timedelta(days=5)
    clock.move_to(saturday)
    waiting = new_case(desk, "TS-B1-U1", "sanitation", now=saturday)
    new_case(desk, "TS-B2-U1", "noise", now=saturday)
    tick(desk, saturday)
    client = client_for(desk, "admin")
    page = client.get("/staff/cases/live?waiting=1").get_data(as_text=True)
    with desk.app_context():
        assert db.session.get(Case, waiting).number in page
    assert page.count("<tr class=") == 1 and "待工作时间" in page


def test_the_waiting_filter_finds_waiting_cases_behind_older_open_ones(
        desk: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatch.staff import board

    monkeypatch.setattr(board, "BOARD_ROWS", 2)
    saturday = START + timedelta(days=5)
    clock.move_to(saturday)
    # Older open cases that do not wait for working hours (one per place: a second report of
    # the same kind at a place joins the first).
    for minutes, place in ((30, "TS-B2-U1"), (20, "TS-B1-U1-E1"), (10, "TS-G1-A1")):
        new_case(desk, place, "noise", now=saturday - minutes * MIN)
    waiting = new_case(desk, "TS-B1-U1", "sanitation", now=saturday)
    tick(desk, saturday)
    page = client_for(desk, "admin").get("/staff/cases/live?waiting=1").get_data(as_text=True)
    with desk.app_context():
        assert db.session.get(Case, waiting).number in page
    assert page.count("<tr class=") == 1


def test_the_board_has_no_page_reload_but_a_manual_refresh(desk: Flask) -> None:
    page = client_for(desk, "admin").get("/staff/cases/?urgency=urgent").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in page
    assert 'href="/staff/cases/?urgency=urgent">刷新</a>' in page
    assert 'data-live="/staff/cases/live?urgency=urgent"' in page


# --- on duty and the week ------------------------------------------------------------------

def test_on_duty_now_per_place_and_the_week_calendar(desk: Flask) -> None:
    client = client_for(desk, "admin")
    now = client.get(f"/staff/duty/?place={place_id(desk, 'TS-B1')}&category=elevator")
    text = now.get_data(as_text=True)
    assert "陈磊" in text and "电梯维保" in text and "可通知" in text
    week = client.get("/staff/duty/week?week=2026-12-02").get_data(as_text=True)
    assert "周一 11月30日" in week and "08:30–17:30 刘芳" in week
    assert "李建国 · 请假，由王秀英代班（出差）" in week


# --- 5. words ------------------------------------------------------------------------------

def test_every_timeline_kind_has_a_chinese_name() -> None:
    assert set(words.EVENT_KIND_NAMES) == {str(kind) for kind in EventKind}


def test_the_case_page_shows_words_not_codes(desk: Flask) -> None:
    case_id = new_case(desk, "TS-B1-U1", "repair", callback_phone="+8613800139999")
    tick(desk, START)
    page = client_for(desk, "admin").get(f"/staff/cases/{case_id}").get_data(as_text=True)
    for code in (">reported<", ">notified<", ">sms<", ">alert<", ">sent<", ">message<"):
        assert code not in page
    assert ">反映<" in page and ">通知<" in page and ">短信<" in page and ">派单通知<" in page
    assert "派单规则：按 2026年11月30日 10:00 时的社区设置" in page
    with desk.app_context():
        assert db.session.get(Case, case_id).policy["version"] not in page


# --- 6. roster and stickers ----------------------------------------------------------------

def test_the_roster_groups_by_building_or_grid_and_searches(desk: Flask) -> None:
    client = client_for(desk, "admin")
    page = client.get("/staff/roster/").get_data(as_text=True)
    groups = re.findall(r"<summary><h2>(.+?) <small>(\d+) 人</small></h2></summary>", page)
    assert groups == [("第一网格", "1"), ("1栋", "2"),
                      ("全社区（社区值班、物业、民警、外部单位等）", "3")]
    assert "楼栋长" in page and ">leader<" not in page  # roles in words
    by_grid = client.get("/staff/roster/?group=grid").get_data(as_text=True)
    assert re.findall(r"<summary><h2>(.+?) <small>", by_grid)[0] == "第一网格"
    found = client.get("/staff/roster/?q=电梯").get_data(as_text=True)
    assert "陈磊" in found and "李建国" not in found and "找到 1 人（共 6 人）" in found


def test_sticker_actions_ask_first_in_distinct_colours(desk: Flask) -> None:
    with desk.app_context():
        code = codes.issue(factories.place("TS-B1-U1")).code
        db.session.commit()
    client = client_for(desk, "admin")
    page = client.get("/staff/stickers/TS-B1").get_data(as_text=True)
    buttons = re.findall(r'<a class="button (\w+)" href="([^"]+)">(\S+)</a>', page)
    assert [(colour, label) for colour, _, label in buttons] == [
        ("neutral", "补发"), ("caution", "停用"), ("danger", "作废")]
    confirm = client.get(buttons[2][1]).get_data(as_text=True)
    assert "不能恢复" in confirm and '<button class="danger">确认作废</button>' in confirm
    with desk.app_context():
        assert db.session.scalar(sa.select(Sticker.status).where(Sticker.code == code)) \
            == StickerStatus.ACTIVE  # looking at the question changes nothing
    post(client, f"/staff/stickers/code/{code}/revoke", {"note": "被人乱贴"},
         page=buttons[2][1])
    with desk.app_context():
        assert db.session.scalar(sa.select(Sticker.status).where(Sticker.code == code)) \
            == StickerStatus.REVOKED


def test_a_crowded_board_lists_the_longest_waiting_and_says_how_many_in_all(
        desk: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatch.staff import board

    monkeypatch.setattr(board, "BOARD_ROWS", 2)
    first = new_case(desk, "TS-B1-U1", "noise", now=START - 3 * MIN)
    second = new_case(desk, "TS-B2-U1", "noise", now=START - 2 * MIN)
    third = new_case(desk, "TS-B1-U1-E1", "elevator", now=START - MIN)
    page = client_for(desk, "admin").get("/staff/cases/live").get_data(as_text=True)
    with desk.app_context():
        shown = [c for c in (first, second, third) if db.session.get(Case, c).number in page]
    assert shown == [first, second]
    assert "3 件待处理，列出等待最久的 2 件（请用筛选缩小范围）" in page


def test_the_audit_log_names_actions_in_words(desk: Flask) -> None:
    client = client_for(desk, "admin")
    case_id = new_case(desk, "TS-B1-U1", "noise")
    post(client, f"/staff/cases/{case_id}/reclassify", {"category": "repair", "urgency": "low"})
    page = client.get("/staff/audit/").get_data(as_text=True)
    assert "改类 <small><code>case.reclassify</code></small>" in page
