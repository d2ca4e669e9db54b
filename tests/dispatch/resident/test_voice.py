"""Voice notes (按住说话): taken by their bytes, not their declared type; size-limited with a
clear message that keeps the text and photos; kept across a form error; played back to the
member and to staff through routes that check who asks, and to nobody else."""

from __future__ import annotations

import re
from io import BytesIO
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from dispatch import links
from dispatch.db import db
from dispatch.models import Case, Report, VoiceNote
from dispatch.resident import voice
from tests.dispatch.resident.helpers import Resident, case_of, jpeg_with_gps, receipt_token
from tests.factories import add_staff, login, member

#: The first bytes Chromium's MediaRecorder writes (EBML header, DocType "webm", a Segment of
#: unknown size), then stand-in frames.
WEBM = bytes.fromhex("1a45dfa39f4286810142f7810142f2810442f381084282847765626d4287810442858102"
                     "18538067 01ffffffffffffff".replace(" ", "")) + bytes(range(256)) * 8
#: Safari's audio/mp4: an ftyp box first.
MP4 = b"\x00\x00\x00\x1cftypiso5\x00\x00\x02\x00iso5iso6mp41" + b"\x00" * 2000
#: Firefox's older audio/ogg: an Ogg page whose packet is the Opus header.
OGG = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13OpusHead\x01\x01" + b"\x00" * 2000


def _report(token: str) -> Report:
    """The report a receipt's link names (a joining reporter's own, or the case's first)."""
    own = db.session.scalar(sa.select(Report).where(Report.public_token == token))
    return own or case_of(token).reports[0]


def _send(resident: Resident, content: bytes, *, declared: str = "audio/webm",
          name: str = "voice.webm", **fields: Any) -> Any:
    return resident.message(voice=(BytesIO(content), name, declared), **fields)


@pytest.mark.parametrize(("content", "expected"), [
    (WEBM, "audio/webm"), (MP4, "audio/mp4"), (OGG, "audio/ogg"),
    (b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00" + b"\x00" * 100, "audio/mp4"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00" + b"\x00" * 100, None),  # a HEIC photo
    (b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska" + b"\x00" * 100, None),  # Matroska, not WebM
    (b"<html><script>alert(1)</script></html>" + b" " * 100, None),
    (b"OggS" + b"\x00" * 100, None),  # Ogg, but no Opus in it
    (b"", None),
])
def test_a_recording_is_known_by_its_first_bytes(content: bytes, expected: str | None) -> None:
    assert voice.sniff(content) == expected


def test_a_voice_note_is_filed_with_the_message_typed_by_its_bytes(
        app: Flask, resident: Resident) -> None:
    # Declared as text/html: what is stored and served back is what the bytes are.
    token = receipt_token(_send(resident, WEBM, declared="text/html", text="电梯异响，听录音"))
    with app.app_context():
        case = case_of(token)
        [note] = case.reports[0].voice_notes
        assert (note.content_type, note.size, note.data, note.owner) == (
            "audio/webm", len(WEBM), WEBM, None)


def test_a_message_may_be_only_a_voice_note(app: Flask, resident: Resident) -> None:
    token = receipt_token(_send(resident, MP4, declared="audio/mp4", name="voice.m4a"))
    with app.app_context():
        report = case_of(token).reports[0]
        assert report.text is None and [n.content_type for n in report.voice_notes] == [
            "audio/mp4"]


def test_a_recording_over_the_limit_is_refused_and_the_text_and_photos_stay(
        app: Flask, resident: Resident) -> None:
    too_long = WEBM + b"\x00" * (voice.MAX_BYTES - len(WEBM) + 1)
    # Encoded here, in memory: the test client's own encoder leaves a temporary file open
    # for bodies over 500 KB.
    boundary, body = encode_multipart(MultiDict([
        ("csrf_token", resident.token()), ("category", "elevator"), ("text", "楼道漏水"),
        ("photos", FileStorage(BytesIO(jpeg_with_gps()), "a.jpg", content_type="image/jpeg")),
        ("voice", FileStorage(BytesIO(too_long), "voice.webm", content_type="audio/webm"))]))
    response = resident.client.post(f"/s/{resident.stickers['TS-B1-U1-E1']}/message",
                                    data=body, content_type=f"multipart/form-data; "
                                                            f"boundary={boundary}")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "录音太长了：最长 60 秒" in html and 'href="#f-voice"' in html
    assert ">楼道漏水</textarea>" in html
    assert len(re.findall(r'name="kept_photo" value="(\d+)" checked', html)) == 1
    assert 'name="kept_voice"' not in html
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Report.id))) == 0
        assert db.session.scalar(sa.select(sa.func.count(VoiceNote.id))) == 0


@pytest.mark.parametrize("content", [
    b"<html><script>alert(1)</script></html>" * 10,  # declared audio/webm, is not
    b"\xff\xd8\xff\xe0" + b"\x00" * 500,  # a JPEG
    WEBM[:40],  # cut off before any sound
    b"",  # a file part with a name and nothing in it
])
def test_a_file_that_is_not_a_recording_is_refused_with_the_text_kept(
        app: Flask, resident: Resident, content: bytes) -> None:
    response = _send(resident, content, text="门禁坏了", phone="13800138000")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "录音没有收到或者已经损坏" in html and ">门禁坏了</textarea>" in html
    assert 'value="13800138000"' in html
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(VoiceNote.id))) == 0


def test_a_voice_field_sent_as_text_is_ignored(app: Flask, resident: Resident) -> None:
    token = receipt_token(resident.message(text="没有录音", voice="\x00<script>"))
    with app.app_context():
        assert case_of(token).reports[0].voice_notes == []


def test_a_rejected_form_keeps_the_recording_so_it_is_not_said_twice(
        app: Flask, resident: Resident) -> None:
    response = _send(resident, WEBM, phone="bad", text="听录音")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "已收到的语音留言（不用重新录）" in html and ">听录音</textarea>" in html
    [kept] = re.findall(r'name="kept_voice" value="(\d+)" checked', html)
    path = re.search(r'<audio class="voice" controls preload="metadata" src="([^"]+)"',
                     html)[1]
    played = resident.client.get(path)
    assert (played.status_code, played.mimetype, played.data) == (200, "audio/webm", WEBM)
    assert played.headers["X-Content-Type-Options"] == "nosniff"
    # Another browser can neither play it nor send it as its own.
    stranger = Resident(resident.client.application.test_client(), resident.stickers)
    assert stranger.client.get(path).status_code == 404
    taken = stranger.message(text="别人的录音", kept_voice=kept)
    with app.app_context():
        assert _report(receipt_token(taken)).voice_notes == []
    # Fixed and sent again with nothing recorded: the kept note goes with the report.
    fixed = resident.message(phone="13800138000", text="听录音", kept_voice=kept)
    with app.app_context():
        [note] = _report(receipt_token(fixed)).voice_notes
        assert (note.content_type, note.owner, note.data) == ("audio/webm", None, WEBM)
        assert db.session.scalar(sa.select(sa.func.count(VoiceNote.id))) == 1  # draft gone
    assert resident.client.get(path).status_code == 404  # filed: no longer a draft


def test_a_new_recording_replaces_the_kept_one(app: Flask, resident: Resident) -> None:
    html = _send(resident, WEBM, phone="bad").get_data(as_text=True)
    [kept] = re.findall(r'name="kept_voice" value="(\d+)"', html)
    token = receipt_token(_send(resident, OGG, declared="audio/ogg", kept_voice=kept))
    with app.app_context():
        assert [n.content_type for n in case_of(token).reports[0].voice_notes] == ["audio/ogg"]
        assert db.session.scalar(sa.select(sa.func.count(VoiceNote.id))) == 1


def _filed_case(app: Flask, resident: Resident) -> int:
    token = receipt_token(_send(resident, WEBM, text="电梯异响"))
    with app.app_context():
        return case_of(token).id


def test_the_member_plays_the_voice_note_of_their_case_only(app: Flask,
                                                            resident: Resident) -> None:
    case_id = _filed_case(app, resident)
    other = receipt_token(resident.message(place="TS-B2-U1", category="noise"))
    with app.app_context():
        page_path = links.path(links.Purpose.CASE, member("L1").id, case_id)
        other_path = links.path(links.Purpose.CASE, member("L1").id, case_of(other).id)
    client = app.test_client()
    page = client.get(page_path).get_data(as_text=True)
    assert "居民的语音留言" in page
    src = re.search(r'<audio controls preload="metadata" src="([^"]+)"', page)[1]
    played = client.get(src)
    assert (played.status_code, played.mimetype, played.data) == (200, "audio/webm", WEBM)
    ranged = client.get(src, headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and ranged.data == WEBM[:100]
    note_id = src.rsplit("/", 1)[1]
    assert client.get(f"{other_path}/voice/{note_id}").status_code == 404
    assert client.get(f"/m/case/forged/voice/{note_id}").status_code == 403


def test_staff_play_the_voice_note_on_the_case_page(app: Flask, resident: Resident) -> None:
    case_id = _filed_case(app, resident)
    anonymous = app.test_client()
    with app.app_context():
        note_id = db.session.scalar(sa.select(VoiceNote.id))
        assert db.session.get(Case, case_id) is not None
    assert anonymous.get(f"/staff/cases/voice/{note_id}").status_code in (302, 401, 403)
    add_staff(app)
    staff = app.test_client()
    assert login(staff).status_code == 302
    page = staff.get(f"/staff/cases/{case_id}").get_data(as_text=True)
    src = re.search(r'<audio controls preload="metadata" src="([^"]+)"', page)[1]
    assert src == f"/staff/cases/voice/{note_id}"
    played = staff.get(src)
    assert (played.status_code, played.mimetype, played.data) == (200, "audio/webm", WEBM)
    assert staff.get("/staff/cases/voice/999999").status_code == 404


def test_the_sticker_page_offers_the_call_until_the_script_finds_a_recorder(
        resident: Resident) -> None:
    html = resident.scan().get_data(as_text=True)
    assert re.search(r'<div id="voice" hidden', html)
    assert re.search(r'<a class="btn" id="voice-call" href="/s/\w+/call"', html)
