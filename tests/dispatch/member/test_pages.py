"""Member pages: signed single-purpose links; GET shows, POST from the page acts."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from dispatch import links
from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Case, CaseStatus, Notification
from tests import factories
from tests.factories import csrf_token, member, place

MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def case_id(app: Flask) -> Iterator[int]:
    """An elevator case whose building rung has been paged (李建国 L1 and 陈磊 E1)."""
    with app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        filed = file_report(place("TS-B1-U1-E1"), "elevator", text="电梯困人",
                            callback_phone="13900139000", now=MONDAY)
        lifecycle.run_step(filed.case.id, filed.case.token, now=MONDAY)
        yield filed.case.id


def link_in_alert(app: Flask, code: str, purpose: str) -> str:
    """The path of the `purpose` link in the alert sent to member `code`."""
    with app.app_context():
        body = db.session.scalar(sa.select(Notification.body).where(
            Notification.member_id == member(code).id, Notification.purpose == "alert"))
    url = re.search(rf"http://linli\.test(/m/{purpose}/\S+)", body)[1]
    return url


def status_of(app: Flask, case_id: int) -> tuple[str, str | None]:
    with app.app_context():
        case = db.session.get(Case, case_id)
        return case.status, case.accepted_by.code if case.accepted_by else None


def test_opening_an_accept_link_only_shows_a_page_with_a_big_button(
        app: Flask, client, case_id: int) -> None:
    path = link_in_alert(app, "L1", "accept")
    for _ in range(2):  # link previewers fetch more than once
        page = client.get(path)
        assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "我来处理，接单" in html and "测试花园 1栋 1单元 · 1号电梯" in html
    assert 'name="csrf_token"' in html
    assert "13900139000" not in html  # the resident's number is for the acceptor only
    assert status_of(app, case_id) == (CaseStatus.OPEN, None)


def test_pressing_the_button_accepts_and_the_case_page_offers_the_next_steps(
        app: Flask, client, case_id: int) -> None:
    path = link_in_alert(app, "L1", "accept")
    answer = client.post(path, data={"csrf_token": csrf_token(client, path)})
    assert answer.status_code == 303
    assert status_of(app, case_id) == (CaseStatus.ACCEPTED, "L1")
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "已接单，谢谢！" in page and "我已到场" in page and "已解决…" in page
    assert "13900139000" in page  # now the acceptor can call the resident back


def test_a_post_without_the_csrf_token_changes_nothing(app: Flask, client, case_id: int) -> None:
    answer = client.post(link_in_alert(app, "L1", "accept"))
    assert answer.status_code == 400
    assert status_of(app, case_id) == (CaseStatus.OPEN, None)


def test_forged_expired_and_other_purpose_links_are_refused(
        app: Flask, client, case_id: int) -> None:
    accept = link_in_alert(app, "L1", "accept")
    token = accept.rsplit("/", 1)[1]
    assert client.get(f"/m/resolve/{token}").status_code == 403  # an accept link cannot resolve
    assert client.get(accept[:-3] + "abc").status_code == 403

    class FourDaysAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 4 * 86400

    old = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="linli.member.accept",
                                 signer=FourDaysAgo).dumps([1, case_id])
    page = client.get(f"/m/accept/{old}")
    assert page.status_code == 403 and "链接已过期" in page.get_data(as_text=True)
    assert client.get(f"/m/nonsense/{token}").status_code == 404


def test_a_member_cannot_take_a_case_someone_else_accepted(
        app: Flask, client, case_id: int) -> None:
    with app.app_context():
        lifecycle.accept(case_id, member("E1").id)
    path = link_in_alert(app, "L1", "accept")
    answer = client.post(path, data={"csrf_token": csrf_token(client, path)})
    assert answer.status_code == 409
    assert "这个事项已由陈磊接单" in answer.get_data(as_text=True)
    assert status_of(app, case_id) == (CaseStatus.ACCEPTED, "E1")


def test_resolving_with_a_note_from_the_phone(app: Flask, client, case_id: int) -> None:
    with app.app_context():
        lifecycle.accept(case_id, member("E1").id)
        path = links.url(links.Purpose.RESOLVE, member("E1").id, case_id).removeprefix(
            "http://linli.test")
    answer = client.post(path, data={"csrf_token": csrf_token(client, path),
                                     "note": "更换了门机皮带"})
    assert answer.status_code == 303
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert case.status == CaseStatus.RESOLVED
        assert case.events[-1].message == "陈磊：已解决。更换了门机皮带"


def test_handing_over_to_a_colleague_chosen_on_the_page(app: Flask, client, case_id: int) -> None:
    with app.app_context():
        lifecycle.accept(case_id, member("L1").id)
        path = links.url(links.Purpose.HAND_OVER, member("L1").id, case_id).removeprefix(
            "http://linli.test")
        colleague = member("B1").id
    page = client.get(path).get_data(as_text=True)
    assert f'<option value="{colleague}">王秀英</option>' in page
    answer = client.post(path, data={"csrf_token": csrf_token(client, path),
                                     "to_member": str(colleague)})
    assert answer.status_code == 303
    assert status_of(app, case_id) == (CaseStatus.ACCEPTED, "B1")


def test_the_member_page_lists_only_the_members_open_cases(
        app: Flask, client, case_id: int) -> None:
    with app.app_context():
        other = file_report(place("TS-B2-U1"), "noise", now=MONDAY).case  # nobody at B2
        lifecycle.run_step(other.id, other.token, now=MONDAY)
        mine = links.url(links.Purpose.MEMBER, member("L1").id).removeprefix("http://linli.test")
        grid = links.url(links.Purpose.MEMBER, member("S1").id).removeprefix("http://linli.test")
    page = client.get(mine).get_data(as_text=True)
    assert page.count('class="card"') == 1 and "1号电梯" in page and "待接单" in page
    assert "2栋" not in page
    grid_page = client.get(grid).get_data(as_text=True)
    assert "2栋" in grid_page and "1号电梯" not in grid_page


def test_a_hand_over_link_cannot_hand_the_case_to_a_member_of_another_grid(
        app: Flask, client) -> None:
    with app.app_context():
        data = factories.small_community(overrides=[])
        data["places"] += [
            {"code": "TS-G2", "kind": "grid", "name": "第二网格"},
            {"code": "TS-B9", "kind": "building", "name": "9栋", "parent": "TS-G2"}]
        data["members"] += [{"code": "Z9", "name": "外网格", "kind": "party_member",
                             "phones": ["13800138099"]}]
        data["responsibilities"] += [{"member": "Z9", "place": "TS-B9", "role": "leader"}]
        factories.import_community(data)
        filed = file_report(place("TS-B1-U1-E1"), "elevator", text="电梯困人", now=MONDAY)
        lifecycle.run_step(filed.case.id, filed.case.token, now=MONDAY)
        case_id = filed.case.id
        lifecycle.accept(case_id, member("L1").id)
        path = links.path(links.Purpose.HAND_OVER, member("L1").id, case_id)
        outsider = member("Z9").id
    for chosen in (str(outsider), "9" * 30, "١"):
        answer = client.post(path, data={"csrf_token": csrf_token(client, path),
                                         "to_member": chosen})
        assert answer.status_code == 409, chosen
    assert status_of(app, case_id) == (CaseStatus.ACCEPTED, "L1")
