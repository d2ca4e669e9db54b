"""The desk in a real browser: log a call, see it routed and accepted, reclassify, assign, and
watch the board update itself.

The small test community on a werkzeug thread, driven by Debian's Chromium at a laptop's
1366×768. The ladder's steps are taken by the test (`_ladder`), as the worker would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import jobs, links
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.jobs import sweeper
from dispatch.links import Purpose
from dispatch.models import Case, CaseEvent, Notification, StaffRole
from qr import codes
from tests import factories
from tests.browser.axe import violations
from tests.browser.conftest import Live, serve

pytestmark = pytest.mark.browser

TIMEOUT = 10_000  # ms
LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture
def desk_live(app: Flask, frozen_clock: None) -> Iterator[Live]:
    """The small community and an admin login, served on a real socket."""
    with app.app_context():
        factories.import_community(factories.small_community())
    factories.add_staff(app, "admin", StaffRole.ADMIN)
    app.config["BOARD_POLL_SECONDS"] = 0.5
    yield from serve(app, "desk-server")


def _page(chromium: Any, live: Live, *, bypass_csp: bool = False) -> Any:
    """A logged-in admin's page; `bypass_csp` lets the test inject axe-core."""
    page = chromium.new_context(viewport=LAPTOP, locale="zh-CN",
                                bypass_csp=bypass_csp).new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{live.url}/staff/login")
    page.fill("#username", "admin")
    page.fill("#password", "correct horse")
    page.click("button:has-text('登录')")
    page.wait_for_url(f"{live.url}/staff/")
    return page


def _ladder(live: Live) -> None:
    """Take every step that is due and send what is queued, as the worker would."""
    with live.app.app_context():
        from dispatch import clock

        sweeper.sweep(clock.now(), grace=timedelta(0))
        jobs.runner(live.app).drain()


def _last_case(live: Live) -> Case:
    with live.app.app_context():
        case = db.session.scalar(sa.select(Case).order_by(Case.id.desc()).limit(1))
        db.session.expunge(case)
        return case


def test_a_call_is_logged_found_by_typeahead_routed_and_accepted(
        desk_live: Live, chromium: Any, shots: Any) -> None:
    page = _page(chromium, desk_live)
    page.click("nav a:has-text('来电登记')")
    page.fill("#place-q", "1栋 电梯")
    page.wait_for_selector("#place-matches label:has-text('1栋 1单元 · 1号电梯')")
    page.check("#place-matches input[type=radio]")
    page.select_option("#category", "elevator")
    page.select_option("#urgency", "urgent")
    page.fill("#text", "电梯停在5楼，里面有人")
    page.fill("#phone", "13800139999")
    shots(page, "01-intake")
    page.click("button:has-text('登记并派单')")
    page.wait_for_selector("text=已登记来电")
    case = _last_case(desk_live)
    assert page.url.endswith(f"/staff/cases/{case.id}")
    _ladder(desk_live)
    with desk_live.app.app_context():
        paged = [n.member.code for n in db.session.scalars(sa.select(Notification).where(
            Notification.case_id == case.id, Notification.purpose == "alert"))]
        accept = links.path(Purpose.ACCEPT, factories.member("L1").id, case.id)
    assert paged == ["L1", "E1"]  # the building's leader and the lift maintainer
    member = chromium.new_context(viewport={"width": 390, "height": 844}).new_page()
    member.goto(desk_live.url + accept)
    member.click("button:has-text('我来处理，接单')")
    member.wait_for_selector("text=已接单")
    page.reload()
    assert "李建国在第1级（楼栋）接单" in page.inner_text(".timeline")
    assert page.inner_text(".status").startswith("已接单")
    shots(page, "02-accepted")


def test_reclassify_and_assign_from_the_case_page(desk_live: Live, chromium: Any,
                                                   shots: Any) -> None:
    with desk_live.app.app_context():
        case_id = file_report(factories.place("TS-B1-U1"), "sanitation",
                              text="消防通道被杂物堵死").case.id
    _ladder(desk_live)
    page = _page(chromium, desk_live)
    page.goto(f"{desk_live.url}/staff/cases/{case_id}")
    page.select_option("#re-category", "safety")
    page.select_option("select[name=urgency][aria-label=紧急程度]", "urgent")
    page.click("button:has-text('改类')")
    page.wait_for_selector("text=已改类")
    assert "环境卫生·较低 → 安全隐患·紧急" in page.inner_text(".timeline")
    _ladder(desk_live)
    with desk_live.app.app_context():
        case = db.session.get(Case, case_id)
        assert case.category == "safety" and case.urgency == "urgent"
    page.reload()
    assert page.inner_text("#assign button") == "指派"
    page.fill("#assign-who", "张")  # filters the list as one types
    visible = page.eval_on_selector_all("#reassign-member option",
                                        "os => os.filter(o => !o.hidden).map(o => o.text)")
    assert visible and all("张" in text for text in visible)
    page.select_option("#reassign-member", label=next(t for t in visible if "张伟" in t))
    page.click("#assign button")
    page.wait_for_selector("text=已指派给 张伟，等待其接单")
    assert page.inner_text("#assign button") == "改派"
    shots(page, "03-assigned")
    with desk_live.app.app_context():
        case = db.session.get(Case, case_id)
        assert case.dispatched_to.code == "S1" and case.accepted_at is None


def test_the_board_updates_in_place_and_filters(desk_live: Live, chromium: Any,
                                                shots: Any) -> None:
    with desk_live.app.app_context():
        file_report(factories.place("TS-B2-U1"), "noise")
    page = _page(chromium, desk_live)
    page.goto(f"{desk_live.url}/staff/cases/")
    page.evaluate("window.notReloaded = true")
    assert page.locator("#board-live tbody tr").count() == 1
    with desk_live.app.app_context():
        lift = file_report(factories.place("TS-B1-U1-E1"), "elevator").case
        number = lift.number
    page.wait_for_selector(f"#board-live a:has-text('{number}')")
    assert page.evaluate("window.notReloaded") is True  # swapped in, no reload
    assert page.locator("#board-live tbody tr").count() == 2
    shots(page, "04-board-live")
    page.select_option("select[name=urgency]", "urgent")
    page.click("form.filters button:has-text('筛选')")
    page.wait_for_url("**urgency=urgent**")
    assert page.locator("#board-live tbody tr").count() == 1
    assert page.get_attribute("#board-refresh", "href").endswith("?urgency=urgent")
    with desk_live.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(CaseEvent.id))) >= 2


def test_the_board_works_without_javascript(desk_live: Live, chromium: Any) -> None:
    context = chromium.new_context(viewport=LAPTOP, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{desk_live.url}/staff/login")
    page.fill("#username", "admin")
    page.fill("#password", "correct horse")
    page.click("button:has-text('登录')")
    page.goto(f"{desk_live.url}/staff/cases/")
    assert page.locator("#board-live tbody tr").count() == 1  # "no open cases"
    with desk_live.app.app_context():
        number = file_report(factories.place("TS-B2-U1"), "noise").case.number
    page.click("#board-refresh")
    page.wait_for_selector(f"#board-live a:has-text('{number}')")
    page.goto(f"{desk_live.url}/staff/intake/")
    page.fill("#place-q", "2栋")
    page.click("button:has-text('查找')")
    assert page.locator("#place-matches input[type=radio]").count() == 2


def test_console_and_member_pages_have_no_axe_violations(desk_live: Live, chromium: Any) -> None:
    with desk_live.app.app_context():
        case = file_report(factories.place("TS-B1-U1"), "noise", text="楼上很吵").case
        sticker = codes.issue(factories.place("TS-B1-U1"))
        db.session.commit()
        case_id, code = case.id, sticker.code
        member_pages = [links.path(Purpose.CASE, factories.member("L1").id, case_id),
                        links.path(Purpose.MEMBER, factories.member("L1").id),
                        links.path(Purpose.RESOLVE, factories.member("L1").id, case_id)]
    _ladder(desk_live)
    page = _page(chromium, desk_live, bypass_csp=True)
    found: dict[str, list[str]] = {}
    for path in ("/staff/", "/staff/cases/", f"/staff/cases/{case_id}", "/staff/intake/",
                 "/staff/intake/?q=1栋", f"/staff/intake/?place={case.place_id}",
                 "/staff/duty/", "/staff/duty/week", "/staff/roster/", "/staff/roster/?q=李",
                 "/staff/roster/members/L1", "/staff/stickers/", "/staff/stickers/TS-B1",
                 f"/staff/stickers/code/{code}/revoke", "/staff/dashboard", "/staff/reports",
                 "/staff/notices/", "/staff/blocklist/", "/staff/audit/", *member_pages):
        response = page.goto(desk_live.url + path)
        if response is None or response.status != 200:
            found[path] = [f"HTTP {response.status if response else '?'}"]
            continue
        problems = violations(page)
        if problems:
            found[path] = problems
    assert found == {}, "\n".join(f"{path}: {p}" for path, ps in found.items() for p in ps)


def test_a_new_urgent_case_beeps_and_notifies_once_the_worker_opted_in(
        desk_live: Live, chromium: Any) -> None:
    context = chromium.new_context(viewport=LAPTOP, locale="zh-CN")
    context.grant_permissions(["notifications"], origin=desk_live.url)
    # Record what the page asks of the browser instead of sounding and showing it.
    context.add_init_script("""
        window.shown = []; window.beeps = 0;
        window.Notification = function (title, options) {
            window.shown.push(title + "|" + options.body);
        };
        window.Notification.permission = "granted";
        window.Notification.requestPermission = function () { return Promise.resolve("granted"); };
        window.AudioContext = function () {
            return {currentTime: 0, destination: {},
                    createOscillator: function () { return {frequency: {}, connect: function () {},
                        start: function () { window.beeps += 1; }, stop: function () {}}; },
                    createGain: function () { return {gain: {}, connect: function () {}}; }};
        };""")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{desk_live.url}/staff/login")
    page.fill("#username", "admin")
    page.fill("#password", "correct horse")
    page.click("button:has-text('登录')")
    page.goto(f"{desk_live.url}/staff/cases/")
    with desk_live.app.app_context():
        file_report(factories.place("TS-B2-U1"), "noise")  # not urgent: no alert
    page.wait_for_selector("#board-live tbody tr >> nth=0")
    page.wait_for_timeout(1500)
    assert page.evaluate("window.shown") == []  # not opted in, and nothing urgent
    page.click("#board-alerts")
    assert page.inner_text("#board-alerts") == "关闭新紧急案件提醒"
    with desk_live.app.app_context():
        number = file_report(factories.place("TS-B1-U1-E1"), "elevator").case.number
    page.wait_for_selector(f"#board-live a:has-text('{number}')")
    page.wait_for_function("window.shown.length > 0")
    assert page.evaluate("window.shown") == ["邻里：新的紧急案件|有 1 件新的紧急案件，请查看看板。"]
    assert page.evaluate("window.beeps") == 1 and page.title().startswith("（1 件新紧急）")
    page.wait_for_timeout(1500)  # later fetches do not repeat it
    assert page.evaluate("window.shown.length") == 1
    context.close()
