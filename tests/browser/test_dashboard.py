"""The staff dashboard in a real browser: log in, open March's figures, see the charts drawn.

The app is served from a werkzeug thread with the March history of two grids (see
`tests/dispatch/staff/history.py`); nothing may be fetched from anywhere but the app itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from dispatch.models import StaffRole
from tests.browser.conftest import Live
from tests.dispatch.staff.history import march, two_grid_community
from tests.factories import add_staff

pytestmark = pytest.mark.browser

TIMEOUT = 10_000  # ms
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def console_live(app: Flask) -> Iterator[Live]:
    """The console with the March history, served on a real socket."""
    with app.app_context():
        two_grid_community()
        march()
    add_staff(app, "admin", StaffRole.ADMIN)
    add_staff(app, "sec2", StaffRole.GRID_SECRETARY, "TS-G2")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="console-server", daemon=True)
    thread.start()
    try:
        yield Live(app, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def _log_in(page: Any, live: Live, username: str) -> None:
    page.goto(f"{live.url}/staff/login")
    page.fill("#username", username)
    page.fill("#password", "correct horse")
    page.click("button:has-text('登录')")
    page.wait_for_url(f"{live.url}/staff/", timeout=TIMEOUT)


def test_the_dashboard_draws_its_charts_without_the_internet(console_live: Live, chromium: Any,
                                                             shots: Any) -> None:
    context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        _log_in(page, console_live, "admin")
        page.click("nav >> text=统计")
        page.fill("input[name=month]", "2026-03")
        page.click("form.filters button")
        page.wait_for_selector("svg.chart", timeout=TIMEOUT)
        charts = page.locator("svg.chart")
        assert charts.count() == 7
        labels = [charts.nth(i).get_attribute("aria-label") for i in range(charts.count())]
        assert any("接单用时分布" in label for label in labels)
        histogram = page.locator("svg.chart[aria-label*='接单用时分布'] rect:has(title)")
        heights = [float(histogram.nth(i).get_attribute("height"))
                   for i in range(histogram.count())]
        assert len(heights) == 12 and sum(h > 0 for h in heights) == 5  # five accepted cases
        box = charts.first.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 30
        body = page.inner_text("main")
        for text in ("响应率", "57.1%", "解决率", "50.0%", "满意率", "回访率", "第一网格"):
            assert text in body
        shots(page, "dashboard-march")
        page.goto(f"{console_live.url}/staff/cases/")
        assert page.locator("meta[http-equiv=refresh]").count() == 0  # it updates in place
        assert page.locator("#board-live").count() == 1
        shots(page, "board")
    finally:
        context.close()
    assert requested and all(url.startswith(console_live.url) for url in requested)


def test_a_grid_secretary_sees_only_their_grid_in_the_browser(console_live: Live,
                                                              chromium: Any,
                                                              shots: Any) -> None:
    context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")
    page = context.new_page()
    try:
        _log_in(page, console_live, "sec2")
        page.goto(f"{console_live.url}/staff/dashboard?month=2026-03")
        page.wait_for_selector("svg.chart", timeout=TIMEOUT)
        body = page.inner_text("main")
        assert "第二网格" in body and "第一网格" not in body
        shots(page, "dashboard-grid-secretary")
    finally:
        context.close()
