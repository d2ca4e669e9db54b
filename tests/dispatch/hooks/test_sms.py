"""Delivery receipts: signed, idempotent, monotonic; badly signed ones change nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from twilio.request_validator import RequestValidator

from dispatch import jobs
from dispatch.case.timeline import EventKind
from dispatch.db import db
from dispatch.jobs import sweeper
from dispatch.models import Case, ContactStatus, EarlyReceipt, Notification, NotificationStatus
from dispatch.outbox import delivery
from tests.dispatch.channels.helpers import events, open_case, row_for, send
from tests.fakes.fixtures import signed_post
from tests.fakes.twilio_server import FakeTwilio

STATUS = "/webhooks/twilio/sms/status"


def receipt(row: Notification, status: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": row.provider_id or "", "MessageStatus": status,
            "AccountSid": "AC1", "To": row.to_address, **extra}


def reload(row: Notification) -> Notification:
    db.session.expire_all()
    return db.session.get(Notification, row.id)


def test_a_delivery_receipt_moves_the_row_and_the_case_milestone_once(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    case = open_case()
    row = send(row_for(case, "E1"))
    assert fake_twilio.callback(row.provider_id, "sent") == 204
    assert reload(row).status == NotificationStatus.SENT
    assert fake_twilio.callback(row.provider_id, "delivered") == 204
    row = reload(row)
    assert row.status == NotificationStatus.DELIVERED and row.delivered_at is not None
    first = db.session.get(Case, case.id).first_delivered_at
    assert first is not None
    # Twice, and a late "sent": nothing moves back, nothing is recorded twice.
    assert fake_twilio.callback(row.provider_id, "delivered") == 204
    assert fake_twilio.callback(row.provider_id, "sent") == 204
    row = reload(row)
    assert row.status == NotificationStatus.DELIVERED
    assert db.session.get(Case, case.id).first_delivered_at == first
    assert len(events(case, EventKind.DELIVERED)) == 1


def test_a_late_delivered_after_undelivered_changes_nothing(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    row = send(row_for(open_case(), "E1"))
    fake_twilio.callback(row.provider_id, "undelivered", error_code=30003)
    fake_twilio.callback(row.provider_id, "delivered")
    row = reload(row)
    assert row.status == NotificationStatus.UNDELIVERED and row.error_code == "30003"


@pytest.mark.parametrize("headers", [
    {},  # unsigned
    {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},  # garbage
])
def test_an_unsigned_or_garbled_receipt_is_refused_and_changes_nothing(
        twilio_app: Flask, fake_twilio: FakeTwilio, headers: dict[str, str]) -> None:
    row = send(row_for(open_case(), "E1"))
    answer = twilio_app.test_client().post(STATUS, data=receipt(row, "delivered"),
                                           headers=headers)
    assert answer.status_code == 403
    assert reload(row).status == NotificationStatus.SENT


def test_a_receipt_signed_with_another_token_for_another_url_or_tampered_is_refused(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    row = send(row_for(open_case(), "E1"))
    client = twilio_app.test_client()
    assert signed_post(client, twilio_app, STATUS, receipt(row, "delivered"),
                       token="someone-elses-token").status_code == 403
    good = RequestValidator(twilio_app.config["TWILIO_AUTH_TOKEN"]).compute_signature(
        "http://linli.test" + STATUS, receipt(row, "sent"))
    for path, form in ((STATUS + "?again=1", receipt(row, "sent")),  # another URL
                       (STATUS, receipt(row, "delivered"))):  # the form was changed
        assert client.post(path, data=form, headers={"X-Twilio-Signature": good}
                           ).status_code == 403
    assert reload(row).status == NotificationStatus.SENT


def test_the_signature_is_checked_against_the_public_url_behind_a_proxy(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    twilio_app.config["PUBLIC_BASE_URL"] = "https://linli.example.cn"
    row = send(row_for(open_case(), "E1"))
    # Twilio signs the https URL it was given; the app sees plain http from the proxy.
    answer = signed_post(twilio_app.test_client(), twilio_app, STATUS, receipt(row, "delivered"))
    assert answer.status_code == 204
    assert reload(row).status == NotificationStatus.DELIVERED


def test_an_undelivered_invalid_number_receipt_breaks_the_contact_on_postgresql(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    """A 21211 that arrives as a receipt marks the number broken and tells staff on the
    production database (it once answered 500 there and left the contact `ok`)."""
    assert db.engine.dialect.name == "postgresql"
    case = open_case()
    row = send(row_for(case, "E1"))
    assert fake_twilio.callback(row.provider_id, "undelivered", error_code=21211) == 204
    row = reload(row)
    assert row.status == NotificationStatus.UNDELIVERED and row.error_code == "21211"
    assert row.contact.status == ContactStatus.BROKEN
    assert any("号码无效（21211）" in m for m in events(case, EventKind.CONTACT_PROBLEM))


def _sent_but_not_told(fake_twilio: FakeTwilio) -> tuple[Case, Notification, str]:
    """An alert Twilio took while its answer never came (a hang past the timeout), and the
    message's "delivered" receipt, which arrives before the row knows its SID."""
    fake_twilio.fail_next(hang=2.0, create=True, resource="Messages")
    case = open_case()
    row = send(row_for(case, "E1"))
    assert row.status == NotificationStatus.PENDING and row.provider_id is None
    [taken] = fake_twilio.messages
    assert fake_twilio.callback(taken, "delivered") == 204
    assert reload(row).status == NotificationStatus.PENDING  # nothing to move yet
    return case, row, taken


def test_a_receipt_that_comes_before_the_sid_is_adopted_is_applied_when_it_is(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    case, row, taken = _sent_but_not_told(fake_twilio)
    delivery.send(row.id, row.next_attempt_at)  # the retry looks it up and adopts the SID
    jobs.runner(twilio_app).drain()
    row = reload(row)
    assert row.provider_id == taken and row.status == NotificationStatus.DELIVERED
    assert db.session.get(Case, case.id).first_delivered_at is not None
    assert [r.form["To"] for r in fake_twilio.sent()].count(row.to_address) == 1
    assert db.session.scalar(sa.select(sa.func.count(EarlyReceipt.id))) == 0


def test_a_kept_receipt_whose_job_was_lost_is_applied_by_the_sweep(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    _, row, taken = _sent_but_not_told(fake_twilio)
    delivery.send(row.id, row.next_attempt_at)
    jobs.runner(twilio_app).drain(until=0)  # nothing runs: the queued job is lost
    assert reload(row).status == NotificationStatus.SENT
    sweeper.sweep()
    row = reload(row)
    assert row.provider_id == taken and row.status == NotificationStatus.DELIVERED
    assert db.session.scalar(sa.select(sa.func.count(EarlyReceipt.id))) == 0
