"""The resident's whole journey in a real browser at a phone's size, with and without JavaScript:
scan → leave a message (a mistake first) → receipt → status page → 回访.

The case moves on through the dispatch engine itself (`dispatch.escalation`): its first step,
then a member accepting, arriving and resolving, as their phone links would do it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from PIL import Image

from dispatch.case import lifecycle
from dispatch.db import db
from dispatch.models import Callback, Case, CaseStatus, Member, Photo, Place, PlaceKind, Scan
from dispatch.models import Sticker as StickerRow
from dispatch.resident import scans
from tests.browser.conftest import PHONE, Live
from tests.dispatch.resident.helpers import jpeg_with_gps

pytestmark = pytest.mark.browser

TIMEOUT = 10_000  # ms


@pytest.fixture
def app(any_app: Flask) -> Flask:
    """The resident flow on the embedded default (SQLite, `scripts/run-demo`) as well as on
    PostgreSQL: the server in `live` serves this app."""
    return any_app


def _elevator_code(live: Live) -> str:
    with live.app.app_context():
        return db.session.scalar(sa.select(StickerRow.code).join(Place).where(
            Place.kind == PlaceKind.ELEVATOR).order_by(Place.id).limit(1))


def _case(live: Live) -> Case:
    return db.session.scalar(sa.select(Case).order_by(Case.id.desc()).limit(1))


def _responder(place: Place) -> Member:
    """The building's first party-group member: the one shown on the sticker page."""
    from dispatch.resident.board import responders

    wanted = responders(place)[0].names[0]
    return next(m for m in db.session.scalars(sa.select(Member)) if m.display_name == wanted)


def _notify_and_accept(live: Live) -> str:
    """The engine takes the first step, then the building's member accepts; their name."""
    with live.app.app_context():
        case = _case(live)
        lifecycle.run_step(case.id, case.token)
        responder = _responder(case.place)
        lifecycle.accept(case.id, responder.id)
        return responder.display_name


def _arrive_and_resolve(live: Live) -> None:
    with live.app.app_context():
        case = _case(live)
        lifecycle.on_site(case.id, case.accepted_by_id)
        lifecycle.resolve(case.id, case.accepted_by_id, "换了门机控制板")


def _leave_a_message(page: Any, photo: Path, shots: Any, *, javascript: bool) -> None:
    """Fill the form with a bad phone first, check nothing typed (or chosen) is lost, then
    fix the phone and send it, without choosing the photo again."""
    page.fill("#f-text", "电梯停在5楼，门打不开 <b>急</b>")
    page.fill("#f-phone", "12345")
    page.check("#f-anonymous")
    page.set_input_files("#f-photos", str(photo))
    if javascript:  # the shrunk photo is shown at once
        page.wait_for_selector("#thumbs li img", timeout=TIMEOUT)
    page.click("text=提交留言")
    if javascript:  # checked in the browser: nothing was sent
        message = page.evaluate("document.getElementById('f-phone').validationMessage")
        assert "回拨电话不正确" in message
    else:  # checked on the server: the photo is kept there
        page.wait_for_selector(".errors", timeout=TIMEOUT)
        assert "回拨电话不正确" in page.inner_text(".errors")
        assert "请重新选择照片" not in page.inner_text("main")
        assert page.is_visible("#kept img") and page.is_checked("input[name=kept_photo]")
    assert page.input_value("#f-text") == "电梯停在5楼，门打不开 <b>急</b>"
    assert page.input_value("#f-phone") == "12345"
    assert page.is_checked("#f-anonymous") and page.is_checked("input[value=elevator]")
    shots(page, "02-mistake-kept")
    page.fill("#f-phone", "138 0013 8000")
    page.click("text=提交留言")
    page.wait_for_selector("text=已收到您的反映", timeout=TIMEOUT)


def _check_receipt(page: Any, live: Live, shots: Any) -> str:
    with live.app.app_context():
        case = _case(live)
        number, token = case.number, case.public_token
        report = case.reports[0]
        assert report.callback_phone == "+8613800138000" and report.anonymous
        photo = db.session.scalar(sa.select(Photo).where(Photo.report_id == report.id))
        assert photo is not None and b"Exif" not in photo.data
    body = page.inner_text("main")
    assert number in body and "30 分钟内会有人响应" in body and "电梯停在5楼" in body
    assert f"{live.url}/c/{token}" in body
    shots(page, "03-receipt")
    return token


def test_resident_flow_with_javascript(live: Live, chromium: Any, shots: Any,
                                      tmp_path: Path) -> None:
    photo = tmp_path / "lift.jpg"
    photo.write_bytes(jpeg_with_gps())
    code = _elevator_code(live)
    context = chromium.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{live.url}/S/{code}")
        assert page.inner_text("h1") == "1栋 1单元 · 1号电梯"
        assert page.is_visible("text=被困请按警铃")
        shots(page, "01-scan")
        call = page.get_attribute("text=一键紧急呼叫值班人员", "href")
        answer = page.request.get(f"{live.url}{call}", max_redirects=0)
        assert answer.status == 302 and answer.headers["location"] == "tel:0752-2345678"

        _leave_a_message(page, photo, shots, javascript=True)
        token = _check_receipt(page, live, shots)
        page.click("a.btn >> text=查看处理进度")
        page.wait_for_selector("#timeline >> text=已收到反映", timeout=TIMEOUT)
        page.evaluate("window.stayed = true")

        name = _notify_and_accept(live)  # the page updates itself
        page.wait_for_selector(f"#timeline >> text={name}已接单", timeout=TIMEOUT)
        assert page.inner_text("#status-text") == f"{name}已接单，正在处理"
        assert page.evaluate("window.stayed") is True  # no reload happened
        shots(page, "04-status-live")

        _arrive_and_resolve(live)  # the page reloads itself to bring up the 回访
        page.wait_for_selector("#callback", timeout=TIMEOUT)
        shots(page, "05-callback")
        page.check("input[name=solved][value=yes]")
        page.check("input[name=contacted][value=yes]")
        page.check("input[name=satisfaction][value='5']")
        page.fill("#f-comment", "很快就修好了，谢谢")
        page.click("text=提交回访")
        page.wait_for_selector("text=感谢您的回访", timeout=TIMEOUT)
        assert "已办结" in page.inner_text("#status-text")
        shots(page, "06-closed")
    finally:
        context.close()
    scans.flush(live.app)
    with live.app.app_context():
        case = db.session.scalar(sa.select(Case).where(Case.public_token == token))
        callback = db.session.scalar(sa.select(Callback))
        assert case.status == CaseStatus.CLOSED and case.callback_at is not None
        assert (callback.solved.value, callback.satisfaction) == ("yes", 5)
        assert db.session.scalar(sa.select(sa.func.count(Scan.id)).where(
            Scan.action == "call")) == 1


def test_resident_flow_without_javascript(live: Live, chromium: Any, shots: Any,
                                         tmp_path: Path) -> None:
    photo = tmp_path / "lift.png"
    Image.new("RGB", (300, 200), "gray").save(photo)
    code = _elevator_code(live)
    context = chromium.new_context(viewport=PHONE, java_script_enabled=False, locale="zh-CN")
    neighbour = chromium.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{live.url}/S/{code}")
        shots(page, "01-scan")
        _leave_a_message(page, photo, shots, javascript=False)
        token = _check_receipt(page, live, shots)

        # A neighbour scans the same lift and taps 我也遇到了: their own receipt and link.
        other = neighbour.new_page()
        other.goto(f"{live.url}/S/{code}")
        other.click("text=我也遇到了")
        other.wait_for_selector("text=已合并到同一个案件", timeout=TIMEOUT)
        assert token not in other.content() and "/c/" in other.url
        shots(other, "07-neighbour-me-too")
        # …and switches to English, which sticks for the next page.
        other.click("text=English")
        other.goto(f"{live.url}/S/{code}")
        assert other.inner_text("h2#sos") == "Trapped in the lift?"

        page.click("a.btn >> text=查看处理进度")
        assert "已收到反映" in page.inner_text("#timeline")
        assert "又有邻居也遇到了这个问题" in page.inner_text("#timeline")
        name = _notify_and_accept(live)
        _arrive_and_resolve(live)
        page.click("text=刷新，看最新进度")
        page.wait_for_selector("#callback", timeout=TIMEOUT)
        timeline = page.inner_text("#timeline")
        assert f"{name}已接单" in timeline and f"{name}已处理完毕" in timeline
        shots(page, "05-callback")
        page.check("input[name=solved][value=no]")
        page.fill("#f-comment", "电梯还是停在5楼")
        page.click("text=提交回访")
        page.wait_for_selector("text=已重新派单", timeout=TIMEOUT)
        assert "未解决，已重新派单" in page.inner_text("#timeline")
        shots(page, "06-reopened")
    finally:
        context.close()
        neighbour.close()
    with live.app.app_context():
        case = db.session.scalar(sa.select(Case).where(Case.public_token == token))
        assert (case.status, case.reopen_count, case.report_count) == (CaseStatus.OPEN, 1, 2)
