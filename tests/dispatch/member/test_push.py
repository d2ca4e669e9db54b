"""Web Push: a member subscribes from their page; pushes arrive encrypted and VAPID-signed,
carry the accept/resolve links, and a subscription the service calls gone is removed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from flask import Flask

from dispatch import links
from dispatch.db import db
from dispatch.models import Channel, Contact, Notification, NotificationStatus
from dispatch.roster.duty import working_contact
from tests import factories
from tests.dispatch.channels.helpers import (
    contact,
    events,
    link_names,
    open_case,
    row_for,
    send,
    subscribe_push,
)
from tests.factories import member
from tests.fakes.push_service import PushService, b64url, vapid_keys
from tests.fakes.twilio_server import FakeTwilio

SUBJECT = "mailto:duty@linli.example.cn"


@pytest.fixture
def push_service() -> Iterator[PushService]:
    with PushService() as service:
        yield service


@pytest.fixture
def push_app(twilio_app: Flask) -> Flask:
    private, public = vapid_keys()
    twilio_app.config.update(VAPID_PRIVATE_KEY=private, VAPID_PUBLIC_KEY=public,
                             VAPID_SUBJECT=SUBJECT, PUSH_ALLOW_HTTP=True)
    return twilio_app


def subscribe(app: Flask, member_code: str, subscription: dict[str, Any]) -> Any:
    """Push turned on by the member, code from their phone and all."""
    return subscribe_push(app, member_code, subscription)


def _code(fake_twilio: FakeTwilio) -> str:
    """The push code in the first SMS the provider took."""
    return re.search(r"\d{6}", fake_twilio.sent("Messages")[0].form["Body"])[0]


def test_the_member_page_offers_push_with_our_key_and_a_root_service_worker(
        push_app: Flask) -> None:
    token = links.sign(links.Purpose.MEMBER, member("L1").id)
    page = push_app.test_client().get(f"/m/push/{token}").get_data(as_text=True)
    assert push_app.config["VAPID_PUBLIC_KEY"] in page and f"/m/push/{token}/subscribe" in page
    worker = push_app.test_client().get("/sw.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    assert worker.headers["Service-Worker-Allowed"] == "/"
    assert "showNotification" in worker.get_data(as_text=True)
    assert push_app.test_client().get("/m/push/forged-token").status_code == 404


def test_subscribing_stores_a_push_contact_first_in_the_members_order(
        push_app: Flask, push_service: PushService) -> None:
    subscription = push_service.subscribe()
    assert subscribe(push_app, "L1", subscription).get_json() == {"ok": True}
    assert subscribe(push_app, "L1", subscription).status_code == 200  # again: no duplicate
    [contact] = [c for c in member("L1").contacts if c.channel == Channel.PUSH]
    assert contact.address == subscription["endpoint"]
    assert contact.push_keys == subscription["keys"]
    assert member("L1").channel_order[0] == "push"
    assert subscribe(push_app, "L1", {"endpoint": "ftp://x", "keys": {}}).status_code == 400


def test_an_alert_push_is_encrypted_signed_and_carries_the_action_links(
        push_app: Flask, push_service: PushService, fake_twilio: FakeTwilio) -> None:
    subscription = push_service.subscribe()
    subscribe(push_app, "E1", subscription)
    case = open_case()
    row = send(row_for(case, "E1"))
    assert row.channel == Channel.PUSH and row.status == NotificationStatus.SENT, row.last_error
    assert not push_service.errors
    [push] = push_service.received(subscription)
    e1 = member("E1").id
    assert push.payload["title"] == "邻里：电梯故障 1栋 1单元 · 1号电梯"
    assert push.payload["body"] == row.body
    assert link_names(push.payload["url"]) == ("case", e1, case.id)
    actions = {a["action"]: link_names(a["url"]) for a in push.payload["actions"]}
    assert actions == {"accept": ("accept", e1, case.id), "resolve": ("resolve", e1, case.id)}
    assert push.ttl == 900 and push.urgency == "high"
    assert push.claims["sub"] == SUBJECT
    assert push.vapid_key == push_app.config["VAPID_PUBLIC_KEY"]
    # No alert SMS: push came first in E1's order (the one SMS was the code that turned it on).
    [code_sms] = fake_twilio.sent("Messages")
    assert code_sms.form["Body"].startswith(f"【邻里】推送验证码 {_code(fake_twilio)}")


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_subscription_is_removed_and_the_member_gets_an_sms_instead(
        push_app: Flask, push_service: PushService, fake_twilio: FakeTwilio,
        status: int) -> None:
    subscription = push_service.subscribe()
    subscribe(push_app, "E1", subscription)
    push_service.answer_with(subscription, status)
    case = open_case()
    row = send(row_for(case, "E1"))
    assert row.status == NotificationStatus.FAILED and row.error_code == str(status)
    assert db.session.query(Contact).filter_by(channel=Channel.PUSH).count() == 0
    assert db.session.get(Notification, row.id).to_address == subscription["endpoint"]
    sms = send(row_for(case, "E1", channel=Channel.SMS))
    assert sms.status == NotificationStatus.SENT
    assert [r.form["Body"] for r in fake_twilio.sent("Messages")][1:] == [sms.sent_text or sms.body]
    assert any("改用短信通知" in m for m in events(case, "retried"))


def test_the_member_page_links_to_push_only_when_it_is_configured(push_app: Flask) -> None:
    token = links.sign(links.Purpose.MEMBER, member("L1").id)
    page = push_app.test_client().get(f"/m/member/{token}").get_data(as_text=True)
    assert f"/m/push/{token}" in page
    push_app.config["VAPID_PUBLIC_KEY"] = None
    page = push_app.test_client().get(f"/m/member/{token}").get_data(as_text=True)
    assert "/m/push/" not in page


def test_push_keys_prints_a_usable_key_pair(push_app: Flask) -> None:
    from py_vapid import Vapid

    output = push_app.test_cli_runner().invoke(args=["push", "keys"]).output
    values = dict(line.split("=", 1) for line in output.split())
    public = Vapid.from_string(values["VAPID_PRIVATE_KEY"]).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert values["VAPID_PUBLIC_KEY"] == b64url(public)


def test_a_member_link_cannot_subscribe_an_endpoint_outside_the_browsers_push_services(
        push_app: Flask) -> None:
    push_app.config["PUSH_ALLOW_HTTP"] = False
    keys = {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1Xbjh"
                      "azAkj7I99e8QcYP7DkM", "auth": "tBHItJI5svbpez7KI4CCXg"}
    for endpoint in ("https://evil.example/x", "http://fcm.googleapis.com/fcm/send/x",
                     "https://fcm.googleapis.com.evil.example/x"):
        answer = subscribe(push_app, "L1", {"endpoint": endpoint, "keys": keys})
        assert answer.status_code == 400, endpoint
    assert [c for c in member("L1").contacts if c.channel == Channel.PUSH] == []
    good = subscribe(push_app, "L1", {"endpoint": "https://fcm.googleapis.com/fcm/send/abc",
                                      "keys": keys})
    assert good.get_json() == {"ok": True}


@pytest.fixture
def console_push_app(app: Flask) -> Iterator[Flask]:
    """The app with Web Push and the console SMS backend (SMS stored and logged, not sent)."""
    private, public = vapid_keys()
    app.config.update(VAPID_PRIVATE_KEY=private, VAPID_PUBLIC_KEY=public, VAPID_SUBJECT=SUBJECT,
                      PUSH_ALLOW_HTTP=True, SMS_BACKEND="console")
    with app.app_context():
        factories.import_community(factories.dispatch_community())
        db.session.commit()
        yield app


def _push_contacts(code: str) -> list[Contact]:
    db.session.expire_all()
    return [c for c in member(code).contacts if c.channel == Channel.PUSH]


def test_a_member_link_alone_cannot_put_a_browser_first_only_the_code_sent_to_the_phone_can(
        console_push_app: Flask, push_service: PushService) -> None:
    # Whoever holds L1's 30-day member page link subscribes a browser of their own.
    client = console_push_app.test_client()
    token = links.sign(links.Purpose.MEMBER, member("L1").id)
    subscription = push_service.subscribe()
    asked = client.post(f"/m/push/{token}/subscribe", json=subscription)
    assert asked.status_code == 202 and asked.get_json()["confirm"] is True
    assert working_contact(member("L1")).channel == Channel.SMS  # nothing changed yet
    assert "push" not in (member("L1").channel_order or [])
    # The code goes to L1's phone through the outbox and the SMS backend, and nowhere else.
    [row] = db.session.scalars(sa.select(Notification).where(
        Notification.member_id == member("L1").id, Notification.case_id.is_(None))).all()
    assert row.channel == Channel.SMS and row.to_address == contact("L1").address
    row = send(row)
    assert row.status == NotificationStatus.SENT, row.last_error
    code = re.search(r"\d{6}", row.body)[0]
    assert code not in asked.get_data(as_text=True)
    # A guess does not confirm it; an alert still goes to L1 by SMS.
    wrong = "000000" if code != "000000" else "111111"
    guessed = client.post(f"/m/push/{token}/confirm",
                          json={"endpoint": subscription["endpoint"], "code": wrong})
    assert guessed.status_code == 400
    assert working_contact(member("L1")).channel == Channel.SMS
    # The code from the phone does: the browser is stored and goes first.
    confirmed = client.post(f"/m/push/{token}/confirm",
                            json={"endpoint": subscription["endpoint"], "code": code})
    assert confirmed.get_json() == {"ok": True}
    [push] = _push_contacts("L1")
    assert push.address == subscription["endpoint"] and push.push_keys == subscription["keys"]
    assert member("L1").channel_order[0] == "push"
    assert working_contact(member("L1")).channel == Channel.PUSH


def test_guessing_the_code_stops_after_five_tries(
        console_push_app: Flask, push_service: PushService) -> None:
    client = console_push_app.test_client()
    token = links.sign(links.Purpose.MEMBER, member("L1").id)
    subscription = push_service.subscribe()
    assert client.post(f"/m/push/{token}/subscribe", json=subscription).status_code == 202
    row = db.session.scalars(sa.select(Notification).where(
        Notification.member_id == member("L1").id, Notification.case_id.is_(None))).one()
    code = re.search(r"\d{6}", row.body)[0]
    guesses = [f"{n:06d}" for n in range(7) if f"{n:06d}" != code][:5]
    for guess in guesses:
        assert client.post(f"/m/push/{token}/confirm", json={
            "endpoint": subscription["endpoint"], "code": guess}).status_code == 400
    late = client.post(f"/m/push/{token}/confirm",
                       json={"endpoint": subscription["endpoint"], "code": code})
    assert late.status_code == 400  # the right code, after five wrong ones: too late
    assert _push_contacts("L1") == []
