"""The outside probe's findings (issue 15), each as the request that found it, on PostgreSQL.

Request limits, the scan log after a NUL, redirects, the staff cookie, login throttling,
security headers, the inputs that answered 500, the audit log under anonymous POSTs, and
hostile photo and voice uploads.
"""

from __future__ import annotations

import itertools
import re
import time
from io import BytesIO
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.security import generate_password_hash

from dispatch.db import db
from dispatch.models import AuditLog, Case, Photo, Report, Scan, StaffRole, VoiceNote
from dispatch.resident import scans, voice
from dispatch.staff import auth
from tests import factories
from tests.conftest import pg_config
from tests.dispatch.resident.conftest import issue_stickers
from tests.dispatch.resident.helpers import Resident, receipt_token

pytestmark = pytest.mark.postgres


@pytest.fixture
def site(pg_app: Flask, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The small community on PostgreSQL, a sticker on every place, an admin login."""
    monkeypatch.setattr(auth, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))
    with pg_app.app_context():
        community = factories.import_community(factories.dispatch_community())
        community_id = community.id
    factories.add_staff(pg_app, "admin", StaffRole.ADMIN)
    return {"app": pg_app, "stickers": issue_stickers(pg_app, community_id)}


# --- 2. request size ----------------------------------------------------------------------

def test_a_34_mb_upload_is_refused_with_413(site: dict[str, Any]) -> None:
    app = site["app"]
    assert app.config["MAX_CONTENT_LENGTH"] == 32 * 1024 * 1024
    body = (b'--x\r\nContent-Disposition: form-data; name="photos"; filename="big.jpg"\r\n\r\n'
            + b"\xff" * (34 * 1024 * 1024) + b"\r\n--x--\r\n")
    response = app.test_client().post(f"/s/{site['stickers']['TS-B1-U1-E1']}/message",
                                      data=body,
                                      content_type="multipart/form-data; boundary=x")
    assert response.status_code == 413 and "上传的照片太大了" in response.get_data(as_text=True)


def test_a_form_of_more_than_a_hundred_parts_is_refused_with_413(site: dict[str, Any]) -> None:
    body = b"".join(b'--x\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % n
                    for n in range(1200)) + b"--x--\r\n"
    response = site["app"].test_client().post(
        f"/s/{site['stickers']['TS-B1-U1-E1']}/message", data=body,
        content_type="multipart/form-data; boundary=x")
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "提交的内容太多" in page and "照片" not in page  # no photo was sent: say what was


# --- 3. a NUL byte in a sticker URL -------------------------------------------------------

def test_a_nul_in_a_sticker_url_does_not_stop_the_scan_log(site: dict[str, Any]) -> None:
    app, code = site["app"], site["stickers"]["TS-B1-U1-E1"]
    client = app.test_client()
    assert client.get("/s/ABCDEFGHJK%00M").status_code == 404
    with app.test_request_context():
        scans.record(None, "XY\x00Z", "unknown\x00")
    assert client.get(f"/s/{code}").status_code == 200
    assert scans.flush(app) == 3
    with app.app_context():
        seen = db.session.scalars(sa.select(Scan.code_seen).order_by(Scan.id)).all()
    assert seen == ["ABCDEFGHJKM", "XYZ", code]


# --- 4. open redirects --------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/%09/evil.example", "//evil.example", "/\\evil.example",
                                    "https://evil.example/", "/%0a/evil.example",
                                    "/%0d%0aSet-Cookie:%20a=b"])
def test_language_switch_and_login_never_redirect_off_the_site(site: dict[str, Any],
                                                               target: str) -> None:
    client = site["app"].test_client()
    response = client.get(f"/lang/en?next={target}")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    page = client.get(f"/staff/login?next={target}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    response = client.post(f"/staff/login?next={target}", data={
        "username": "admin", "password": "correct horse", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/staff/"


# --- 5. the staff session cookie ----------------------------------------------------------

def test_the_staff_cookie_is_samesite_lax_and_secure_behind_https(pg_schema: str) -> None:
    from app import create_app

    app = create_app(pg_config(pg_schema, PUBLIC_BASE_URL="https://linli.example.cn"))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True


def test_a_cookie_replayed_after_logout_no_longer_logs_in(site: dict[str, Any]) -> None:
    app = site["app"]
    client = app.test_client()
    assert factories.login(client).status_code == 302
    stolen = client.get_cookie("session").value
    page = client.get("/staff/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    assert client.post("/staff/logout", data={"csrf_token": token}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    response = replay.get("/staff/")
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]


# --- 6. login brute force and user name timing --------------------------------------------

def _try_login(client: Any, username: str, password: str) -> Any:
    page = client.get("/staff/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    return client.post("/staff/login", data={"username": username, "password": password,
                                             "csrf_token": token})


def test_forty_wrong_passwords_are_throttled(site: dict[str, Any]) -> None:
    client = site["app"].test_client()
    answers = [_try_login(client, "admin", f"guess {n}").status_code for n in range(40)]
    assert answers[:10] == [200] * 10
    assert set(answers[10:]) == {429}
    assert "尝试次数过多" in _try_login(client, "admin", "x").get_data(as_text=True)


def test_an_unknown_user_name_takes_as_long_as_a_wrong_password(
        site: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    app = site["app"]
    # The real hash of the real login: scrypt, as production stores it.
    with app.app_context():
        user = db.session.scalar(sa.select(auth.StaffUser))
        user.password_hash = generate_password_hash("correct horse")
        db.session.commit()
    app.config["STAFF_LIMIT_LOGIN_IP"] = app.config["STAFF_LIMIT_LOGIN_USER"] = "1000 per day"

    def timed(username: str) -> float:
        client = app.test_client()
        best = 10.0
        for _ in range(3):
            start = time.perf_counter()
            _try_login(client, username, "wrong password")
            best = min(best, time.perf_counter() - start)
        return best

    known, unknown = timed("admin"), timed("nobody-by-this-name")
    assert unknown > known * 0.5, (known, unknown)


# --- 7. security headers ------------------------------------------------------------------

def test_every_page_forbids_framing_and_inline_scripts(site: dict[str, Any]) -> None:
    from dispatch import links

    app = site["app"]
    with app.app_context():
        case = _a_case(app, site)
        accept = links.path(links.Purpose.ACCEPT, factories.member("L1").id, case)
    client = app.test_client()
    for path in (f"/s/{site['stickers']['TS-B1-U1-E1']}", accept, "/staff/login"):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "<script>" not in response.get_data(as_text=True)


def test_hsts_is_sent_over_https(site: dict[str, Any]) -> None:
    response = site["app"].test_client().get("/staff/login", base_url="https://linli.test")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def _a_case(app: Flask, site: dict[str, Any]) -> int:
    token = receipt_token(Resident(app.test_client(), site["stickers"]).message(text="电梯"))
    return db.session.scalar(sa.select(Case.id).where(Case.public_token == token))


# --- 10. inputs that answered 500 ---------------------------------------------------------

def test_nul_in_a_residents_text_is_dropped_and_the_report_filed(site: dict[str, Any]) -> None:
    app = site["app"]
    response = Resident(app.test_client(), site["stickers"]).message(text="灯\x00坏了")
    receipt_token(response)
    with app.app_context():
        assert db.session.scalars(sa.select(Report.text)).all() == ["灯坏了"]


def test_the_inputs_that_answered_500_get_a_clear_4xx(site: dict[str, Any]) -> None:
    app = site["app"]
    app.config["WTF_CSRF_ENABLED"] = False
    app.config["ALIYUN_REPORT_TOKEN"] = "secret-token"
    code = site["stickers"]["TS-B1-U1-E1"]
    client = app.test_client()
    factories.login(client)
    answers = {
        "me-too huge id": client.post(f"/s/{code}/me-too/{'9' * 30}").status_code,
        "month 0001-01": client.get("/staff/dashboard?month=0001-01").status_code,
        "roster channel=foo": client.post("/staff/roster/members/L1/contacts", data={
            "channel": "foo", "phone": "13800138009"}).status_code,
        "roster rung=abc": client.post("/staff/roster/members/L1/responsibilities", data={
            "role": "leader", "place": "TS-B1", "rung": "abc"}).status_code,
        "year-1 override": client.post("/staff/roster/members/L1/overrides", data={
            "kind": "leave", "starts_at": "0001-01-01T00:00", "ends_at": "0001-01-02T00:00"}
        ).status_code,
        "aliyun token 你好": client.post("/webhooks/aliyun/sms/report?token=你好").status_code,
        "staff audit huge": client.get(f"/staff/audit/?before={'9' * 30}").status_code,
        "case huge id": client.get(f"/staff/cases/{'9' * 30}").status_code,
        "scope digits ١٢٣": client.get("/staff/reports/2026-12.xlsx?grid=١٢٣").status_code,
    }
    assert {name: status for name, status in answers.items() if status >= 500} == {}


def test_voice_webhooks_take_non_numeric_and_non_ascii_digits(site: dict[str, Any]) -> None:
    from tests.fakes.fixtures import signed_post

    app = site["app"]
    app.config["TWILIO_AUTH_TOKEN"] = "voice-token-0123456789abcdef"
    client = app.test_client()
    for query in ("try=abc", "try=١٢", f"try={'9' * 40}"):
        response = signed_post(client, app, f"/webhooks/twilio/voice/incoming?{query}",
                               {"From": "+8613800138000", "CallSid": "CA1"},
                               token="voice-token-0123456789abcdef")
        assert response.status_code == 200, query


# --- 13. the audit log under anonymous POSTs ----------------------------------------------

def test_anonymous_posts_to_unknown_staff_urls_write_no_audit_rows(site: dict[str, Any]) -> None:
    app = site["app"]
    client = app.test_client()
    for n in range(50):
        client.post(f"/staff/no-such-page-{n}", data={"username": f"spam{n}"})
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditLog)) == 0


# --- 11. hostile uploads (the route fuzzer sends fields, not files) ---------------------------

#: File contents that are not what they claim, cut short, empty, or made of parser bait.
HOSTILE_FILES = [
    b"", b"\x00" * 1000, b"<html><script>alert(1)</script></html>",
    b"\x1a\x45\xdf\xa3", b"\x1a\x45\xdf\xa3\x42\x82\x84webm" + b"\xff" * 500,
    b"\x00\x00\x00\x1cftyp\x00\x00\x00\x00" + b"\xff" * 500, b"OggSOpusHead" + b"\x00" * 100,
    b"\xff\xd8\xff\xe0" + b"\x00" * 100, b"\x89PNG\r\n\x1a\n" + b"\xff" * 100,
]
HOSTILE_NAMES = ["voice.webm", "../../etc/passwd", "\x00.webm", "语音" * 200, ""]


@pytest.mark.parametrize("content", HOSTILE_FILES)
def test_hostile_photos_and_recordings_are_refused_without_a_server_error(
        site: dict[str, Any], content: bytes) -> None:
    app = site["app"]
    resident = Resident(app.test_client(), site["stickers"])
    token, code = resident.token(), site["stickers"]["TS-B1-U1-E1"]
    for name, declared in itertools.product(HOSTILE_NAMES, ["audio/webm", "text/html", "x"]):
        for field in ("voice", "photos"):
            response = resident.client.post(f"/s/{code}/message", data={
                "csrf_token": token, "category": "elevator", "text": "试试",
                field: [(BytesIO(content), name, declared) for _ in range(2)]},
                content_type="multipart/form-data")
            assert response.status_code < 500, (field, name, declared, content[:20])
    with app.app_context():  # what passed (a bare header of a real type) is served as that
        assert db.session.scalar(sa.select(sa.func.count(Photo.id))) == 0
        assert set(db.session.scalars(sa.select(VoiceNote.content_type))) <= set(
            voice.CONTENT_TYPES)
