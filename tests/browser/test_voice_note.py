"""按住说话 in Chromium with a fake microphone: held, tapped or keyed, the recording goes with the
message and plays on the member's and the staff's case pages; kept when the server asks a
question; absent without JavaScript or without MediaRecorder, where the call button stands."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from dispatch import links
from dispatch.db import db
from dispatch.models import Case, Member, Place, PlaceKind, StaffRole, VoiceNote
from dispatch.models import Sticker as StickerRow
from tests.browser import axe
from tests.browser.conftest import PHONE, Live, launch_chromium
from tests.factories import add_staff

pytestmark = pytest.mark.browser

TIMEOUT = 15_000  # ms
#: Chromium's fake capture device (a beeping tone) allowed without asking.
FAKE_MICROPHONE = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
#: The audio element has read the recording's header (and so knows it can play it).
PLAYABLE = """(selector) => {
    const audio = document.querySelector(selector);
    return audio && audio.error === null && audio.readyState >= 1 && audio.duration > 0;
}"""


@pytest.fixture(scope="module")
def chromium_with_microphone(playwright_driver: Any) -> Iterator[Any]:
    """Debian's Chromium whose getUserMedia gets a fake microphone."""
    yield from launch_chromium(playwright_driver, *FAKE_MICROPHONE)


def _code(live: Live, kind: PlaceKind) -> str:
    with live.app.app_context():
        return db.session.scalar(sa.select(StickerRow.code).join(Place).where(
            Place.kind == kind).order_by(Place.id).limit(1))


def _page(browser: Any, errors: list[str], **options: Any) -> Any:
    page = browser.new_context(viewport=PHONE, locale="zh-CN", **options).new_page()
    page.set_default_timeout(TIMEOUT)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def _hold_to_talk(page: Any, seconds: float) -> None:
    """Press the button, hold it while speaking, release."""
    page.hover("#f-voice")  # scrolled into view, clear of the bottom bar
    page.mouse.down()
    page.wait_for_selector("#voice-state:has-text('正在录音')")
    page.wait_for_timeout(seconds * 1000)
    page.mouse.up()
    page.wait_for_selector("#voice-play:visible")


def _last_case(live: Live) -> tuple[int, list[VoiceNote]]:
    with live.app.app_context():
        case = db.session.scalar(sa.select(Case).order_by(Case.id.desc()).limit(1))
        notes = [n for r in case.reports for n in r.voice_notes]
        for note in notes:
            db.session.expunge(note)
        return case.id, notes


def test_a_held_recording_is_filed_and_plays_for_the_member_and_staff(
        live: Live, chromium_with_microphone: Any, shots: Any) -> None:
    errors: list[str] = []
    page = _page(chromium_with_microphone, errors)
    try:
        page.goto(f"{live.url}/S/{_code(live, PlaceKind.UNIT)}")
        assert page.is_visible("#f-voice") and page.is_hidden("#voice-call")
        size = page.locator("#f-voice").bounding_box()
        assert size["width"] >= 44 and size["height"] >= 44
        page.check("input[name=category][value=repair]")
        page.fill("#f-text", "楼道灯坏了，录了一段话")
        _hold_to_talk(page, 2)
        assert "已录好" in page.inner_text("#voice-state")
        assert page.wait_for_function(PLAYABLE, arg="#voice-play")  # played back from blob:
        shots(page, "recorded")
        page.click("#send")
        page.wait_for_selector("text=已收到您的反映")
        case_id, notes = _last_case(live)
        assert [n.content_type for n in notes] == ["audio/webm"]
        assert 2_000 < notes[0].size < 60_000  # ~2 s at 32 kbit/s is ~8 KB

        for name, path in zip(("member", "staff"),
                              _member_and_staff_pages(live, page, case_id), strict=True):
            page.goto(f"{live.url}{path}")
            page.wait_for_function(PLAYABLE, arg="audio")
            shots(page, name)
    finally:
        page.context.close()
    assert errors == []


def test_tapped_and_keyed_recording_and_the_page_stays_accessible(
        live: Live, chromium_with_microphone: Any) -> None:
    errors: list[str] = []
    # axe is injected as an inline script, which the page's CSP refuses: bypassed here only.
    page = _page(chromium_with_microphone, errors, bypass_csp=True)
    try:
        page.goto(f"{live.url}/S/{_code(live, PlaceKind.ELEVATOR)}")
        assert axe.violations(page) == []
        page.click("#f-voice")  # a short tap starts...
        page.wait_for_selector("#voice-state:has-text('正在录音')")
        assert page.inner_text("#f-voice") == "结束录音"
        page.wait_for_timeout(1200)
        assert page.is_visible("#voice-state:has-text('正在录音')")  # ...and keeps recording
        page.click("#f-voice")  # the next tap stops
        page.wait_for_selector("#voice-play:visible")
        assert axe.violations(page) == []
        page.click("#voice-drop")
        assert page.is_hidden("#voice-play")
        page.focus("#f-voice")  # the keyboard: Enter starts, Enter again stops
        page.keyboard.press("Enter")
        page.wait_for_selector("#voice-state:has-text('正在录音')")
        page.wait_for_timeout(1200)
        page.keyboard.press("Enter")
        page.wait_for_selector("#voice-play:visible")
        assert page.inner_text("#f-voice") == "按住说话"
        page.click("#send")
        page.wait_for_selector("text=已收到您的反映")
        # The member's and the staff's case pages with the voice note on them.
        case_id, notes = _last_case(live)
        assert len(notes) == 1
        for path in _member_and_staff_pages(live, page, case_id):
            page.goto(f"{live.url}{path}")
            page.wait_for_function(PLAYABLE, arg="audio")
            assert axe.violations(page) == [], path
    finally:
        page.context.close()
    assert errors == []


def _member_and_staff_pages(live: Live, page: Any, case_id: int) -> list[str]:
    """The member's case page and the staff case page; the page is logged in to the console."""
    with live.app.app_context():
        member = db.session.scalar(sa.select(Member).where(Member.kind == "party_member")
                                   .order_by(Member.id).limit(1))
        member_page = links.path(links.Purpose.CASE, member.id, case_id)
    add_staff(live.app, "admin", StaffRole.ADMIN)
    page.goto(f"{live.url}/staff/login")
    page.fill("#username", "admin")
    page.fill("#password", "correct horse")
    page.click("button:has-text('登录')")
    page.wait_for_url(f"{live.url}/staff/")
    return [member_page, f"/staff/cases/{case_id}"]


def test_the_servers_question_keeps_the_recording(live: Live,
                                                  chromium_with_microphone: Any) -> None:
    errors: list[str] = []
    page = _page(chromium_with_microphone, errors)
    try:
        page.goto(f"{live.url}/S/{_code(live, PlaceKind.UNIT)}")
        page.check("input[name=category][value=sanitation]")
        page.fill("#f-text", "纸箱挡住了消防通道")
        _hold_to_talk(page, 1.5)
        page.click("#send")  # past the hint: the server asks once
        page.wait_for_selector("#nudge")
        assert page.is_checked("input[name=kept_voice]")
        page.wait_for_function(PLAYABLE, arg="audio.voice[src*='/kept-voice/']")
        page.click("#nudge button[value=safety]")
        page.wait_for_selector("text=已收到您的反映")
    finally:
        page.context.close()
    _, notes = _last_case(live)
    assert [n.content_type for n in notes] == ["audio/webm"]
    assert errors == []


@pytest.mark.parametrize("without", ["javascript", "MediaRecorder"])
def test_without_a_recorder_the_page_offers_the_call_instead(
        live: Live, chromium_with_microphone: Any, without: str) -> None:
    context = chromium_with_microphone.new_context(
        viewport=PHONE, locale="zh-CN", java_script_enabled=without != "javascript")
    if without == "MediaRecorder":
        context.add_init_script("delete window.MediaRecorder;")
    page = context.new_page()
    try:
        page.goto(f"{live.url}/S/{_code(live, PlaceKind.UNIT)}")
        page.wait_for_load_state("load")
        assert page.is_hidden("#voice") and page.is_hidden("#f-voice")
        call = page.locator("#voice-call")
        assert call.is_visible() and call.get_attribute("href").endswith("/call")
    finally:
        context.close()
