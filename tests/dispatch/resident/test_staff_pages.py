"""Staff edit the phone blocklist and post building notices; viewers may do neither."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch.db import db
from dispatch.models import AuditLog, BlockedPhone, Notice, Place, StaffRole
from tests.dispatch.resident.helpers import Resident
from tests.factories import add_staff, csrf_token, login


@pytest.fixture
def staff(app: Flask, community: int) -> Any:
    add_staff(app)
    client = app.test_client()
    assert login(client).status_code == 302
    return client


def _post(client: Any, path: str, page: str, **data: str) -> Any:
    return client.post(path, data={**data, "csrf_token": csrf_token(client, page)})


def test_the_console_links_to_both_pages(staff: Any) -> None:
    html = staff.get("/staff/").get_data(as_text=True)
    assert "/staff/notices/" in html and "/staff/blocklist/" in html


def test_staff_block_and_unblock_a_number(app: Flask, staff: Any) -> None:
    added = _post(staff, "/staff/blocklist/", "/staff/blocklist/", phone="138 0013 8000",
                  reason="冒用他人号码")
    assert added.status_code == 303
    html = staff.get("/staff/blocklist/").get_data(as_text=True)
    assert "+8613800138000" in html and "冒用他人号码" in html
    with app.app_context():
        entry = db.session.scalar(sa.select(BlockedPhone))
        assert entry.phone == "+8613800138000"
        assert "blocklist.add" in db.session.scalars(sa.select(AuditLog.action)).all()
        entry_id = entry.id
    assert _post(staff, f"/staff/blocklist/{entry_id}/remove",
                 "/staff/blocklist/").status_code == 303
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(BlockedPhone.id))) == 0


def test_a_bad_number_is_explained_and_kept(app: Flask, staff: Any) -> None:
    response = _post(staff, "/staff/blocklist/", "/staff/blocklist/", phone="12345",
                     reason="<b>x</b>")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "号码不正确" in html
    assert 'value="12345"' in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_a_blocked_number_stops_a_residents_message(app: Flask, staff: Any,
                                                    stickers: dict[str, str]) -> None:
    _post(staff, "/staff/blocklist/", "/staff/blocklist/", phone="13800138000")
    resident = Resident(app.test_client(), stickers)
    assert resident.message(phone="+8613800138000").status_code == 422


def test_staff_post_and_end_a_building_notice(app: Flask, staff: Any,
                                              stickers: dict[str, str]) -> None:
    with app.app_context():
        building = db.session.scalar(sa.select(Place.id).where(Place.code == "TS-B1"))
    posted = _post(staff, "/staff/notices/", "/staff/notices/", place=str(building),
                   text="1栋1号电梯维修中，预计18:00恢复", ends="2099-01-01T18:00")
    assert posted.status_code == 303
    resident = Resident(app.test_client(), stickers)
    assert "1栋1号电梯维修中" in resident.scan("TS-B1-U1-E1").get_data(as_text=True)
    with app.app_context():
        notice = db.session.scalar(sa.select(Notice))
        assert notice.ends_at.isoformat() == "2099-01-01T10:00:00+00:00"  # 18:00 in Shanghai
        notice_id = notice.id
    assert _post(staff, f"/staff/notices/{notice_id}/end", "/staff/notices/").status_code == 303
    assert "1栋1号电梯维修中" not in resident.scan("TS-B1-U1-E1").get_data(as_text=True)
    with app.app_context():
        actions = db.session.scalars(sa.select(AuditLog.action).order_by(AuditLog.id)).all()
        assert [a for a in actions if a.startswith("notice.")] == ["notice.post", "notice.end"]


@pytest.mark.parametrize(("fields", "problem"), [
    ({"place": "", "text": "x"}, "请选择楼栋"),
    ({"place": "unit", "text": "x"}, "请选择楼栋"),
    ({"place": "building", "text": ""}, "请填写公告内容"),
    ({"place": "building", "text": "x", "ends": "2000-01-01T00:00"}, "结束时间不正确"),
    ({"place": "building", "text": "x", "ends": "tomorrow"}, "结束时间不正确"),
])
def test_bad_notices_are_explained_and_nothing_is_posted(app: Flask, staff: Any,
                                                         fields: dict[str, str],
                                                         problem: str) -> None:
    with app.app_context():
        ids = dict(db.session.execute(sa.select(Place.code, Place.id)).all())
    fields = {**fields, "place": {"unit": str(ids["TS-B1-U1"]), "building": str(ids["TS-B1"]),
                                  "": ""}[fields["place"]]}
    response = _post(staff, "/staff/notices/", "/staff/notices/", **fields)
    assert response.status_code == 422 and problem in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Notice.id))) == 0


def test_viewers_cannot_edit_either_list(app: Flask, community: int) -> None:
    add_staff(app, "viewer", StaffRole.VIEWER)
    client = app.test_client()
    login(client, "viewer")
    assert client.get("/staff/blocklist/").status_code == 403
    assert client.get("/staff/notices/").status_code == 200
    token = csrf_token(client, "/staff/")
    assert client.post("/staff/notices/", data={"csrf_token": token}).status_code == 403
    assert client.post("/staff/blocklist/", data={"csrf_token": token}).status_code == 403


def test_the_pages_need_a_login(client: Any) -> None:
    assert client.get("/staff/blocklist/").status_code == 302
    assert client.get("/staff/notices/").status_code == 302
