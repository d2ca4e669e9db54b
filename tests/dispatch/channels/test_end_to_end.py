"""The demo flow end to end, with the embedded job runner and real provider SDKs:
a resident's message → the ladder → SMS / push → the member accepts → delivery receipt."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import jobs
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Case, CaseStatus, Notification, NotificationStatus
from tests import factories
from tests.dispatch.channels.helpers import subscribe_push
from tests.factories import member, place
from tests.fakes.aliyun_server import ACCESS_KEY_ID, ACCESS_KEY_SECRET, FakeAliyun
from tests.fakes.fixtures import TWILIO_FROM
from tests.fakes.push_service import PushService, vapid_keys
from tests.fakes.twilio_server import FakeTwilio

E1_PHONE = "+8613800138005"


def run_jobs(app: Flask) -> None:
    """Let the embedded runner do everything that is due now (steps, then sends)."""
    while jobs.runner(app).drain():
        db.session.expire_all()
    db.session.expire_all()


def resident_reports() -> Case:
    """A resident scans the elevator's sticker and leaves a message."""
    filed = file_report(place("TS-B1-U1-E1"), "elevator", text="电梯停在 5 楼，门打不开")
    return filed.case


def sent_to(member_code: str) -> Notification:
    return db.session.scalars(
        sa.select(Notification).where(Notification.member_id == member(member_code).id)
        .order_by(Notification.id)).first()


def accept_by_link(app: Flask, url: str) -> None:
    """Open a link from the message and press the accept button on its page.

    One client does both, as one phone would: the page's CSRF token lives in its session.
    """
    client = app.test_client()
    path = url.removeprefix(app.config["PUBLIC_BASE_URL"])
    page = client.get(path).get_data(as_text=True)
    form = re.search(r'<form method="post"(?: action="([^"]*)")?[^>]*>\s*'
                     r'<input type="hidden" name="csrf_token" value="([^"]+)"', page)
    assert form is not None, page
    target = form[1] or path
    assert "/m/accept/" in target
    answer = client.post(target, data={"csrf_token": form[2]})
    assert answer.status_code in (200, 302, 303), answer.get_data(as_text=True)[:500]
    db.session.expire_all()


def test_twilio_sms_reply_1_accepts_and_the_receipt_is_recorded(
        twilio_any_app: Flask, fake_twilio: FakeTwilio) -> None:
    twilio_app = twilio_any_app
    case = resident_reports()
    run_jobs(twilio_app)
    bodies = {r.form["To"]: r.form["Body"] for r in fake_twilio.sent("Messages")}
    assert set(bodies) == {E1_PHONE, "+8613800138001"}
    assert "电梯停在 5 楼" in bodies[E1_PHONE] and "回复 1 接单" in bodies[E1_PHONE]

    assert fake_twilio.inbound_sms("http://linli.test/webhooks/twilio/sms/inbound",
                                   E1_PHONE, TWILIO_FROM, "1") == 200
    db.session.expire_all()
    case = db.session.get(Case, case.id)
    assert case.status == CaseStatus.ACCEPTED and case.accepted_by.code == "E1"

    alert = sent_to("E1")
    assert fake_twilio.callback(alert.provider_id, "delivered") == 204
    db.session.expire_all()
    assert db.session.get(Notification, alert.id).status == NotificationStatus.DELIVERED
    assert db.session.get(Case, case.id).first_delivered_at is not None
    # L1 hears that E1 took it, a minute after their alert (one SMS a minute per phone).
    run_jobs(twilio_app)
    taken = db.session.scalars(sa.select(Notification).where(
        Notification.member_id == member("L1").id, Notification.purpose == "taken")).one()
    assert taken.status == NotificationStatus.PENDING and taken.next_attempt_at is not None


@pytest.fixture
def push_service() -> Iterator[PushService]:
    with PushService() as service:
        yield service


def test_push_carries_the_accept_link_that_takes_the_case(
        twilio_app: Flask, fake_twilio: FakeTwilio, push_service: PushService) -> None:
    private, public = vapid_keys()
    twilio_app.config.update(VAPID_PRIVATE_KEY=private, VAPID_PUBLIC_KEY=public,
                             VAPID_SUBJECT="mailto:duty@linli.example.cn", PUSH_ALLOW_HTTP=True)
    subscription = push_service.subscribe()
    assert subscribe_push(twilio_app, "E1", subscription).get_json() == {"ok": True}
    codes_sent = len(fake_twilio.sent("Messages"))  # the code that turned push on
    case = resident_reports()
    run_jobs(twilio_app)
    [push] = push_service.received(subscription)
    accept = next(a["url"] for a in push.payload["actions"] if a["action"] == "accept")
    accept_by_link(twilio_app, accept)
    case = db.session.get(Case, case.id)
    assert case.status == CaseStatus.ACCEPTED and case.accepted_by.code == "E1"
    assert sent_to("E1").status == NotificationStatus.SENT  # push services send no receipts
    assert E1_PHONE not in {r.form["To"] for r in fake_twilio.sent("Messages")[codes_sent:]}


@pytest.fixture
def aliyun_app(app: Flask) -> Iterator[tuple[Flask, FakeAliyun]]:
    with FakeAliyun() as fake:
        app.config.update(SMS_BACKEND="aliyun", ALIYUN_ACCESS_KEY_ID=ACCESS_KEY_ID,
                          ALIYUN_ACCESS_KEY_SECRET=ACCESS_KEY_SECRET,
                          ALIYUN_SMS_SIGN_NAME="邻里社区", ALIYUN_SMS_TEMPLATE_CODE="SMS_1",
                          ALIYUN_SMS_ENDPOINT=fake.url, ALIYUN_REPORT_TOKEN="tok")
        with app.app_context():
            factories.import_community(factories.dispatch_community())
            yield app, fake


def test_alibaba_cloud_sms_link_accepts_and_the_report_is_recorded(
        aliyun_app: tuple[Flask, FakeAliyun]) -> None:
    app, fake = aliyun_app
    case = resident_reports()
    run_jobs(app)
    request: Any = next(r for r in fake.requests if r.params["PhoneNumbers"] == "13800138005")
    assert request.signature_ok
    accept_by_link(app, request.template_param["link"])  # the case page's accept button
    case = db.session.get(Case, case.id)
    assert case.status == CaseStatus.ACCEPTED and case.accepted_by.code == "E1"
    alert = sent_to("E1")
    report = [{"biz_id": alert.provider_id, "success": True, "err_code": "DELIVERED",
               "phone_number": "13800138005", "out_id": str(alert.id)}]
    assert app.test_client().post("/webhooks/aliyun/sms/report?token=tok",
                                  json=report).status_code == 200
    db.session.expire_all()
    assert db.session.get(Notification, alert.id).status == NotificationStatus.DELIVERED
    assert db.session.get(Case, case.id).first_delivered_at is not None
