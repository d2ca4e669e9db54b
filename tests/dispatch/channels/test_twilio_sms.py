"""Twilio SMS through the real SDK against the fake Twilio: bodies, errors, never twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from dispatch import clock
from dispatch.case import lifecycle
from dispatch.case.timeline import EventKind
from dispatch.db import db
from dispatch.models import Case, Channel, ContactStatus, NotificationStatus
from dispatch.outbox import delivery
from tests.dispatch.channels.helpers import contact, events, open_case, row_for, send
from tests.factories import member
from tests.fakes.fixtures import TWILIO_FROM
from tests.fakes.twilio_server import ACCOUNT_SID, FakeTwilio


def test_an_alert_goes_to_twilio_with_reply_code_receipt_url_and_validity(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    case = open_case()
    row = send(row_for(case, "E1"))
    [request] = fake_twilio.sent("Messages")
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.auth == (ACCOUNT_SID, twilio_app.config["TWILIO_AUTH_TOKEN"])
    form = request.form
    assert form["To"] == "+8613800138005" and form["From"] == TWILIO_FROM
    assert form["StatusCallback"] == "http://linli.test/webhooks/twilio/sms/status"
    assert form["ValidityPeriod"] == "600"
    assert form["Body"].startswith("【邻里】电梯故障")
    assert form["Body"].endswith("回复 1 接单，回复 1D 已解决")
    assert row.status == NotificationStatus.SENT and row.reply_code == "1"
    assert row.provider_id in fake_twilio.messages and row.provider_id.startswith("SM")


def test_a_messaging_service_replaces_the_from_number(twilio_app: Flask,
                                                      fake_twilio: FakeTwilio) -> None:
    twilio_app.config["TWILIO_MESSAGING_SERVICE_SID"] = "MG" + "1" * 32
    send(row_for(open_case(), "E1"))
    form = fake_twilio.sent("Messages")[0].form
    assert form["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in form


def test_an_invalid_number_breaks_the_contact_tells_staff_and_pages_the_next_rung(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    # Repairs: nobody at the building rung, so the grid secretary S1 is the only one asked.
    case = open_case("TS-B1-U1", "repair")
    fake_twilio.fail_next(21211)
    row = send(row_for(case, "S1"))
    assert row.status == NotificationStatus.FAILED and row.error_code == "21211"
    assert contact("S1").status == ContactStatus.BROKEN
    assert any("号码无效（21211）" in m for m in events(case, EventKind.CONTACT_PROBLEM))
    assert any("立即通知下一级" in m for m in events(case, EventKind.SKIPPED))
    case = db.session.get(Case, case.id)
    assert case.next_step_at <= clock.now()
    lifecycle.run_step(case.id, case.token, now=clock.now())
    assert row_for(case, "D1").rung == 3  # the community duty desk is paged at once
    assert len(fake_twilio.sent("Messages")) == 1  # a refused message is not retried


def test_a_recipient_who_sent_stop_is_marked_stopped_and_reached_by_their_next_channel(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    case = open_case("TS-B1-U1", "noise")  # B1 (sms, then voice) is the building's backup
    fake_twilio.fail_next(21610)
    row = send(row_for(case, "B1"))
    assert row.status == NotificationStatus.FAILED and row.error_code == "21610"
    assert contact("B1").status == ContactStatus.STOPPED
    assert contact("B1", Channel.VOICE).status == ContactStatus.OK
    assert any("已退订短信" in m for m in events(case, EventKind.CONTACT_PROBLEM))
    call = send(row_for(case, "B1", channel=Channel.VOICE))
    assert call.status == NotificationStatus.SENT and call.provider_id.startswith("CA")
    [placed] = fake_twilio.sent("Calls")
    assert placed.form["To"] == "+8613800138002"
    assert placed.form["Url"] == f"http://linli.test/webhooks/twilio/voice/alert?n={call.id}"
    assert any("改用电话通知" in m for m in events(case, EventKind.RETRIED))


def test_an_undeliverable_receipt_retries_by_the_members_next_channel(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    case = open_case("TS-B1-U1", "noise")
    row = send(row_for(case, "B1"))
    assert fake_twilio.callback(row.provider_id, "undelivered", error_code=30005) == 204
    db.session.expire_all()
    row = db.session.get(type(row), row.id)
    assert row.status == NotificationStatus.UNDELIVERED and row.error_code == "30005"
    assert contact("B1").status == ContactStatus.OK  # the number may work tomorrow
    voice = row_for(case, "B1", channel=Channel.VOICE)
    assert voice.status == NotificationStatus.PENDING
    assert voice.dedupe_key == row.dedupe_key + ">voice"


def test_a_server_error_is_retried_with_backoff_and_sent_once(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(http_status=500, resource="Messages")
    row = send(row_for(open_case(), "E1"))
    assert row.status == NotificationStatus.PENDING and row.error_code == "http-500"
    assert row.next_attempt_at - clock.now() > timedelta(seconds=5)
    delivery.send(row.id, row.next_attempt_at)
    db.session.expire_all()
    row = db.session.get(type(row), row.id)
    assert row.status == NotificationStatus.SENT
    assert len(fake_twilio.messages) == 1 and len(fake_twilio.sent("Messages")) == 2


def test_a_timeout_after_twilio_took_the_message_adopts_its_sid_instead_of_resending(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(hang=2.0, create=True, resource="Messages")
    row = send(row_for(open_case(), "E1"))
    assert row.status == NotificationStatus.PENDING and row.error_code == "timeout"
    [taken] = fake_twilio.messages
    delivery.send(row.id, row.next_attempt_at)
    db.session.expire_all()
    row = db.session.get(type(row), row.id)
    assert row.status == NotificationStatus.SENT and row.provider_id == taken
    assert len(fake_twilio.sent("Messages")) == 1  # looked up, not sent again
    assert [r.method for r in fake_twilio.requests] == ["POST", "GET"]


def test_while_twilio_cannot_be_asked_after_a_timeout_nothing_is_sent_again(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(hang=2.0, create=True, resource="Messages")
    row = send(row_for(open_case(), "E1"))
    [taken] = fake_twilio.messages
    fake_twilio.fail_next(http_status=500, resource="Messages")  # the look-up fails too
    delivery.send(row.id, row.next_attempt_at)
    db.session.expire_all()
    row = db.session.get(type(row), row.id)
    assert row.status == NotificationStatus.PENDING and row.error_code == "lookup-failed"
    delivery.send(row.id, row.next_attempt_at)
    db.session.expire_all()
    row = db.session.get(type(row), row.id)
    assert row.status == NotificationStatus.SENT and row.provider_id == taken
    assert len(fake_twilio.sent("Messages")) == 1


def test_a_timeout_before_twilio_took_it_is_sent_again_exactly_once(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(hang=2.0, resource="Messages")
    row = send(row_for(open_case(), "E1"))
    assert row.error_code == "timeout" and not fake_twilio.messages
    delivery.send(row.id, row.next_attempt_at)
    db.session.expire_all()
    row = db.session.get(type(row), row.id)
    assert row.status == NotificationStatus.SENT and list(fake_twilio.messages) == [row.provider_id]


def test_a_row_with_a_sid_is_never_sent_again_whatever_arrives_later(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    row = send(row_for(open_case(), "E1"))
    fake_twilio.callback(row.provider_id, "failed", error_code=30008)
    for _ in range(2):
        assert delivery.send(row.id, clock.now() + timedelta(hours=1)) is None
    assert len(fake_twilio.sent("Messages")) == 1
    assert member("E1").contacts[0].status == ContactStatus.OK


class Crash(BaseException):
    """The process dying: nothing after it runs, not even `except Exception` handlers."""


def test_a_send_interrupted_after_twilio_took_it_is_looked_up_not_sent_again(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker died between Twilio's answer and storing the SID: the row comes back to
    pending after `SENDING_TIMEOUT`, and its retry looks the message up, as after a timeout."""
    row = row_for(open_case(), "E1")

    def die(*args: object, **kwargs: object) -> None:
        raise Crash

    monkeypatch.setattr(delivery, "_store", die)
    with pytest.raises(Crash):
        delivery.send(row.id, clock.now())
    monkeypatch.undo()
    db.session.rollback()
    [taken] = fake_twilio.messages
    later = clock.now() + delivery.SENDING_TIMEOUT + timedelta(seconds=1)
    assert delivery.recover_interrupted(later) == [row.id]
    assert delivery.send(row.id, later) == NotificationStatus.SENT
    db.session.expire_all()
    row = db.session.get(type(row), row.id)
    assert row.provider_id == taken
    assert len(fake_twilio.sent("Messages")) == 1  # looked up, not sent again
    assert [r.method for r in fake_twilio.requests] == ["POST", "GET"]
