"""Pacing per phone: one message a minute, five alert SMS per quarter hour, bundles, never twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

from dispatch import clock, outbox
from dispatch.db import db
from dispatch.models import Case, Notification, NotificationStatus
from dispatch.outbox import delivery, pacing, replies
from tests.dispatch.channels.helpers import contact, open_case, row_for, send
from tests.factories import import_community, member, small_community
from tests.fakes.twilio_server import FakeTwilio


def reload(row: Notification) -> Notification:
    db.session.expire_all()
    return db.session.get(Notification, row.id)


def test_a_second_message_within_the_minute_waits_without_counting_as_an_attempt(
        twilio_any_app: Flask, fake_twilio: FakeTwilio) -> None:
    first = send(row_for(open_case("TS-B1-U1", "safety"), "L1"))
    second = send(row_for(open_case("TS-B1-U1", "help"), "L1"))
    assert second.status == NotificationStatus.PENDING and second.attempts == 0
    assert second.next_attempt_at == first.sent_at + timedelta(minutes=1)
    assert len(fake_twilio.sent("Messages")) == 1
    assert delivery.send(second.id, second.next_attempt_at) == NotificationStatus.SENT
    assert reload(second).attempts == 1 and len(fake_twilio.sent("Messages")) == 2


def test_alerts_waiting_for_one_phone_go_out_as_one_sms_listing_them(
        twilio_any_app: Flask, fake_twilio: FakeTwilio) -> None:
    safety, help_ = open_case("TS-B1-U1", "safety"), open_case("TS-B1-U1", "help")
    carrier = send(row_for(safety, "L1"))
    [request] = fake_twilio.sent("Messages")
    body = request.form["Body"]
    assert body.startswith("【邻里】您有 2 件待接单：")
    assert f"1 安全隐患 1栋 1单元（{safety.number}）" in body
    assert f"2 求助/独居老人 1栋 1单元（{help_.number}）" in body
    assert "回复编号接单，编号加D表示已解决（如 1 或 1D）" in body
    assert "/m/member/" in body
    rider = reload(row_for(help_, "L1"))
    assert rider.status == NotificationStatus.SENT and rider.provider_id == carrier.provider_id
    assert rider.bundled_into_id == carrier.id and rider.reply_code == "2"
    assert db.session.get(Case, help_.id).first_notified_at is not None
    fake_twilio.callback(carrier.provider_id, "delivered")
    assert reload(rider).status == NotificationStatus.DELIVERED
    assert db.session.get(Case, help_.id).first_delivered_at is not None


def test_at_most_five_alert_sms_per_quarter_hour_then_the_sixth_waits(
        twilio_any_app: Flask, fake_twilio: FakeTwilio) -> None:
    twilio_any_app.config["THROTTLE_GAP_SECONDS"] = 0
    case = open_case("TS-B1-U1", "safety")
    start = clock.now()
    rows = [row_for(case, "L1")]
    assert delivery.send(rows[0].id, start) == NotificationStatus.SENT
    for i in range(1, 6):
        rows.append(outbox.add(case, member("L1"), contact("L1"), outbox.Purpose.ALERT,
                               f"第{i}次", dedupe_key=f"test-{i}", now=start, rung=1))
        db.session.commit()
        if i < 5:
            sent = delivery.send(rows[i].id, start + timedelta(seconds=i))
            assert sent == NotificationStatus.SENT
    sixth = rows[5]
    assert delivery.send(sixth.id, start + timedelta(seconds=5)) == NotificationStatus.PENDING
    assert reload(sixth).next_attempt_at == start + timedelta(minutes=15)
    assert delivery.send(sixth.id, start + timedelta(minutes=15)) == NotificationStatus.SENT
    assert len(fake_twilio.sent("Messages")) == 6


def test_a_bundled_row_whose_carrier_got_a_sid_is_never_sent_on_its_own(
        twilio_any_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    safety, help_ = open_case("TS-B1-U1", "safety"), open_case("TS-B1-U1", "help")
    # The process dies after storing the carrier's SID, before settling the bundled row.
    monkeypatch.setattr(pacing, "after_send", lambda notification, status, now: None)
    carrier = send(row_for(safety, "L1"))
    rider = reload(row_for(help_, "L1"))
    assert rider.status == NotificationStatus.SENDING and rider.provider_id is None
    monkeypatch.undo()
    later = clock.now() + delivery.SENDING_TIMEOUT + timedelta(seconds=1)
    assert delivery.recover_interrupted(later) == [rider.id]
    assert delivery.send(rider.id, later) == NotificationStatus.SENT
    assert reload(rider).provider_id == carrier.provider_id
    assert len(fake_twilio.sent("Messages")) == 1


def test_a_carrier_that_failed_for_good_lets_its_bundled_rows_go_on_their_own(
        twilio_any_app: Flask, fake_twilio: FakeTwilio) -> None:
    safety, help_ = open_case("TS-B1-U1", "safety"), open_case("TS-B1-U1", "help")
    fake_twilio.fail_next(http_status=400, resource="Messages")
    carrier = send(row_for(safety, "L1"))
    rider = reload(row_for(help_, "L1"))
    assert carrier.status == NotificationStatus.FAILED
    assert rider.status == NotificationStatus.PENDING and rider.bundled_into_id is None


def test_after_an_uncertain_failure_the_retry_resends_the_same_bundle_once(
        twilio_any_app: Flask, fake_twilio: FakeTwilio) -> None:
    safety, help_ = open_case("TS-B1-U1", "safety"), open_case("TS-B1-U1", "help")
    fake_twilio.fail_next(http_status=503, resource="Messages")
    carrier = send(row_for(safety, "L1"))
    rider = reload(row_for(help_, "L1"))
    assert carrier.status == NotificationStatus.PENDING
    assert rider.bundled_into_id == carrier.id and rider.status == NotificationStatus.SENDING
    assert delivery.recover_interrupted(carrier.next_attempt_at + timedelta(minutes=5)) == []
    delivery.send(carrier.id, carrier.next_attempt_at + timedelta(seconds=1))
    carrier, rider = reload(carrier), reload(rider)
    first, retry = fake_twilio.sent("Messages")
    assert first.form["Body"] == retry.form["Body"] and "2 件待接单" in retry.form["Body"]
    assert carrier.provider_id is not None and rider.provider_id == carrier.provider_id


def test_a_bundle_twilio_took_before_a_timeout_is_found_not_sent_again(
        twilio_any_app: Flask, fake_twilio: FakeTwilio) -> None:
    safety, help_ = open_case("TS-B1-U1", "safety"), open_case("TS-B1-U1", "help")
    fake_twilio.fail_next(hang=2.0, create=True, resource="Messages")
    carrier = send(row_for(safety, "L1"))
    assert carrier.error_code == "timeout"
    later = carrier.next_attempt_at + timedelta(seconds=1)
    open_case("TS-B1-U1", "noise")  # another alert waiting for the same phone meanwhile
    delivery.send(carrier.id, later)
    carrier, rider = reload(carrier), reload(row_for(help_, "L1"))
    [taken] = fake_twilio.messages
    assert len(fake_twilio.sent("Messages")) == 1
    assert carrier.provider_id == rider.provider_id == taken


def test_a_row_in_flight_makes_a_later_one_for_the_same_phone_wait(
        twilio_any_app: Flask, fake_twilio: FakeTwilio) -> None:
    first = row_for(open_case("TS-B1-U1", "safety"), "L1")
    first.status = NotificationStatus.SENDING  # another worker is sending it right now
    db.session.commit()
    second = row_for(open_case("TS-B1-U1", "help"), "L1")
    now = clock.now()
    assert pacing.hold_until(second, now) == now + timedelta(minutes=1)
    assert pacing.hold_until(first, now) is None


def test_with_pacing_off_a_row_in_flight_does_not_hold_a_later_one(
        twilio_any_app: Flask, fake_twilio: FakeTwilio) -> None:
    twilio_any_app.config["THROTTLE_GAP_SECONDS"] = 0
    first = row_for(open_case("TS-B1-U1", "safety"), "L1")
    first.status = NotificationStatus.SENDING
    db.session.commit()
    second = row_for(open_case("TS-B1-U1", "help"), "L1")
    assert pacing.hold_until(second, clock.now()) is None


def test_a_row_awaiting_its_retry_is_not_swept_into_a_newer_bundle(
        twilio_any_app: Flask, fake_twilio: FakeTwilio) -> None:
    safety, help_ = open_case("TS-B1-U1", "safety"), open_case("TS-B1-U1", "help")
    fake_twilio.fail_next(http_status=503, resource="Messages")
    carrier = send(row_for(safety, "L1"))
    rider = reload(row_for(help_, "L1"))
    # A newer alert goes out (urgent, so L1's do-not-disturb hours do not hold it back).
    newer = send(row_for(open_case("TS-B1-U1-E1", "elevator"), "L1"))
    assert newer.provider_id is not None and not pacing.bundled(newer)
    assert reload(carrier).bundled_into_id is None
    later = max(carrier.next_attempt_at, newer.sent_at + timedelta(minutes=1))  # phone's gap
    delivery.send(carrier.id, later + timedelta(seconds=1))
    carrier, rider = reload(carrier), reload(rider)
    assert carrier.provider_id is not None and rider.provider_id == carrier.provider_id
    first, _, retry = fake_twilio.sent("Messages")
    assert first.form["Body"] == retry.form["Body"]


@pytest.mark.postgres
def test_a_send_reads_its_phones_rows_through_an_index_not_the_whole_outbox(
        pg_app: Flask) -> None:
    """Pacing, bundling and reply codes look up the phone's messages, and their cases, on every
    send; a district's outbox and cases hold everything ever sent and reported, so a scan of
    either per send grows without end."""
    with pg_app.app_context():
        import_community(small_community())
        now = {"now": clock.now()}
        db.session.execute(sa.text(
            "INSERT INTO \"case\" (community_id, place_id, category, urgency, status,"
            " public_token, report_count, policy, rung, step, token, reported_at, reopen_count)"
            " SELECT p.community_id, p.id, 'repair', 'normal', 'closed', 'closed-' || i, 1,"
            " '{}', 1, 0, 0, :now - i * interval '1 minute', 0"
            " FROM generate_series(1, 20000) AS i, (SELECT * FROM place LIMIT 1) AS p"), now)
        db.session.execute(sa.text(
            "INSERT INTO notification (case_id, channel, to_address, purpose, body, status,"
            " dedupe_key, attempts, created_at, sent_at, provider_id, reply_code)"
            " SELECT c.id, 'sms', '+86138' || lpad((c.id % 5000)::text, 8, '0'), 'alert',"
            " 'text', 'sent', 'old-' || c.id || '-' || k, 1, :now, c.reported_at,"
            " 'SM' || c.id || '-' || k, '1'"
            " FROM \"case\" c, generate_series(1, 3) AS k"), now)
        db.session.execute(sa.text('ANALYZE notification, "case"'))
        phone = {"phone": "+8613800000042", "row": 1, "carrier": 1, "skip": 4,
                 "since": now["now"] - timedelta(minutes=15)}
        for statement in (pacing._pacing(True), pacing._waiting(), replies._held()):
            plan = "\n".join(db.session.scalars(Explain(statement), phone))
            assert "Seq Scan" not in plan, plan


class Explain(Executable, ClauseElement):
    """EXPLAIN a statement, with its parameters bound as they are when it runs."""

    inherit_cache = False

    def __init__(self, statement: Executable) -> None:
        self.statement = statement


@compiles(Explain)
def _explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN " + compiler.process(element.statement, **kw)
