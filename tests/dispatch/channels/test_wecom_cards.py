"""WeCom end to end: an alert reaches members as a card with buttons; 接单 on the card accepts
the case through the lifecycle, and every card paged says who took it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import clock, jobs
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Case, CaseStatus, Channel, Contact, Notification, NotificationStatus
from tests import factories
from tests.factories import member, place
from tests.fakes.wecom_server import (
    AES_KEY,
    CORP_ID,
    SECRET,
    TOKEN,
    FakeWeCom,
    card_click_xml,
    encrypt_callback,
)

#: WeCom userids of the building's leader and backup, asked first about noise.
USERIDS = {"L1": "lijianguo", "B1": "wangxiuying"}


@pytest.fixture
def wecom(app: Flask, frozen_clock: None) -> Iterator[FakeWeCom]:
    with FakeWeCom() as fake, app.app_context():
        app.config.update(WECOM_CORP_ID=CORP_ID, WECOM_AGENT_ID=1000002, WECOM_SECRET=SECRET,
                          WECOM_TOKEN=TOKEN, WECOM_AES_KEY=AES_KEY, WECOM_API_BASE_URL=fake.url)
        factories.import_community(factories.dispatch_community())
        for code, userid in USERIDS.items():
            found = member(code)
            found.contacts.append(Contact(channel=Channel.WECOM, address=userid, priority=0,
                                          created_at=clock.now()))
            found.channel_order = ["wecom", "sms"]
        db.session.commit()
        yield fake


def run_jobs(app: Flask) -> None:
    while jobs.runner(app).drain():
        db.session.expire_all()
    db.session.expire_all()


def card_of(code: str) -> Notification:
    return db.session.scalars(sa.select(Notification).where(
        Notification.member_id == member(code).id, Notification.channel == Channel.WECOM)
        .order_by(Notification.id)).first()


def click(app: Flask, row: Notification, userid: str, button: str = "accept",
          **signing: Any) -> int:
    now = int(clock.now().timestamp())
    posted = encrypt_callback(card_click_xml(userid=userid, button=button,
                                             task_id=f"linli-{row.id}",
                                             response_code="code-from-the-click", created=now),
                              timestamp=now, **signing)
    response = app.test_client().post(
        f"/webhooks/wecom/callback?msg_signature={posted.msg_signature}"
        f"&timestamp={posted.timestamp}&nonce={posted.nonce}",
        data=posted.body, content_type="text/xml")
    return response.status_code


def test_an_alert_is_a_card_and_accept_on_it_takes_the_case_for_everyone_paged(
        app: Flask, wecom: FakeWeCom) -> None:
    case = file_report(place("TS-B1-U1"), "noise", text="楼上装修到深夜").case
    run_jobs(app)
    assert sorted(card["touser"] for card in wecom.sent) == ["lijianguo", "wangxiuying"]
    card = wecom.sent[0]["template_card"]
    assert card["main_title"]["title"] == f"请接单：{case.number}"
    assert {item["keyname"]: item["value"] for item in card["horizontal_content_list"]} == {
        "地点": "1栋 1单元", "类别": "噪音扰民", "紧急程度": "一般", "反映人数": "1 位居民"}
    assert [b["text"] for b in card["button_list"]] == ["接单", "转交", "查看"]
    row = card_of("L1")
    assert row.status == NotificationStatus.SENT and row.follow_up  # the card can be updated

    assert click(app, row, "lijianguo") == 200
    run_jobs(app)
    case = db.session.get(Case, case.id)
    assert case.status == CaseStatus.ACCEPTED and case.accepted_by_id == member("L1").id
    # Wang's card and Li's own now say who took it, instead of a second message.
    assert sorted(u["button"]["replace_name"] for u in wecom.updates) == ["已由李建国接单"] * 2
    assert {u["response_code"] for u in wecom.updates} == {
        card_of("L1").follow_up, card_of("B1").follow_up}
    assert len(wecom.sent) == 2


def test_a_click_twice_or_by_someone_else_changes_nothing(app: Flask, wecom: FakeWeCom) -> None:
    case_id = file_report(place("TS-B1-U1"), "noise").case.id
    run_jobs(app)
    assert click(app, card_of("L1"), "wangxiuying") == 200  # Wang pressing Li's card
    assert db.session.get(Case, case_id).status == CaseStatus.OPEN
    assert click(app, card_of("L1"), "lijianguo") == 200
    run_jobs(app)
    token, updates = db.session.get(Case, case_id).token, len(wecom.updates)
    assert click(app, card_of("L1"), "lijianguo") == 200  # WeCom delivers a click again
    run_jobs(app)
    assert (db.session.get(Case, case_id).token, len(wecom.updates)) == (token, updates)
    assert click(app, card_of("B1"), "wangxiuying") == 200  # too late: Li has it
    assert db.session.get(Case, case_id).accepted_by_id == member("L1").id


@pytest.mark.parametrize("signing", [{"token": "not-our-token"}, {"corp_id": "ww-another"}])
def test_a_click_not_signed_or_encrypted_for_us_is_refused(app: Flask, wecom: FakeWeCom,
                                                           signing: dict[str, str]) -> None:
    case_id = file_report(place("TS-B1-U1"), "noise").case.id
    run_jobs(app)
    assert click(app, card_of("L1"), "lijianguo", **signing) == 403
    assert db.session.get(Case, case_id).status == CaseStatus.OPEN


def test_without_wecom_the_callback_does_not_exist(app: Flask) -> None:
    assert app.test_client().post("/webhooks/wecom/callback", data=b"<xml/>").status_code == 404
