"""Leave a message: filed through file_report, a receipt, and every kind of bad input answered
with a clear message and nothing the resident typed lost."""

from __future__ import annotations

import re
from io import BytesIO

import pytest
import sqlalchemy as sa
from flask import Flask
from PIL import Image

from dispatch import clock
from dispatch.db import db
from dispatch.models import BlockedPhone, Case, Photo, PhotoDraft, Report
from dispatch.resident import scans
from tests.dispatch.resident.helpers import (
    Resident,
    case_of,
    jpeg_with_gps,
    png_bytes,
    receipt_token,
)
from tests.sql import sent


def _reports() -> list[Report]:
    return list(db.session.scalars(sa.select(Report).order_by(Report.id)))


def test_a_message_that_opens_a_case_reads_its_sticker_once_and_writes_three_rows(
        app: Flask, resident: Resident) -> None:
    """A storm of messages is paid for here: the sticker with its place and community in one
    query, the case, its first event and the report, and no read-back after the commit (the
    receipt's ids and link are known before it)."""
    token = resident.token()
    scans.flush(app)  # the page's scan is written now, not during the message
    with sent(app) as sql:
        response = resident.client.post(f"/s/{resident.stickers['TS-B1-U1-E1']}/message",
                                        data={"csrf_token": token, "category": "elevator"})
    assert receipt_token(response)
    statements = [" ".join(text.split()) for text, _ in sql]
    reads = [s for s in statements if s.startswith("SELECT")]
    assert len(reads) == 1 and "FROM sticker" in reads[0] and "community" in reads[0]
    writes = [s.split("(")[0].strip() for s in statements
              if s.startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == ['INSERT INTO "case"', "INSERT INTO case_event", "INSERT INTO report"]
    assert statements[-1].startswith("INSERT INTO report")  # nothing read after the commit


def test_a_message_opens_a_case_and_shows_a_receipt(app: Flask, resident: Resident) -> None:
    response = resident.message(text="电梯停在5楼不动", phone="138 0013 8000")
    token = receipt_token(response)
    receipt = resident.client.get(response.headers["Location"])
    html = receipt.get_data(as_text=True)
    with app.app_context():
        case = db.session.scalar(sa.select(Case))
        report = case.reports[0]
        assert (case.category, case.public_token, case.report_count) == ("elevator", token, 1)
        assert (report.text, report.callback_phone, report.anonymous) == (
            "电梯停在5楼不动", "+8613800138000", False)
        assert report.sticker_id is not None and len(report.client_hash) == 32
        number = case.number
    assert receipt.status_code == 200
    assert number in html and "30 分钟内会有人响应" in html
    assert f"http://linli.test/c/{token}" in html
    assert "电梯停在5楼不动" in html  # the resident's own words, on their own receipt
    assert "13800138000" not in html
    assert receipt.headers["Cache-Control"] == "private, no-store"


def test_expected_response_comes_from_the_category(resident: Resident) -> None:
    response = resident.message(place="TS-B1-U1", category="sanitation")
    assert "7 天内会有人响应" in resident.client.get(response.headers["Location"]).get_data(
        as_text=True)


def test_a_second_message_on_the_same_problem_joins_the_open_case(app: Flask,
                                                                  resident: Resident) -> None:
    first = receipt_token(resident.message(text="第一位"))
    second = resident.message(text="第二位", anonymous="y")
    # Same case, but the second resident's own link: never the first resident's.
    assert receipt_token(second) != first
    with app.app_context():
        assert case_of(first).id == case_of(receipt_token(second)).id
    assert "已合并到同一个案件" in resident.client.get(second.headers["Location"]).get_data(
        as_text=True)
    with app.app_context():
        assert [(r.text, r.anonymous) for r in _reports()] == [("第一位", False), ("第二位", True)]
        assert db.session.scalar(sa.select(sa.func.count(Case.id))) == 1


def test_a_receipt_never_shows_another_residents_message(app: Flask, client: Flask,
                                                         resident: Resident) -> None:
    token = receipt_token(resident.message(text="我家的门牌是 8-1201"))
    stranger = app.test_client()
    html = stranger.get(f"/c/{token}/receipt").get_data(as_text=True)
    assert "8-1201" not in html and "您的留言" not in html


@pytest.mark.parametrize(("fields", "error"), [
    ({"category": ""}, "请选择问题类型。"),
    ({"category": "no-such-category"}, "请选择问题类型。"),
    ({"text": "长" * 501}, "留言最多 500 字"),
    ({"phone": "12345"}, "回拨电话不正确"),
    ({"phone": "0752-2345678"}, "回拨电话不正确"),  # a landline needs the +86 form
])
def test_bad_input_is_explained_and_everything_typed_stays(app: Flask, resident: Resident,
                                                           fields: dict[str, str],
                                                           error: str) -> None:
    typed = {"text": "楼道灯坏了，晚上很黑", "phone": "13800138000", "anonymous": "y",
             "category": "repair", **fields}
    response = resident.message(place="TS-B1-U1", **typed)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert error in html and 'role="alert"' in html and 'aria-invalid="true"' in html
    assert f">{typed['text']}</textarea>" in html
    assert f'value="{typed["phone"]}"' in html
    assert 'name="anonymous" type="checkbox" value="y" checked' in html
    if typed["category"] == "repair":
        assert 'value="repair" checked' in html
    with app.app_context():
        assert _reports() == []


def test_a_rejected_form_keeps_its_photos_so_none_is_chosen_twice(app: Flask,
                                                                  resident: Resident) -> None:
    response = resident.message(phone="bad", text="看照片", photos=[(jpeg_with_gps(), "a.jpg")])
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "已收到的照片（不用重新选择）" in html and "请重新选择照片" not in html
    assert ">看照片</textarea>" in html
    kept = re.findall(r'name="kept_photo" value="(\d+)" checked', html)
    assert len(kept) == 1
    thumbnail = resident.client.get(re.search(r'<img src="(/s/[^"]+/kept/\d+)"', html).group(1))
    assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/jpeg"
    # Fixed and sent again with no file chosen: the kept photo goes with the report.
    fixed = resident.message(phone="13800138000", text="看照片", kept_photo=kept)
    with app.app_context():
        case = case_of(receipt_token(fixed))
        assert [len(r.photos) for r in case.reports] == [1]
        assert db.session.scalar(sa.select(sa.func.count(PhotoDraft.id))) == 0


def test_kept_photos_belong_to_the_browser_that_sent_them(app: Flask,
                                                          resident: Resident) -> None:
    html = resident.message(phone="bad", photos=[(jpeg_with_gps(), "a.jpg")]).get_data(
        as_text=True)
    path = re.search(r'<img src="(/s/[^"]+/kept/\d+)"', html).group(1)
    stranger = Resident(app.test_client(), resident.stickers)
    assert stranger.client.get(path).status_code == 404
    kept = re.findall(r'name="kept_photo" value="(\d+)"', html)
    filed = stranger.message(text="别人的照片", kept_photo=kept)
    with app.app_context():
        assert [len(r.photos) for r in case_of(receipt_token(filed)).reports] == [0]


def test_photos_are_reencoded_without_gps_or_camera_metadata(app: Flask,
                                                             resident: Resident) -> None:
    original = jpeg_with_gps((640, 480))
    response = resident.message(photos=[(original, "lift.jpg"), (png_bytes(), "b.png")])
    receipt_token(response)
    with app.app_context():
        stored = db.session.scalars(sa.select(Photo).order_by(Photo.id)).all()
        assert [p.content_type for p in stored] == ["image/jpeg", "image/jpeg"]
        first = stored[0]
        assert b"Exif" not in first.data and b"PhoneMaker" not in first.data
        image = Image.open(BytesIO(first.data))
        assert image.getexif().get_ifd(0x8825) == {} and len(image.getexif()) == 0
        assert "exif" not in image.info
        # the orientation was applied to the pixels: 640×480 shown rotated is 480×640
        assert (first.width, first.height) == image.size == (480, 640)


@pytest.mark.parametrize(("photos", "error"), [
    ([(png_bytes(), f"{n}.png") for n in range(4)], "最多只能上传 3 张照片"),
    ([(b"%PDF-1.4 not a photo", "x.jpg")], "有一个文件不是照片"),
    ([(b"GIF89a" + b"\0" * 40, "x.gif")], "有一个文件不是照片"),
])
def test_bad_photos_are_refused_with_a_clear_message(app: Flask, resident: Resident,
                                                     photos: list[tuple[bytes, str]],
                                                     error: str) -> None:
    response = resident.message(text="留着", photos=photos)
    assert response.status_code == 422
    assert error in response.get_data(as_text=True)
    with app.app_context():
        assert _reports() == [] and db.session.scalar(sa.select(sa.func.count(Photo.id))) == 0


def test_a_photo_over_the_size_limit_is_refused(app: Flask, resident: Resident,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatch.resident import photos

    monkeypatch.setattr(photos, "MAX_BYTES", 1000)
    response = resident.message(text="大照片", photos=[(jpeg_with_gps((800, 800)), "big.jpg")])
    assert response.status_code == 422
    assert "照片太大了" in response.get_data(as_text=True)


def test_a_request_over_max_content_length_gets_the_friendly_413_page(
        app: Flask, resident: Resident) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 50_000
    response = resident.message(text="x", photos=[(b"\xff" * 60_000, "huge.jpg")])
    html = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "上传的照片太大了" in html and "tel:0752-1234567" in html
    with app.app_context():
        assert _reports() == []


def test_a_blocked_call_back_phone_is_refused_politely_and_nothing_is_filed(
        app: Flask, resident: Resident) -> None:
    with app.app_context():
        db.session.add(BlockedPhone(phone="+8613800138000", reason="骚扰",
                                      created_at=clock.now()))
        db.session.commit()
    response = resident.message(text="我的留言", phone="+86 138-0013-8000")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "这个号码不能用于回拨" in html and ">我的留言</textarea>" in html
    assert "骚扰" not in html
    with app.app_context():
        assert _reports() == []
    # Without the number the message goes through.
    receipt_token(resident.message(text="我的留言", phone=""))


@pytest.mark.parametrize("payload", [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</textarea><b>bold</b>",
])
def test_user_text_is_escaped_everywhere_it_is_shown(app: Flask, resident: Resident,
                                                     payload: str) -> None:
    reshown = resident.message(text=payload, phone=payload).get_data(as_text=True)
    receipt = resident.client.get(resident.message(text=payload).headers["Location"])
    for html in (reshown, receipt.get_data(as_text=True)):
        assert payload not in html
        assert "&lt;" in html
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold" not in html


def test_a_post_without_the_csrf_token_is_refused_and_files_nothing(app: Flask,
                                                                    resident: Resident) -> None:
    code = resident.stickers["TS-B1-U1"]
    resident.scan("TS-B1-U1")
    response = resident.client.post(f"/s/{code}/message",
                                    data={"category": "repair", "text": "没有令牌"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "提交没有成功" in html and ">没有令牌</textarea>" in html
    assert 'value="repair" checked' in html
    with app.app_context():
        assert _reports() == []
    assert resident.client.post(f"/s/{code}/me-too/1", data={}).status_code == 400
