"""SMS reply codes: given per phone, read from inbound SMS, acted on through the engine."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask

from dispatch import clock, outbox
from dispatch.db import db
from dispatch.models import Case, CaseStatus, ContactStatus
from dispatch.outbox import delivery
from dispatch.outbox.replies import Action, Reply, parse
from tests.dispatch.channels.helpers import contact, open_case, row_for, send
from tests.factories import member
from tests.fakes.fixtures import TWILIO_FROM, signed_post
from tests.fakes.twilio_server import FakeTwilio

INBOUND = "/webhooks/twilio/sms/inbound"
L1_PHONE = "+8613800138001"


@pytest.mark.parametrize(("text", "expected"), [
    ("1", Reply(Action.ACCEPT, "1")),
    (" 12 ", Reply(Action.ACCEPT, "12")),
    ("1D", Reply(Action.RESOLVE, "1")),
    ("1 d", Reply(Action.RESOLVE, "1")),
    ("１Ｄ", Reply(Action.RESOLVE, "1")),  # full-width, as Chinese keyboards type it
    ("2接单", Reply(Action.ACCEPT, "2")),
    ("3 已解决", Reply(Action.RESOLVE, "3")),
    ("接单", Reply(Action.ACCEPT)),
    ("好的。", Reply(Action.ACCEPT)),
    ("已解决", Reply(Action.RESOLVE)),
    ("stop", Reply(Action.STOP)),
    ("退订", Reply(Action.STOP)),
    ("START", Reply(Action.START)),
    ("help", Reply(Action.HELP)),
    ("明天再说吧", Reply(Action.UNKNOWN)),
])
def test_replies_are_read_forgivingly(text: str, expected: Reply) -> None:
    assert parse(text) == expected


@pytest.fixture
def quick(twilio_any_app: Flask) -> Flask:
    """The Twilio app (SQLite and PostgreSQL) without the one-SMS-a-minute gap, so several
    cases reach L1 at once."""
    twilio_any_app.config["THROTTLE_GAP_SECONDS"] = 0
    return twilio_any_app


def reply(app: Flask, body: str, phone: str = L1_PHONE) -> str:
    """Text the service as `phone`; returns the SMS it answers with."""
    answer = signed_post(app.test_client(), app, INBOUND,
                         {"From": phone, "To": TWILIO_FROM, "Body": body, "MessageSid": "SMin"})
    assert answer.status_code == 200 and answer.mimetype == "text/xml"
    found = re.search(r"<Message>(.*)</Message>", answer.get_data(as_text=True), re.S)
    assert found is not None
    db.session.expire_all()
    return html.unescape(found[1])


def sent_to_l1(category: str) -> Case:
    case = open_case("TS-B1-U1", category)
    send(row_for(case, "L1"))
    return case


def test_codes_are_the_smallest_free_per_phone_and_reused_only_after_the_case_closes(
        quick: Flask, fake_twilio: FakeTwilio) -> None:
    first, second = sent_to_l1("safety"), sent_to_l1("help")
    assert row_for(first, "L1").reply_code == "1" and row_for(second, "L1").reply_code == "2"
    # The same case keeps its number on this phone (a second message about it says "1" too).
    again = outbox.add(first, member("L1"), contact("L1"), outbox.Purpose.ALERT, "再次通知",
                       dedupe_key="test-again", now=clock.now(), rung=1)
    db.session.commit()
    assert send(again).reply_code == "1"
    db.session.get(Case, first.id).status = CaseStatus.RESOLVED
    db.session.commit()
    assert row_for(sent_to_l1("elevator"), "L1").reply_code == "3"  # resolved still holds 1
    closed = db.session.get(Case, first.id)
    closed.status, closed.open_key = CaseStatus.CLOSED, None  # as closing does
    db.session.commit()
    # A new case (urgent, so it reaches L1 at any hour, do-not-disturb or not) takes "1" again.
    assert row_for(sent_to_l1("safety"), "L1").reply_code == "1"


def test_replying_the_code_accepts_and_code_d_resolves(twilio_app: Flask,
                                                      fake_twilio: FakeTwilio) -> None:
    case = sent_to_l1("safety")
    assert "您已接单" in reply(twilio_app, "1")
    case = db.session.get(Case, case.id)
    assert case.status == CaseStatus.ACCEPTED and case.accepted_by.code == "L1"
    assert "已记录解决" in reply(twilio_app, "1D")
    assert db.session.get(Case, case.id).status == CaseStatus.RESOLVED


def test_a_reply_without_a_code_acts_only_when_one_case_is_open(
        quick: Flask, fake_twilio: FakeTwilio) -> None:
    twilio_app = quick
    first = sent_to_l1("safety")
    assert "您已接单" in reply(twilio_app, "接单")
    assert db.session.get(Case, first.id).accepted_by.code == "L1"
    sent_to_l1("help")
    answer = reply(twilio_app, "好的")
    assert "请回复编号" in answer and "1：安全隐患" in answer and "2：求助/独居老人" in answer


def test_a_code_that_is_not_open_or_gibberish_gets_the_choices(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    sent_to_l1("safety")
    assert "没有编号为 7 的待办事项" in reply(twilio_app, "7")
    assert "没看懂" in reply(twilio_app, "明天再说") and "1：安全隐患" in reply(twilio_app, "？？")


def test_someone_else_taking_it_first_is_said_plainly(twilio_app: Flask,
                                                     fake_twilio: FakeTwilio) -> None:
    case = open_case()  # elevator: E1 and L1 are both paged
    send(row_for(case, "E1"))
    delivery.send(row_for(case, "L1").id)
    assert "您已接单" in reply(twilio_app, "1", phone="+8613800138005")
    assert "已由陈磊接单" in reply(twilio_app, "1")


def test_an_unknown_number_gets_a_short_helpful_answer(twilio_app: Flask,
                                                       fake_twilio: FakeTwilio) -> None:
    assert "未登记" in reply(twilio_app, "1", phone="+8613999999999")


def test_stop_help_and_start_are_respected(twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    case = sent_to_l1("safety")
    assert "已退订" in reply(twilio_app, "STOP")
    assert contact("L1").status == ContactStatus.STOPPED
    assert any("退订" in e.message for e in db.session.get(Case, case.id).events)
    assert "回复“编号”接单" in reply(twilio_app, "HELP")
    assert "已恢复" in reply(twilio_app, "START")
    assert contact("L1").status == ContactStatus.OK


def test_an_unsigned_reply_is_refused_and_accepts_nothing(twilio_app: Flask,
                                                          fake_twilio: FakeTwilio) -> None:
    case = sent_to_l1("safety")
    answer = twilio_app.test_client().post(INBOUND, data={"From": L1_PHONE, "Body": "1"})
    assert answer.status_code == 403
    assert db.session.get(Case, case.id).status == CaseStatus.OPEN


def test_stop_reply_marks_contact_opted_out_on_postgresql(twilio_app: Flask,
                                                          fake_twilio: FakeTwilio) -> None:
    """Production's database: telling staff once crashed there (DISTINCT over JSON columns),
    the reply answered 500 and the member kept getting texts."""
    assert db.engine.dialect.name == "postgresql"
    case = sent_to_l1("safety")
    assert "已退订" in reply(twilio_app, "STOP")
    assert contact("L1").status == ContactStatus.STOPPED
    assert any("退订" in e.message for e in db.session.get(Case, case.id).events)


def test_a_signed_reply_with_a_control_character_is_accepted_and_read_clean(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    # Twilio signs the values it sends; a phone may put a vertical tab in a real SMS. The
    # signature is checked against what was sent, the reply is read without the character.
    case = sent_to_l1("safety")
    assert "您已接单" in reply(twilio_app, "1\x0b")
    assert db.session.get(Case, case.id).status == CaseStatus.ACCEPTED
