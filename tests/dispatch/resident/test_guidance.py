"""The resident is told the truth and helped choose: the headline follows the schedule, each
category has an example, urgent words suggest the urgent category (in the browser and again on
the server), and the status page shows what was done and asks the 回访 in words."""

from __future__ import annotations

import re
from io import BytesIO

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import clock
from dispatch.case import lifecycle
from dispatch.community import CommunityFileError, import_data, tables_to_data
from dispatch.community.export import export_community
from dispatch.db import db
from dispatch.models import Case, Community, Member, Photo, Urgency
from dispatch.resident import photos
from tests.clock import START, move_to
from tests.dispatch.resident.helpers import Resident, case_of, jpeg_with_gps, receipt_token

SATURDAY_NIGHT = START.replace(day=28, hour=22)  # START is Monday 30 November, 10:00


def _resolve(case_id: int, note: str) -> None:
    member = db.session.scalar(sa.select(Member).where(Member.code == "L1"))
    lifecycle.resolve(case_id, member.id, note)


# --- the headline follows the schedule -------------------------------------------------

def test_a_low_urgency_case_at_the_weekend_says_when_it_will_be_passed_on(
        app: Flask, resident: Resident, frozen_clock: None) -> None:
    move_to(SATURDAY_NIGHT)
    response = resident.message(place="TS-B1-U1", category="sanitation", text="垃圾没清运")
    token = receipt_token(response)
    waiting = "非紧急，将在工作时间 周一 08:30 通知负责人"
    assert waiting in resident.client.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        case = case_of(token)
        assert case.urgency == Urgency.LOW
        lifecycle.run_step(case.id, case.token, clock.now())  # the ladder puts the ask off
    page = resident.client.get(f"/c/{token}").get_data(as_text=True)
    assert waiting in page and "正在通知负责人" not in page.replace(waiting, "")
    live = resident.client.get(f"/c/{token}/live").get_json()
    assert live["status_text"] == waiting


def test_in_working_hours_or_when_urgent_the_headline_is_unchanged(
        app: Flask, resident: Resident, frozen_clock: None) -> None:
    token = receipt_token(resident.message(place="TS-B1-U1", category="sanitation"))
    assert "非紧急" not in resident.client.get(f"/c/{token}").get_data(as_text=True)
    move_to(SATURDAY_NIGHT)
    urgent = receipt_token(resident.message(place="TS-B1-U1", category="safety"))
    assert "非紧急" not in resident.client.get(f"/c/{urgent}").get_data(as_text=True)


# --- category help and the keyword nudge ------------------------------------------------

def test_every_category_has_a_one_line_example(resident: Resident) -> None:
    html = resident.scan("TS-B1-U1").get_data(as_text=True)
    for code in ("repair", "elevator", "safety", "sanitation", "other"):
        assert re.search(rf'value="{code}"[^>]*aria-describedby="ex-{code}"', html)
        assert f'<span class="ex" id="ex-{code}">' in html
    assert "如：堵了消防通道" in html


def test_the_community_file_sets_its_own_examples_and_urgent_words(
        app: Flask, resident: Resident) -> None:
    with app.app_context():
        code = db.session.scalar(sa.select(Community.code))
        tables = export_community(db.session(), db.session.scalar(sa.select(Community)))
        for row in tables["categories"]:
            if row["code"] == "sanitation":
                row.update(example="如：小区门口垃圾满了", example_en="e.g. bins full")
        tables["urgent_words"] = [{"word": "高空抛物", "category": "safety"}]
        import_data(tables_to_data(tables, "test"))
        again = export_community(db.session(), db.session.scalar(
            sa.select(Community).where(Community.code == code)))
        assert again["urgent_words"] == [{"word": "高空抛物", "category": "safety"}]
        refused = {**tables, "urgent_words": [{"word": "垃圾", "category": "sanitation"}]}
        with pytest.raises(CommunityFileError, match="not an urgent category"):
            import_data(tables_to_data(refused, "test"))
    html = resident.scan("TS-B1-U1").get_data(as_text=True)
    assert "如：小区门口垃圾满了" in html and "&#34;高空抛物&#34;:&#34;safety&#34;" in html
    assert "消防通道" not in html.split("data-keywords=", 1)[1][:200]  # the file's list only
    kept = resident.message(place="TS-B1-U1", category="sanitation", text="有人高空抛物")
    assert "您写到了“高空抛物”" in kept.get_data(as_text=True)


def test_an_urgent_word_under_a_slow_category_asks_first_and_keeps_text_and_photos(
        app: Flask, resident: Resident) -> None:
    response = resident.message(place="TS-B1-U1", category="sanitation",
                                text="楼道堆物挡住了消防通道", phone="13800138000",
                                photos=[(jpeg_with_gps(), "a.jpg")])
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "您写到了“消防通道”" in html
    assert '<button class="btn danger" name="choose" value="safety">改为“安全隐患”并提交' in html
    assert ">楼道堆物挡住了消防通道</textarea>" in html and 'value="13800138000"' in html
    kept = re.findall(r'name="kept_photo" value="(\d+)" checked', html)
    assert len(kept) == 1
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Case.id))) == 0
    sent = resident.message(place="TS-B1-U1", category="sanitation", choose="safety",
                            text="楼道堆物挡住了消防通道", kept_photo=kept)
    with app.app_context():
        case = case_of(receipt_token(sent))
        assert (case.category, case.urgency) == ("safety", Urgency.URGENT)
        assert [len(r.photos) for r in case.reports] == [1]


def test_the_resident_may_keep_the_category_they_chose(app: Flask, resident: Resident) -> None:
    sent = resident.message(place="TS-B1-U1", category="sanitation", choose="keep",
                            text="消防通道旁边的垃圾桶满了")
    with app.app_context():
        assert case_of(receipt_token(sent)).category == "sanitation"


def test_no_nudge_when_the_category_is_already_urgent_or_the_words_are_plain(
        resident: Resident) -> None:
    assert resident.message(place="TS-B1-U1", category="safety",
                            text="消防通道被堵").status_code == 303
    assert resident.message(place="TS-B1-U1", category="sanitation",
                            text="垃圾没清运").status_code == 303


# --- 办理结果 and the 回访 ------------------------------------------------------------------

def test_the_status_page_shows_the_resolve_note_without_phone_numbers(
        app: Flask, resident: Resident) -> None:
    token = receipt_token(resident.message())
    with app.app_context():
        _resolve(case_of(token).id, "已更换门机板，如再有问题请打 13912345678")
    html = resident.client.get(f"/c/{token}").get_data(as_text=True)
    assert "办理结果" in html and "已更换门机板" in html and "13912345678" not in html


def test_the_callback_asks_once_and_in_words(app: Flask, resident: Resident) -> None:
    token = receipt_token(resident.message())
    with app.app_context():
        _resolve(case_of(token).id, "")
    html = resident.client.get(f"/c/{token}").get_data(as_text=True)
    visible = re.sub(r'<legend class="sr-only">[^<]*</legend>', "", html)
    assert visible.count("问题解决了吗") == 1
    for value, word in (("5", "满意"), ("3", "基本满意"), ("1", "不满意")):
        assert f'name="satisfaction" value="{value}"> {word}</label>' in html
    assert 'value="2"' not in html and 'value="4"' not in html
    assert "办理结果" not in html  # nothing was written: no empty box
    resident.callback(token, solved="yes", satisfaction="3")
    with app.app_context():
        assert case_of(token).callback_at is not None


def test_the_status_page_shows_the_after_photos_and_only_them(app: Flask,
                                                              resident: Resident) -> None:
    token = receipt_token(resident.message(photos=[(jpeg_with_gps(), "before.jpg")]))
    with app.app_context():
        case = case_of(token)
        resident_photo = case.reports[0].photos[0].id
        member = db.session.scalar(sa.select(Member).where(Member.code == "L1"))
        after = photos.rows([photos.reencode(BytesIO(jpeg_with_gps((800, 600))))])
        lifecycle.resolve(case.id, member.id, "已修好", photos=after)
        after_id = db.session.scalar(sa.select(Photo.id).where(Photo.case_id == case.id))
    html = resident.client.get(f"/c/{token}").get_data(as_text=True)
    assert f'src="/c/{token}/after/{after_id}/small"' in html and "办理后照片 1" in html
    small = resident.client.get(f"/c/{token}/after/{after_id}/small")
    assert small.status_code == 200 and small.mimetype == "image/jpeg"
    assert resident.client.get(f"/c/{token}/after/{after_id}").status_code == 200
    # A resident's own photo is not an after-photo; nor is a photo seen through a wrong link.
    assert resident.client.get(f"/c/{token}/after/{resident_photo}").status_code == 404
    assert resident.client.get(f"/c/{'x' * 22}/after/{after_id}").status_code == 404
