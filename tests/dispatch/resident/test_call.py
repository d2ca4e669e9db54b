"""One-tap call: a tel: link to the hotline or the voice number with the sticker's digits,
every tap recorded as a Scan even without JavaScript."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Flask

from dispatch.db import db
from dispatch.models import Scan
from dispatch.resident import scans
from qr import codes
from tests.dispatch.resident.helpers import Resident


def test_call_records_the_tap_then_hands_over_the_hotline(app: Flask, resident: Resident) -> None:
    code = resident.stickers["TS-B1-U1"]
    response = resident.client.get(f"/s/{code}/call")
    assert response.status_code == 302
    assert response.headers["Location"] == "tel:0752-1234567"
    scans.flush(app)  # what the background writer has not written yet
    with app.app_context():
        [scan] = db.session.scalars(sa.select(Scan)).all()
        assert (scan.action, scan.code_seen, scan.sticker_id is not None) == ("call", code, True)


def test_call_with_a_voice_number_dials_the_sticker_digits_after_a_pause(
        app: Flask, resident: Resident) -> None:
    app.config["TWILIO_VOICE_NUMBER"] = "+86 755 1234 5678"
    code = resident.stickers["TS-B1-U1-E1"]
    location = resident.client.get(f"/s/{code}/call").headers["Location"]
    assert location == f"tel:+8675512345678,,{codes.dial_digits(code)}%23"
    assert codes.code_from_digits(codes.dial_digits(code)) == code


def test_sticker_digits_round_trip_and_reject_nonsense() -> None:
    for code in ("000000000000", "ZZZZZZZZZZZZ", "K7QM3X9PZ2AB"):
        digits = codes.dial_digits(code)
        assert len(digits) == codes.DIAL_DIGITS and digits.isdigit()
        assert codes.code_from_digits(digits + "#") == code
    assert codes.code_from_digits("123") is None
    assert codes.code_from_digits("9" * codes.DIAL_DIGITS) is None


def test_the_call_button_is_a_plain_link_that_needs_no_javascript(resident: Resident) -> None:
    html = resident.scan("TS-B1-U1").get_data(as_text=True)
    code = resident.stickers["TS-B1-U1"]
    assert f'<a class="btn primary" href="/s/{code}/call" rel="nofollow">' in html
    # The page's one script only lightens the message form; it is deferred and optional.
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/message.js" defer>']
