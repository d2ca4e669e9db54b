"""The resident pages measured in Chromium: large text that follows the browser's font size and
zoom, tap targets of at least 44 × 44 px, the bottom action bar, no console errors, axe-core
clean; the urgent-word nudge and the photo shrunk in the browser with a progress bar."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from dispatch.case import lifecycle
from dispatch.db import db
from dispatch.models import Case, Member, Photo, Place, PlaceKind
from dispatch.models import Sticker as StickerRow
from tests.browser import axe
from tests.browser.conftest import CHROMIUM, PHONE, Live

pytestmark = pytest.mark.browser

TIMEOUT = 15_000  # ms
#: 200 % zoom on the same phone: half as many CSS pixels across, each drawn twice as large.
ZOOMED = {"width": PHONE["width"] // 2, "height": PHONE["height"] // 2}


def _code(live: Live, kind: PlaceKind) -> str:
    with live.app.app_context():
        return db.session.scalar(sa.select(StickerRow.code).join(Place).where(
            Place.kind == kind).order_by(Place.id).limit(1))


def _resident_pages(live: Live, page: Any) -> list[tuple[str, str]]:
    """(name, url) of the sticker, receipt, status (resolved, with the 回访) and 404 pages."""
    code = _code(live, PlaceKind.ELEVATOR)
    page.goto(f"{live.url}/S/{code}")
    page.fill("#f-text", "电梯门关不上")
    page.fill("#f-phone", "13800138000")
    page.click("#send")
    page.wait_for_selector("text=已收到您的反映", timeout=TIMEOUT)
    receipt = page.url
    with live.app.app_context():
        case = db.session.scalar(sa.select(Case).order_by(Case.id.desc()).limit(1))
        member = db.session.scalar(sa.select(Member).where(Member.kind == "party_member")
                                   .order_by(Member.id).limit(1))
        lifecycle.resolve(case.id, member.id, "已调整门机，门能正常关闭")
    status = receipt.removesuffix("/receipt")
    return [("sticker", f"{live.url}/S/{code}"), ("receipt", receipt),
            ("status", status), ("unknown", f"{live.url}/s/NOPE/")]


TARGETS = ("a[href], button, label.choice, .thumbs label, input[type=text], input[type=tel], "
           "input[type=file], textarea, summary")


def _tap_targets_too_small(page: Any) -> list[str]:
    """Every link, button and field (a radio or checkbox through its label) under 44 × 44."""
    return list(page.evaluate("""(targets) => {
        const small = [];
        for (const el of document.querySelectorAll(targets)) {
            const r = el.getBoundingClientRect();
            if (!r.width && !r.height) continue;  // not shown
            if (r.width < 44 || r.height < 44) {
                small.push(el.outerHTML.slice(0, 80) + " " + Math.round(r.width) + "×"
                           + Math.round(r.height));
            }
        }
        return small;
    }""", TARGETS))


@pytest.mark.parametrize("setting", ["phone", "zoom-200", "font-32px"])
def test_resident_pages_are_large_clean_and_fit(live: Live, chromium: Any, shots: Any,
                                               setting: str, tmp_path: Path) -> None:
    zoomed = setting == "zoom-200"
    # axe is injected as an inline script, which the pages' CSP refuses: that run bypasses it
    # (the other two keep it, and check the console stays clean).
    if setting == "font-32px":  # the browser's own setting: Chrome's "very large" font size
        profile = tmp_path / "profile"
        (profile / "Default").mkdir(parents=True)
        (profile / "Default" / "Preferences").write_text(json.dumps(
            {"webkit": {"webprefs": {"default_font_size": 32}}}))
        context = chromium.browser_type.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, viewport=PHONE, locale="zh-CN",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    else:
        context = chromium.new_context(viewport=ZOOMED if zoomed else PHONE,
                                       device_scale_factor=2 if zoomed else 1, locale="zh-CN",
                                       bypass_csp=setting == "phone")
    page = context.new_page()
    errors: list[str] = []
    # The 404 page's own status is logged as an error by Chromium; any other is a fault.
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not page.url.endswith("/s/NOPE/") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        for name, url in _resident_pages(live, page):
            response = page.goto(url)
            assert response is not None
            if name == "unknown":
                assert response.status == 404
                assert "这个二维码或链接无法使用" in page.inner_text("h1")
            shots(page, f"{name}-{setting}")
            body = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
            root = page.evaluate("getComputedStyle(document.documentElement).fontSize")
            assert body == (40 if setting == "font-32px" else 20), (name, root)
            width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
            assert width[0] <= width[1], f"{name} scrolls sideways at {setting}: {width}"
            assert _tap_targets_too_small(page) == [], name
            bar = page.locator("nav.bar .btn").first.bounding_box()
            assert bar is not None and bar["y"] + bar["height"] <= page.viewport_size["height"]
            if setting == "phone":
                assert axe.violations(page) == [], name
        assert errors == []
    finally:
        context.close()


def test_status_page_shows_the_result_and_asks_in_words(live: Live, chromium: Any,
                                                        shots: Any) -> None:
    context = chromium.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    try:
        pages = dict(_resident_pages(live, page))
        page.goto(pages["status"])
        assert "已调整门机" in page.inner_text("#result")
        assert [page.inner_text(f"label:has(input[name=satisfaction][value='{v}'])").strip()
                for v in ("5", "3", "1")] == ["满意", "基本满意", "不满意"]
        shown = page.evaluate("""() => [...document.querySelectorAll("h2, legend, p")]
            .filter(e => e.textContent.includes("问题解决了吗")
                    && e.getBoundingClientRect().width > 2).length""")
        assert shown == 1  # the form's legend is there for screen readers only
        shots(page, "status-result")
    finally:
        context.close()


def test_an_urgent_word_suggests_the_urgent_category_as_the_resident_types(
        live: Live, chromium: Any, shots: Any) -> None:
    context = chromium.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{live.url}/S/{_code(live, PlaceKind.UNIT)}")
        page.check("input[name=category][value=sanitation]")
        assert page.is_hidden("#nudge-live")
        page.fill("#f-text", "楼道里的纸箱挡住了消防通道")
        page.wait_for_selector("#nudge-live:visible", timeout=TIMEOUT)
        assert "消防通道" in page.inner_text("#nudge-live")
        assert "安全隐患" in page.inner_text("#nudge-live")
        shots(page, "nudge")
        page.check("input[name=category][value=safety]")
        assert page.is_hidden("#nudge-live")
    finally:
        context.close()


def _camera_photo(path: Path) -> int:
    """A 3 MB, 4000 × 3000 'camera' JPEG with noise (photos do not compress like flat grey)."""
    image = Image.effect_noise((4000, 3000), 64).convert("RGB")
    buffer = BytesIO()
    image.save(buffer, "JPEG", quality=85)
    path.write_bytes(buffer.getvalue())
    return len(buffer.getvalue())


def test_a_camera_photo_is_shrunk_in_the_browser_and_its_upload_shows_progress(
        live: Live, chromium: Any, shots: Any, tmp_path: Path) -> None:
    photo = tmp_path / "camera.jpg"
    size = _camera_photo(photo)
    assert size > 2_000_000
    context = chromium.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    posted: list[int] = []
    page.on("request", lambda r: posted.append(len(r.post_data_buffer or b""))
            if r.method == "POST" else None)
    try:
        page.goto(f"{live.url}/S/{_code(live, PlaceKind.ELEVATOR)}")
        page.set_input_files("#f-photos", str(photo))
        page.wait_for_selector("#thumbs li img", timeout=TIMEOUT)
        # Drawn from a blob: URL, which the page's CSP must allow.
        page.wait_for_function("document.querySelector('#thumbs li img').naturalWidth > 0",
                               timeout=TIMEOUT)
        shots(page, "thumbnail")
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {  # a slow line: the bar must move
            "offline": False, "latency": 150, "downloadThroughput": 200_000,
            "uploadThroughput": 100_000})
        page.click("#send")
        page.wait_for_selector("#progress:not([hidden])", timeout=TIMEOUT)
        shots(page, "progress")
        page.wait_for_selector("text=已收到您的反映", timeout=60_000)
    finally:
        context.close()
    assert posted and max(posted) < size // 3, (posted, size)
    with live.app.app_context():
        stored = db.session.scalar(sa.select(Photo).order_by(Photo.id.desc()).limit(1))
        assert stored is not None and max(stored.width, stored.height) == 1600


def test_with_javascript_the_servers_question_keeps_the_shrunk_photo_and_the_text(
        live: Live, chromium: Any, shots: Any, tmp_path: Path) -> None:
    photo = tmp_path / "camera.jpg"
    _camera_photo(photo)
    context = chromium.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{live.url}/S/{_code(live, PlaceKind.UNIT)}")
        page.check("input[name=category][value=sanitation]")
        page.fill("#f-text", "楼道纸箱挡住了消防通道")
        page.set_input_files("#f-photos", str(photo))
        page.wait_for_selector("#thumbs li img", timeout=TIMEOUT)
        page.click("#send")  # sent anyway, past the hint: the server asks once
        page.wait_for_selector("#nudge", timeout=TIMEOUT)
        assert page.input_value("#f-text") == "楼道纸箱挡住了消防通道"
        assert page.is_visible("#kept img")
        shots(page, "server-asks")
        page.click("#nudge button[value=safety]")
        page.wait_for_selector("text=已收到您的反映", timeout=TIMEOUT)
    finally:
        context.close()
    with live.app.app_context():
        case = db.session.scalar(sa.select(Case).order_by(Case.id.desc()).limit(1))
        assert case.category == "safety" and [len(r.photos) for r in case.reports] == [1]
