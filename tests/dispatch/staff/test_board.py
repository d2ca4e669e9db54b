"""The live board, the case page, photos, and the staff actions on a case."""

from __future__ import annotations

import re
from datetime import timedelta
from io import BytesIO
from typing import Any

import sqlalchemy as sa
from flask import Flask
from PIL import Image

from dispatch import clock
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import (
    AuditLog,
    Case,
    CaseEvent,
    CaseStatus,
    Channel,
    Member,
    Notification,
    NotificationStatus,
    Photo,
    Report,
    ReportKind,
    Resolution,
)
from dispatch.resident import photos
from dispatch.staff import board
from tests import factories
from tests.dispatch.staff.conftest import case_row, client_for, post
from tests.dispatch.staff.history import make_case


def _number(app: Flask, case_id: int) -> str:
    with app.app_context():
        return db.session.get(Case, case_id).number


def test_the_board_lists_open_cases_overdue_first_then_oldest(app: Flask,
                                                             console: dict[str, Any]) -> None:
    with app.app_context():
        fresh = make_case("TS-B2-U1", "noise", clock.now() - timedelta(minutes=2)).id
        db.session.commit()
    page = client_for(app, "admin").get("/staff/cases/").get_data(as_text=True)
    numbers = [_number(app, console["cases"][k]) for k in ("F", "J")] + [_number(app, fresh)]
    positions = [page.index(n) for n in numbers]
    assert positions == sorted(positions)  # F (not accepted) and J (not on site), then the new
    assert "超时未接单" in page and "超时未到场" in page
    assert '<meta http-equiv="refresh"' not in page  # it updates in place (static/board.js)
    assert 'data-live="/staff/cases/live"' in page and ">刷新</a>" in page
    assert _number(app, console["cases"]["A"]) not in page  # closed cases are not on the board


def test_overdue_follows_the_case_policy_snapshot(app: Flask, console: dict[str, Any]) -> None:
    now = clock.now()
    with app.app_context():
        urgent = make_case("TS-B1-U1-E1", "elevator", now - timedelta(minutes=6))
        normal = make_case("TS-B1-U1", "repair", now - timedelta(minutes=6))
        assert board.overdue(urgent, now) == "超时未接单"  # 5 minutes for urgent
        assert board.overdue(normal, now) is None  # 30 minutes for normal


def test_the_case_page_shows_timeline_reports_photos_and_deliveries(
        app: Flask, console: dict[str, Any]) -> None:
    case_id = console["cases"]["B"]
    with app.app_context():
        case = db.session.get(Case, case_id)
        report = Report(case=case, place_id=case.place_id, kind=ReportKind.MESSAGE,
                        category="repair", text="水管爆了", callback_phone="13900001111",
                        created_at=case.reported_at)
        db.session.add(report)
        db.session.flush()
        db.session.add(Photo(report_id=report.id, content_type="image/jpeg", data=b"\xff\xd8jpeg",
                             width=10, height=10))
        db.session.add(Notification(case_id=case_id, member_id=case.accepted_by_id,
                                    channel=Channel.SMS, to_address="+8613800138003",
                                    purpose="alert", body="…", dedupe_key="t1",
                                    status=NotificationStatus.DELIVERED, rung=2,
                                    created_at=case.reported_at))
        db.session.add(CaseEvent(case_id=case_id, kind="accepted", message="张伟在第2级接单",
                                 at=case.reported_at))
        db.session.commit()
        photo_id = db.session.scalar(sa.select(Photo.id))
    page = client_for(app, "admin").get(f"/staff/cases/{case_id}").get_data(as_text=True)
    for text in ("水管爆了", "13900001111", "张伟在第2级接单", "delivered", "网格",
                 f"/staff/cases/photos/{photo_id}"):
        assert text in page


def test_photos_are_served_only_to_staff(app: Flask, console: dict[str, Any]) -> None:
    with app.app_context():
        case = db.session.get(Case, console["cases"]["B"])
        report = Report(case=case, place_id=case.place_id, kind=ReportKind.MESSAGE,
                        category="repair", created_at=case.reported_at)
        db.session.add(report)
        db.session.flush()
        photo = Photo(report_id=report.id, content_type="image/jpeg", data=b"JPEG", width=1,
                      height=1)
        db.session.add(photo)
        db.session.commit()
        path = f"/staff/cases/photos/{photo.id}"
    assert app.test_client().get(path).status_code == 302  # to the login page
    response = client_for(app, "admin").get(path)
    assert response.status_code == 200 and response.data == b"JPEG"
    assert response.headers["Cache-Control"].startswith("private")
    assert client_for(app, "sec2").get(path).status_code == 404


def test_a_note_goes_on_the_timeline_and_in_the_audit_log(app: Flask,
                                                          console: dict[str, Any]) -> None:
    case_id = console["cases"]["F"]
    client = client_for(app, "admin")
    response = post(client, f"/staff/cases/{case_id}/note", {"text": "已电话联系物业"})
    assert response.status_code == 302
    with app.app_context():
        event = db.session.scalar(sa.select(CaseEvent).where(CaseEvent.kind == "note"))
        assert event.message == "已电话联系物业" and event.staff_id is not None
        entry = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "case.note"))
        assert entry.target == db.session.get(Case, case_id).number


def test_closing_frees_the_key_bumps_the_token_and_cancels_unsent_messages(
        app: Flask, console: dict[str, Any]) -> None:
    case_id = console["cases"]["F"]
    with app.app_context():
        case = db.session.get(Case, case_id)
        case.next_step_at = clock.now()
        before = case.token
        db.session.add(Notification(case_id=case_id, channel=Channel.SMS, to_address="x",
                                    purpose="alert", body="…", dedupe_key="pending-1",
                                    created_at=case.reported_at))
        db.session.commit()
    post(client_for(app, "admin"), f"/staff/cases/{case_id}/close",
         {"fixed": "0", "note": "物业无法处理"})
    case = case_row(app, case_id)
    assert case.status == CaseStatus.CLOSED and case.resolution == Resolution.NOT_FIXED
    assert case.open_key is None and case.next_step_at is None and case.token == before + 1
    assert case.closed_at is not None and case.resolved_at is None and case.closed_rung == 1
    with app.app_context():
        assert db.session.scalar(sa.select(Notification.status)) == NotificationStatus.CANCELLED
        closed = db.session.scalar(sa.select(CaseEvent).where(CaseEvent.kind == "closed"))
        assert "未解决" in closed.message and "物业无法处理" in closed.message


def test_closing_as_fixed_marks_the_case_resolved_too(app: Flask,
                                                      console: dict[str, Any]) -> None:
    case_id = console["cases"]["J"]
    post(client_for(app, "admin"), f"/staff/cases/{case_id}/close", {"fixed": "1"})
    case = case_row(app, case_id)
    assert case.resolution == Resolution.FIXED and case.resolved_at == case.closed_at
    assert post(client_for(app, "admin"), f"/staff/cases/{case_id}/close",
                {"fixed": "1"}).status_code == 302  # again: refused with a message
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CaseEvent).where(
            CaseEvent.kind == "closed")) == 1


def test_merging_a_duplicate_closes_it_and_counts_its_reports_on_the_other(
        app: Flask, console: dict[str, Any]) -> None:
    with app.app_context():
        twin = make_case("TS-B3-U1", "other", clock.now() - timedelta(hours=1)).id
        db.session.commit()
    into = console["cases"]["F"]
    client = client_for(app, "admin")
    post(client, f"/staff/cases/{twin}/merge", {"into": _number(app, into)})
    duplicate, kept = case_row(app, twin), case_row(app, into)
    assert duplicate.resolution == Resolution.DUPLICATE and duplicate.merged_into_id == into
    assert duplicate.open_key is None and kept.report_count == 2
    page = client.get(f"/staff/cases/{into}").get_data(as_text=True)
    assert _number(app, twin) in page
    response = post(client, f"/staff/cases/{into}/merge", {"into": _number(app, into)})
    assert response.status_code == 302 and case_row(app, into).status == CaseStatus.OPEN


def test_a_phone_callback_on_a_resolved_case_closes_it(app: Flask,
                                                       console: dict[str, Any]) -> None:
    with app.app_context():
        resolved = make_case("TS-B1-U1", "repair", clock.now() - timedelta(days=1),
                             accepted=timedelta(minutes=5), by="L1", rung=1,
                             resolved=timedelta(hours=2)).id
        db.session.commit()
    post(client_for(app, "admin"), f"/staff/cases/{resolved}/callback",
         {"solved": "partly", "satisfaction": "4"})
    case = case_row(app, resolved)
    assert case.status == CaseStatus.CLOSED and case.callback_at is not None


def test_viewers_may_look_but_not_act(app: Flask, console: dict[str, Any]) -> None:
    case_id = console["cases"]["F"]
    viewer = client_for(app, "viewer")
    page = viewer.get(f"/staff/cases/{case_id}").get_data(as_text=True)
    assert page.count("<form") == 1  # only the logout button
    for action in ("note", "close", "merge", "callback", "reassign", "refer"):
        assert post(viewer, f"/staff/cases/{case_id}/{action}", {"text": "x"}).status_code == 403
    assert case_row(app, case_id).status == CaseStatus.OPEN


def test_case_forms_need_the_csrf_token(app: Flask, console: dict[str, Any]) -> None:
    client = client_for(app, "admin")
    case_id = console["cases"]["F"]
    assert client.post(f"/staff/cases/{case_id}/note", data={"text": "x"}).status_code == 400
    assert client.post(f"/staff/cases/{case_id}/close", data={"fixed": "1"}).status_code == 400
    page = client.get(f"/staff/cases/{case_id}").get_data(as_text=True)
    # every POST form carries it; the GET searches need none
    assert page.count('name="csrf_token"') == page.count('<form method="post"')


def test_reassigning_hands_an_accepted_case_over_through_the_engine(
        app: Flask, console: dict[str, Any]) -> None:
    case_id = console["cases"]["J"]
    with app.app_context():
        colleague = db.session.scalar(sa.select(Member.id).where(Member.code == "B1"))
    response = post(client_for(app, "admin"), f"/staff/cases/{case_id}/reassign",
                    {"member": colleague})
    assert response.status_code == 302
    case = case_row(app, case_id)
    assert case.accepted_by_id == colleague and case.status == CaseStatus.ACCEPTED
    assert case.dispatched_at is not None and case.dispatched_by_id is not None
    with app.app_context():
        kinds = list(db.session.scalars(sa.select(CaseEvent.kind).where(
            CaseEvent.case_id == case_id).order_by(CaseEvent.id)))
        told = db.session.scalar(sa.select(Notification).where(Notification.case_id == case_id))
        audited = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "case.reassign"))
    assert kinds[-2:] == ["note", "handed_over"] and told.member_id == colleague
    assert audited.data == {"member": "B1", "verb": "改派"}


def test_an_open_case_can_be_referred_up(app: Flask, console: dict[str, Any]) -> None:
    case_id = console["cases"]["F"]
    client = client_for(app, "admin")
    page = client.get(f"/staff/cases/{case_id}").get_data(as_text=True)
    assert "指派给" in page and "立即上报上一级" in page
    post(client, f"/staff/cases/{case_id}/refer")
    case = case_row(app, case_id)
    assert case.rung > 1 and case.status == CaseStatus.OPEN
    with app.app_context():
        events = db.session.execute(sa.select(CaseEvent.kind, CaseEvent.message).where(
            CaseEvent.case_id == case_id)).all()
    assert {"note", "escalated"} <= {kind for kind, _ in events}
    assert any(kind == "escalated" and "要求立即上报" in message for kind, message in events)


def test_assigning_an_open_case_asks_the_member_and_waits_for_their_own_acceptance(
        app: Flask, console: dict[str, Any]) -> None:
    case_id = console["cases"]["F"]
    with app.app_context():
        colleague = db.session.scalar(sa.select(Member.id).where(Member.code == "B1"))
    post(client_for(app, "admin"), f"/staff/cases/{case_id}/reassign", {"member": colleague})
    case = case_row(app, case_id)
    assert case.status == CaseStatus.OPEN and case.accepted_by_id is None
    assert case.accepted_at is None  # staff's decision is not the member's 接单
    assert case.dispatched_to_id == colleague and case.dispatched_at is not None
    assert case.next_step_at is not None  # the ladder resumes if they do not take it
    with app.app_context():
        kinds = list(db.session.scalars(sa.select(CaseEvent.kind).where(
            CaseEvent.case_id == case_id).order_by(CaseEvent.id)))
        told = db.session.scalar(sa.select(Notification).where(
            Notification.case_id == case_id, Notification.purpose == "assigned"))
    assert kinds[-1] == "dispatched"
    assert told.member_id == colleague and "指派给您" in told.body


def test_referring_an_accepted_case_puts_it_back_on_the_ladder(
        app: Flask, console: dict[str, Any]) -> None:
    case_id = console["cases"]["J"]
    post(client_for(app, "admin"), f"/staff/cases/{case_id}/refer")
    case = case_row(app, case_id)
    assert case.status == CaseStatus.OPEN and case.accepted_by_id is None and case.rung == 2


def _phone_photo(size: int) -> bytes:
    """A JPEG as a phone sends it, re-encoded the way uploads are, close to `size` bytes."""
    noise = Image.effect_noise((280, 210), 40).convert("RGB")  # detail a camera would see
    out = BytesIO()
    noise.resize((1200, 900)).save(out, "JPEG", quality=95)
    stored = photos.reencode(BytesIO(out.getvalue()))
    assert abs(len(stored.data) - size) < size * 0.3, len(stored.data)
    return out.getvalue()


def test_the_case_page_loads_small_thumbnails_and_links_the_full_photo(
        app: Flask, console: dict[str, Any]) -> None:
    with app.app_context():
        ready = photos.reencode(BytesIO(_phone_photo(228_000)))
        filed = file_report(factories.place("TS-B2-U1"), "noise", text="楼上很吵",
                            photos=photos.rows([ready]))
        case_id, full = filed.case.id, len(ready.data)
    client = client_for(app, "admin")
    page = client.get(f"/staff/cases/{case_id}").get_data(as_text=True)
    images = re.findall(r'<img[^>]* src="([^"]+)"', page)
    links = re.findall(r'<a href="([^"]+)"><img', page)
    assert len(images) == 1 and len(links) == 1
    thumbnail = client.get(images[0])
    assert thumbnail.status_code == 200 and thumbnail.content_type == "image/jpeg"
    assert len(thumbnail.data) < 12_000  # a few KB, not the 228 KB photo
    assert len(page.encode()) + len(thumbnail.data) < 30_000  # the page as it loads
    assert max(Image.open(BytesIO(thumbnail.data)).size) <= 192  # sharp at 96 px on 2× screens
    assert len(client.get(links[0]).data) == full  # a click still opens the whole photo


def test_a_photo_stored_without_a_thumbnail_gets_one_on_first_view(
        app: Flask, console: dict[str, Any]) -> None:
    with app.app_context():
        ready = photos.reencode(BytesIO(_phone_photo(228_000)))
        filed = file_report(factories.place("TS-B2-U1"), "noise", text="楼上很吵",
                            photos=[Photo(content_type="image/jpeg", data=ready.data,
                                          width=ready.width, height=ready.height)])
        photo_id = filed.report.photos[0].id
    client = client_for(app, "admin")
    first = client.get(f"/staff/cases/photos/{photo_id}/thumbnail")
    assert first.status_code == 200 and len(first.data) < 12_000
    with app.app_context():  # kept, so the next view does not decode the photo again
        assert db.session.get(Photo, photo_id).thumbnail == first.data
    assert client_for(app, "sec2").get(
        f"/staff/cases/photos/{photo_id}/thumbnail").status_code == 404


def test_an_undecodable_photo_is_served_whole_as_its_own_thumbnail(
        app: Flask, console: dict[str, Any]) -> None:
    with app.app_context():
        filed = file_report(factories.place("TS-B2-U1"), "noise", text="楼上很吵",
                            photos=[Photo(content_type="image/jpeg", data=b"\xff\xd8broken",
                                          width=1, height=1)])
        photo_id = filed.report.photos[0].id
    response = client_for(app, "admin").get(f"/staff/cases/photos/{photo_id}/thumbnail")
    assert response.status_code == 200 and response.data == b"\xff\xd8broken"
