"""Every public page on the demo community: small, self-contained, and free of phone numbers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import clock
from dispatch.case.report import file_report
from dispatch.community import load_demo
from dispatch.db import db
from dispatch.models import Case, Channel, Contact, Member, Notice, Place, PlaceKind, Sticker
from tests.dispatch.resident.helpers import accept, csrf_token, walk_to_resolved

LIMIT = 30 * 1024
STYLESHEET = Path(__file__).resolve().parents[3] / "static" / "resident.css"
RESIDENT_PHONE = "13912345678"


@pytest.fixture
def demo(app: Flask) -> dict[str, str]:
    """The Donghu-sized demo: the sticker of one unit, one elevator and one area."""
    with app.app_context():
        load_demo()
        chosen = {}
        for kind in (PlaceKind.UNIT, PlaceKind.ELEVATOR, PlaceKind.AREA):
            chosen[kind.value] = db.session.scalar(
                sa.select(Sticker.code).join(Place).where(Place.kind == kind)
                .order_by(Place.id).limit(1))
        return chosen


def _pages(app: Flask, demo: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(name, body) of every public page and state, in both languages."""
    client = app.test_client()
    elevator = demo["elevator"]
    with app.app_context():
        place = db.session.scalar(sa.select(Place).join(Sticker).where(Sticker.code == elevator))
        place_id = place.id
        building = place.ancestor(PlaceKind.BUILDING)
        db.session.add(Notice(place_id=building.id, text="电梯维修中，预计18:00恢复",
                              starts_at=clock.now(), created_at=clock.now()))
        db.session.commit()
    token = csrf_token(client.get(f"/s/{elevator}").get_data(as_text=True))
    filed = client.post(f"/s/{elevator}/message", data={
        "csrf_token": token, "category": "elevator", "text": "困人了", "phone": RESIDENT_PHONE})
    receipt = filed.headers["Location"]
    status = receipt.removesuffix("/receipt")
    with app.app_context():
        place = db.session.get(Place, place_id)
        for category in ("repair", "safety", "help"):  # a busy lift: several open problems
            file_report(place, category, text="x", callback_phone="+8613912345678")
    for lang in ("zh", "en"):
        client.get(f"/lang/{lang}?next=/")
        for kind, code in demo.items():
            yield f"{kind} sticker ({lang})", client.get(f"/S/{code}").get_data(as_text=True)
        yield f"receipt ({lang})", client.get(receipt).get_data(as_text=True)
        yield f"status ({lang})", client.get(status).get_data(as_text=True)
        yield f"live ({lang})", client.get(f"{status}/live").get_data(as_text=True)
        yield f"unknown code ({lang})", client.get("/S/AAAAAAAAAAAA").get_data(as_text=True)
    with app.app_context():
        case_id = db.session.scalar(sa.select(Case.id).where(
            Case.category == "elevator"))
        member = db.session.scalar(sa.select(Member).where(Member.kind == "party_member"))
        case = db.session.get(Case, case_id)
        accept(case, member)
        yield "status accepted", client.get(status).get_data(as_text=True)
        walk_to_resolved(case_id, member.code)
    yield "status resolved, 回访 form", client.get(status).get_data(as_text=True)
    done = client.post(f"{status}/callback", data={"csrf_token": token, "solved": "no"})
    yield "status reopened", client.get(done.headers["Location"]).get_data(as_text=True)
    app.config["RESIDENT_LIMIT_CALLS_STICKER"] = "0 per hour"
    yield "rate limited", client.get(f"/s/{elevator}/call").get_data(as_text=True)
    app.config["MAX_CONTENT_LENGTH"] = 10
    yield "too large", client.post(f"/s/{elevator}/message", data={"text": "x" * 100}
                                   ).get_data(as_text=True)


def _static(app: Flask, name: str) -> bytes:
    """A static file as the browser gets it (the response is closed: it holds the file)."""
    with app.test_client().get(f"/static/{name}") as response:
        assert response.status_code == 200
        return response.get_data()


def _phone_pattern(number: str) -> re.Pattern[str]:
    """A number's digits, allowing one space or dash between any two of them."""
    return re.compile(r"[\s-]?".join(re.escape(d) for d in number))


def test_no_public_page_shows_a_members_or_residents_phone(app: Flask,
                                                           demo: dict[str, str]) -> None:
    pages = list(_pages(app, demo))
    with app.app_context():
        numbers = {c.address for c in db.session.scalars(
            sa.select(Contact).where(Contact.channel.in_([Channel.SMS, Channel.VOICE])))}
    numbers |= {RESIDENT_PHONE, "+86" + RESIDENT_PHONE}
    assert len(numbers) > 200
    national = {n.removeprefix("+86") for n in numbers}
    patterns = [_phone_pattern(n) for n in numbers | national]
    for name, body in pages:
        for pattern in patterns:
            assert not pattern.search(body), f"{name} shows a phone number: {pattern.pattern}"


def test_page_weight_html_and_css_stays_under_30_kb(app: Flask, demo: dict[str, str]) -> None:
    css = _static(app, "resident.css")
    script = _static(app, "status.js")
    form_script = _static(app, "message.js")
    # The form script carries the photo shrinking and the voice note (按住说话).
    assert len(script) < 3 * 1024 and len(form_script) < 12 * 1024
    for name, body in _pages(app, demo):
        weight = len(body.encode()) + len(css)
        assert weight < LIMIT, f"{name}: {weight} bytes of HTML and CSS"
        if name.startswith("status"):
            assert weight + len(script) < LIMIT
        if "sticker" in name:  # with the optional script that lightens the form
            assert weight + len(form_script) < LIMIT, f"{name}: {weight} bytes and the script"


def test_pages_load_nothing_from_other_sites_and_no_web_fonts(app: Flask,
                                                              demo: dict[str, str]) -> None:
    css = _static(app, "resident.css").decode()
    assert "@font-face" not in css and "url(" not in css and "@import" not in css
    for name, body in _pages(app, demo):
        for target in re.findall(r'(?:src|href|action)="([^"]*)"', body):
            assert target.startswith(("/", "#", "tel:")), f"{name} links to {target}"
        assert "<link" not in body.replace('<link rel="stylesheet" href="/static/', "").replace(
            '<link rel="icon" href="/static/favicon.svg"', "")


def test_every_form_field_has_a_label(app: Flask, demo: dict[str, str]) -> None:
    for name, body in _pages(app, demo):
        labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', body))
        for tag in re.findall(r"<(?:input|textarea|select)\b[^>]*>", body):
            if 'type="hidden"' in tag or 'type="radio"' in tag:
                continue  # radios sit inside their own <label> within a <fieldset>
            field_id = re.search(r'id="([^"]+)"', tag)
            assert field_id and field_id.group(1) in labelled, f"{name}: unlabelled {tag}"


#: Every text colour on the resident pages against the background it sits on.
COLOUR_PAIRS = [
    ("#1b1b1b", "#fff", "body text"), ("#4a4a4a", "#fff", "hints and times"),
    ("#0b4f8a", "#fff", "links, outline buttons"), ("#fff", "#0b4f8a", "primary buttons"),
    ("#fff", "#8c1c13", "top bar"), ("#fff", "#a1151b", "emergency buttons"),
    ("#a1151b", "#fdecea", "emergency heading"), ("#1b1b1b", "#fdecea", "emergency text"),
    ("#a1151b", "#fff", "field errors"), ("#1b1b1b", "#fff4ce", "notices"),
    ("#4a4a4a", "#fff4ce", "notice end times"), ("#1b1b1b", "#e8f1fa", "messages"),
]


def _luminance(colour: str) -> float:
    hex_digits = colour.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(d * 2 for d in hex_digits)
    channels = [int(hex_digits[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize(("text", "background", "where"), COLOUR_PAIRS)
def test_text_colours_meet_wcag_aa_contrast(text: str, background: str, where: str) -> None:
    css = STYLESHEET.read_text().lower()
    assert text in css and background in css, f"{where}: colour no longer in the stylesheet"
    light, dark = sorted((_luminance(text), _luminance(background)), reverse=True)
    assert (light + 0.05) / (dark + 0.05) >= 4.5, where


def test_touch_targets_and_text_are_large() -> None:
    css = STYLESHEET.read_text()
    assert "font:1.25rem/1.6" in css  # body text: 20 px, following the browser's setting
    assert not re.search(r"(font|font-size|min-height):[^;}]*\d+px", css)
    assert ".btn{display:block;width:100%;min-height:3.5rem" in css  # 70 px buttons
    assert ".choice{display:flex;align-items:center;gap:.75rem;min-height:3rem" in css
