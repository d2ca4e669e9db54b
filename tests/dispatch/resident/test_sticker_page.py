"""The page a sticker opens: the place, who answers, notices, open problems, emergencies first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import clock
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Case, Community, Notice, Place, Scan
from dispatch.resident import scans
from qr import codes
from qr.printing import sticker_label
from tests.dispatch.resident.helpers import Resident


def _place(code: str) -> Place:
    return db.session.scalar(sa.select(Place).where(Place.code == code))


def test_sticker_page_names_the_place_and_its_community(resident: Resident) -> None:
    page = resident.scan("TS-B1-U1-E1")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<h1>1栋 1单元 · 1号电梯</h1>" in html
    assert "测试花园" in html
    assert '<html lang="zh-CN">' in html


def test_an_area_sticker_page_names_its_grid_as_the_printed_sticker_does(
        app: Flask, resident: Resident) -> None:
    # Every grid may have its own 北门: the page must say which, exactly as the sticker does.
    html = resident.scan("TS-G1-A1").get_data(as_text=True)
    assert "<h1>第一网格 · 北门</h1>" in html
    with app.app_context():
        place = _place("TS-G1-A1")
        assert place.full_name == "测试花园 第一网格 · 北门"
        assert sticker_label(place, "X", "https://linli.example.cn").place == place.label


@pytest.mark.parametrize("path", ["/S/{code}", "/s/{code}", "/s/{lower}", "/S/{dashed}"])
def test_sticker_code_is_read_in_any_case_and_with_dashes(resident: Resident, path: str) -> None:
    code = resident.stickers["TS-B1-U1"]
    url = path.format(code=code, lower=code.lower(), dashed=f"{code[:4]}-{code[4:8]}-{code[8:]}")
    assert resident.client.get(url).status_code == 200


def test_sticker_page_shows_who_answers_by_role_and_surname_only(app: Flask,
                                                                  resident: Resident) -> None:
    html = resident.scan("TS-B1-U1").get_data(as_text=True)
    assert "1栋党小组 李师傅、王师傅" in html
    assert "第一网格党支部 张师傅" in html
    for full_name in ("李建国", "王秀英", "张伟"):
        assert full_name not in html
    assert "13800138001" not in html


def test_the_party_members_listed_are_not_promised_as_who_takes_every_problem(
        resident: Resident) -> None:
    # The list names the building's party group and the grid's branch, but a repair goes
    # first to the property desk and a lift fault to its maintainer: the page says so instead
    # of heading the list "who handles it".
    html = resident.scan("TS-B1-U1").get_data(as_text=True)
    who = html[html.index('id="who"'):html.index('id="message"')]
    assert "身边的党员" in who and "谁来处理" not in who
    assert "发送后，在“查看处理进度”里能看到通知了谁" in who


def test_elevator_page_puts_the_emergency_first(resident: Resident) -> None:
    html = resident.scan("TS-B1-U1-E1").get_data(as_text=True)
    sos = html.index("被困请按警铃")
    assert sos < html.index('href="tel:96333"') < html.index("/call") < html.index('id="who"')
    assert sos < html.index('id="message"')
    # the lift fault is preselected on a lift's sticker
    assert 'value="elevator" checked' in html


def test_unit_page_has_a_call_button_but_no_lift_emergency(resident: Resident) -> None:
    html = resident.scan("TS-B1-U1").get_data(as_text=True)
    assert "被困请按警铃" not in html
    assert f'href="/s/{resident.stickers["TS-B1-U1"]}/call"' in html
    assert "checked" not in html


def test_building_notices_show_on_its_units_and_elevators_only_while_in_force(
        app: Flask, resident: Resident) -> None:
    with app.app_context():
        building, other = _place("TS-B1"), _place("TS-B2")
        now = clock.now()
        db.session.add_all([
            Notice(place_id=building.id, text="1栋1号电梯维修中，预计18:00恢复", starts_at=now,
                   created_at=now),
            Notice(place_id=building.id, text="已结束的公告", starts_at=now - timedelta(days=1),
                   ends_at=now - timedelta(hours=1), created_at=now),
            Notice(place_id=building.id, text="明天的公告", starts_at=now + timedelta(days=1),
                   created_at=now),
            Notice(place_id=other.id, text="2栋停水通知", starts_at=now, created_at=now),
        ])
        db.session.commit()
    for place in ("TS-B1-U1", "TS-B1-U1-E1"):
        html = resident.scan(place).get_data(as_text=True)
        assert "1栋1号电梯维修中，预计18:00恢复" in html
        assert "已结束的公告" not in html and "明天的公告" not in html
        assert "2栋停水通知" not in html
    assert "2栋停水通知" in resident.scan("TS-B2-U1").get_data(as_text=True)


def test_open_cases_at_the_place_are_listed_with_a_me_too_button(app: Flask,
                                                                 resident: Resident) -> None:
    with app.app_context():
        filed = file_report(_place("TS-B1-U1-E1"), "elevator", text="电梯卡在5楼")
        case_id = filed.case.id
    html = resident.scan("TS-B1-U1-E1").get_data(as_text=True)
    assert "这里已有邻居反映的问题" in html
    assert f'/me-too/{case_id}"' in html and "我也遇到了" in html
    assert "1 人次反映" in html
    assert "电梯卡在5楼" not in html  # residents' own words are not shown to everyone
    assert "这里已有邻居反映的问题" not in resident.scan("TS-B1-U1").get_data(as_text=True)


def test_me_too_adds_a_report_to_the_open_case(app: Flask, resident: Resident) -> None:
    with app.app_context():
        case_id = file_report(_place("TS-B1-U1-E1"), "elevator").case.id
    response = resident.me_too(case_id)
    assert response.status_code == 303
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert case.report_count == 2
        assert [r.kind.value for r in case.reports] == ["message", "me_too"]
        # The neighbour's own link: not the one of the resident who reported first.
        assert case.public_token not in response.headers["Location"]
        assert case.reports[1].public_token in response.headers["Location"]


def test_me_too_on_a_case_of_another_place_files_nothing(app: Flask, resident: Resident) -> None:
    with app.app_context():
        case_id = file_report(_place("TS-B2-U1"), "repair").case.id
    response = resident.me_too(case_id, place="TS-B1-U1")
    assert response.status_code == 404
    assert "没有找到这个问题" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Case, case_id).report_count == 1


def test_every_view_is_recorded_as_a_scan(app: Flask, resident: Resident) -> None:
    resident.scan("TS-B1-U1")
    resident.scan("TS-B1-U1")
    scans.flush(app)
    with app.app_context():
        seen = db.session.scalars(sa.select(Scan)).all()
        assert [(s.action, s.sticker_id is not None) for s in seen] == [("view", True)] * 2


@pytest.mark.parametrize("state", ["unknown", "revoked", "retired"])
def test_unusable_codes_get_the_same_helpful_404_and_are_recorded(
        app: Flask, resident: Resident, state: str) -> None:
    code = resident.stickers["TS-B1-U1"]
    if state == "unknown":
        code = "ZZZZZZZZZZZZ" if code != "ZZZZZZZZZZZZ" else "YYYYYYYYYYYY"
    else:
        with app.app_context():
            sticker = codes.find(code)
            codes.revoke(sticker) if state == "revoked" else codes.retire(sticker)
            db.session.commit()
    page = resident.client.get(f"/S/{code}")
    html = page.get_data(as_text=True)
    assert page.status_code == 404
    assert "这个二维码或链接无法使用" in html
    assert "我也遇到了" not in html and "/call" not in html and "csrf_token" not in html
    if state == "unknown":
        assert 'href="tel:12345"' in html
    else:
        assert 'href="tel:0752-1234567"' in html
    scans.flush(app)
    with app.app_context():
        scan = db.session.scalar(sa.select(Scan))
        assert (scan.action, scan.code_seen) == (state, code)


def test_a_revoked_sticker_files_nothing_and_reaches_no_member(app: Flask,
                                                             resident: Resident) -> None:
    token = resident.token("TS-B1-U1")
    code = resident.stickers["TS-B1-U1"]
    with app.app_context():
        codes.revoke(codes.find(code))
        db.session.commit()
    posted = resident.client.post(f"/s/{code}/message",
                                  data={"csrf_token": token, "category": "repair"})
    called = resident.client.get(f"/s/{code}/call")
    assert posted.status_code == called.status_code == 404
    scans.flush(app)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Case.id))) == 0
        assert [s.action for s in db.session.scalars(sa.select(Scan).order_by(Scan.id))] == [
            "view", "revoked", "revoked"]


def test_language_switch_to_english_persists_in_a_cookie(resident: Resident) -> None:
    code = resident.stickers["TS-B1-U1-E1"]
    switch = resident.client.get(f"/lang/en?next=/s/{code}")
    assert switch.status_code == 303 and switch.headers["Location"] == f"/s/{code}"
    assert "lang=en" in switch.headers["Set-Cookie"]
    html = resident.scan("TS-B1-U1-E1").get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Trapped in the lift?" in html and "Elevator fault" in html
    assert "中文" in html  # the way back
    resident.client.get(f"/lang/zh?next=/s/{code}")
    assert "被困电梯？" in resident.scan("TS-B1-U1-E1").get_data(as_text=True)


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil"])
def test_language_switch_never_redirects_off_site(client: Any, target: str) -> None:
    response = client.get("/lang/en", query_string={"next": target})
    assert response.headers["Location"] == "/"



def test_the_page_names_only_people_the_ladder_asks(app: Flask, resident: Resident) -> None:
    """A building backup the routing rules never ask is not shown as answering here."""
    with app.app_context():
        community = db.session.scalar(sa.select(Community))
        settings = dict(community.settings)
        settings["routing"] = [{**rule, "roles": [r for r in rule["roles"] if r != "backup"]}
                               for rule in settings["routing"]]
        community.settings = settings
        db.session.commit()
    html = resident.scan("TS-B1-U1").get_data(as_text=True)
    assert "1栋党小组 李师傅" in html and "王师傅" not in html
