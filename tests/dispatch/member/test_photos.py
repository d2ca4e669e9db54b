"""Members see the residents' photos, resolve with a note and after-photos, and know the page is
邻里's; the short link in an alert works like the long one and refuses what it should."""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import BytesIO

import pytest
import sqlalchemy as sa
from flask import Flask
from PIL import Image

from dispatch import links
from dispatch.case import lifecycle, result
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Case, CaseStatus, Notification, Photo, StaffRole
from dispatch.resident import photos
from tests import clock, factories
from tests.clock import START
from tests.factories import csrf_token, member, place


def _jpeg(colour: str = "red", size: tuple[int, int] = (800, 600)) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def case_id(app: Flask, frozen_clock: None) -> Iterator[int]:
    """A lift case with a resident's photo, its building rung paged (L1 and E1)."""
    with app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        ready = photos.reencode(BytesIO(_jpeg()))
        filed = file_report(place("TS-B1-U1-E1"), "elevator", text="电梯门夹人",
                            photos=photos.rows([ready]), now=START)
        lifecycle.run_step(filed.case.id, filed.case.token, now=START)
        found = filed.case.id
    yield found


def _case_path(app: Flask, code: str, case_id: int) -> str:
    with app.app_context():
        return links.path(links.Purpose.CASE, member(code).id, case_id)


def test_the_member_case_page_shows_the_residents_photos_as_thumbnails(
        app: Flask, case_id: int) -> None:
    client = app.test_client()
    page = client.get(_case_path(app, "L1", case_id)).get_data(as_text=True)
    assert "居民拍的照片" in page
    thumb = re.search(r'<img src="([^"]+/small)"', page)[1]
    small = client.get(thumb)
    assert small.status_code == 200 and small.content_type == "image/jpeg"
    assert max(Image.open(BytesIO(small.data)).size) <= photos.THUMBNAIL_SIDE
    full = re.search(r'<a href="([^"]+/photo/\d+)"><img', page)[1]
    assert Image.open(BytesIO(client.get(full).data)).size == (800, 600)


def test_a_photo_is_served_only_through_a_link_to_its_own_case(app: Flask,
                                                               case_id: int) -> None:
    with app.app_context():
        other = file_report(place("TS-B2-U1"), "noise").case.id
        photo_id = db.session.scalar(sa.select(Photo.id))
    client = app.test_client()
    assert client.get(f"{_case_path(app, 'L1', other)}/photo/{photo_id}").status_code == 404
    assert client.get(f"{_case_path(app, 'L1', case_id)}/photo/{photo_id}/huge").status_code \
        == 404
    assert client.get(f"/m/case/forged/photo/{photo_id}").status_code == 403


def test_resolving_with_a_note_and_after_photos_keeps_them_for_staff_and_residents(
        app: Flask, case_id: int) -> None:
    with app.app_context():
        lifecycle.accept(case_id, member("L1").id)
        path = links.path(links.Purpose.RESOLVE, member("L1").id, case_id)
    client = app.test_client()
    page = client.get(path).get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'type="file"' in page
    answer = client.post(path, data={
        "csrf_token": csrf_token(client, path), "note": "更换了门机皮带",
        "photos": [(BytesIO(_jpeg("green")), "after.jpg")]},
        content_type="multipart/form-data")
    assert answer.status_code == 303
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert case.status == CaseStatus.RESOLVED
        done = result.result_of(case)
        assert done is not None and done.note == "更换了门机皮带" and done.by == "李师傅"
        assert done.photo_ids == result.after_photo_ids(case) and len(done.photo_ids) == 1
    factories.add_staff(app, "admin", StaffRole.ADMIN)
    staff = app.test_client()
    factories.login(staff, "admin")
    staff_page = staff.get(f"/staff/cases/{case_id}").get_data(as_text=True)
    assert "办理后照片" in staff_page and "更换了门机皮带" in staff_page
    assert staff.get(f"/staff/cases/photos/{done.photo_ids[0]}/thumbnail").status_code == 200
    member_page = client.get(answer.location).get_data(as_text=True)
    assert "办理后照片" in member_page


def test_a_file_that_is_not_a_photo_keeps_the_note_and_says_why(app: Flask,
                                                                 case_id: int) -> None:
    with app.app_context():
        lifecycle.accept(case_id, member("L1").id)
        path = links.path(links.Purpose.RESOLVE, member("L1").id, case_id)
    client = app.test_client()
    answer = client.post(path, data={
        "csrf_token": csrf_token(client, path), "note": "修好了",
        "photos": [(BytesIO(b"not a photo"), "x.jpg")]}, content_type="multipart/form-data")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "这不是照片" in page and "修好了" in page
    with app.app_context():
        assert db.session.get(Case, case_id).status == CaseStatus.ACCEPTED


def test_member_pages_carry_the_linli_name_and_say_what_they_never_ask(
        app: Flask, case_id: int) -> None:
    page = app.test_client().get(_case_path(app, "L1", case_id)).get_data(as_text=True)
    assert "邻里 · 社区值守" in page and "测试花园" in page
    assert "不会要求您输入密码、验证码或付款" in page


def test_the_short_link_in_an_alert_opens_the_accept_page_and_expires(
        app: Flask, case_id: int) -> None:
    with app.app_context():
        body = db.session.scalar(sa.select(Notification.body).where(
            Notification.member_id == member("L1").id, Notification.purpose == "alert"))
    path = re.search(r"http://linli\.test(/m/accept/\S+)", body)[1]
    token = path.rsplit("/", 1)[1]
    assert len(token) < 32
    client = app.test_client()
    assert "我来处理，接单" in client.get(path).get_data(as_text=True)
    assert client.get(f"/m/resolve/{token}").status_code == 403  # one purpose only
    assert client.get(path[:-2] + "AA").status_code == 403  # forged
    clock.move_to(START + links.LIFETIMES[links.Purpose.ACCEPT] + clock.MIN)
    expired = client.get(path)
    assert expired.status_code == 403 and "链接已过期" in expired.get_data(as_text=True)
