"""Voice: the TwiML of a resident's call from greeting to a whispered, confirmed answer, and
the alert calls to members."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import sqlalchemy as sa
from flask import Flask

from dispatch import clock
from dispatch.case.timeline import EventKind
from dispatch.db import db
from dispatch.models import (
    BlockedPhone,
    Case,
    CaseStatus,
    Channel,
    Notification,
    NotificationStatus,
    Report,
    ReportKind,
)
from qr import codes
from tests.dispatch.channels.helpers import events, open_case, row_for, send
from tests.factories import member, place
from tests.fakes.fixtures import signed_post
from tests.fakes.twilio_server import FakeTwilio

CALLER = "+8613712345678"
BASE = "http://linli.test"


def post(app: Flask, url: str, **form: str) -> ET.Element:
    """Twilio requesting `url` (absolute, as the TwiML gave it): the TwiML answered, parsed."""
    path = url.removeprefix(BASE)
    answer = signed_post(app.test_client(), app, path,
                         {"CallSid": "CA" + "7" * 32, "From": CALLER, **form})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    db.session.expire_all()
    return ET.fromstring(answer.get_data())


def spoken(twiml: ET.Element) -> str:
    return " ".join(say.text or "" for say in twiml.iter("Say"))


def sticker_digits(code: str = "TS-B1-U1-E1") -> str:
    sticker = codes.issue(place(code))
    db.session.commit()
    return codes.dial_digits(sticker.code)


def the_call() -> Report:
    return db.session.scalars(sa.select(Report).where(Report.kind == ReportKind.CALL)).one()


def test_a_call_greets_gathers_digits_and_rings_responders_until_one_presses_1(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    digits = sticker_digits()
    greeting = post(twilio_app, f"{BASE}/webhooks/twilio/voice/incoming")
    gather = greeting.find("Gather")
    assert gather.get("numDigits") == "19" and gather.get("finishOnKey") == "#"
    assert gather.find("Say").get("language") == "cmn-CN" and "邻里" in spoken(greeting)

    # The tel: link sent the sticker's digits: the call is a report; the building's leader
    # is rung first (the nearest responsibility), then the elevator maintainer.
    first = post(twilio_app, gather.get("action"), Digits=digits + "#")
    call = the_call()
    assert call.callback_phone == CALLER and call.case.place.code == "TS-B1-U1-E1"
    assert [s["name"] for s in call.call_outcome["plan"]][:3] == ["李建国", "陈磊", "张伟"]
    dial = first.find("Dial")
    assert dial.get("timeout") == "20" and dial.get("callerId") == "+15005550007"
    assert dial.find("Number").text == "+8613800138001"

    # No answer: E1 is rung next.
    second = post(twilio_app, dial.get("action"), DialCallStatus="no-answer")
    number = second.find("Dial/Number")
    assert number.text == "+8613800138005"

    # E1 picks up and hears the whisper; pressing 1 puts the caller through and accepts.
    whisper = post(twilio_app, number.get("url"))
    assert "按 1 接听" in spoken(whisper) and whisper.find("Gather").get("numDigits") == "1"
    assert whisper[-1].tag == "Hangup"  # silence (a voicemail) never connects
    connect = post(twilio_app, whisper.find("Gather").get("action"), Digits="1")
    assert list(connect) == []  # an empty document: bridged
    case = db.session.get(Case, call.case_id)
    assert case.status == CaseStatus.ACCEPTED and case.accepted_by.code == "E1"

    done = post(twilio_app, second.find("Dial").get("action"), DialCallStatus="completed",
                DialCallDuration="95")
    assert done[-1].tag == "Hangup"
    outcome = the_call().call_outcome
    assert outcome["outcome"] == "answered" and outcome["answered_name"] == "陈磊"
    assert outcome["tried"] == {"0": "no-answer"} and outcome["talk_seconds"] == 95
    assert outcome["after_seconds"] >= 0
    assert any("陈磊接听" in m and "李建国无人接听" in m for m in events(case, EventKind.CALLED))


def test_a_voicemail_that_picks_up_does_not_count_and_the_next_person_is_rung(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    first = post(twilio_app, f"{BASE}/webhooks/twilio/voice/place?attempt=1",
                 Digits=sticker_digits())
    dial = first.find("Dial")
    whisper = post(twilio_app, dial.find("Number").get("url"))
    assert post(twilio_app, whisper.find("Gather").get("action"), Digits="")[0].tag == "Hangup"
    # The voicemail "answered", so Twilio reports the leg completed: still not taken.
    nxt = post(twilio_app, dial.get("action"), DialCallStatus="completed")
    assert nxt.find("Dial/Number").text == "+8613800138005"
    assert the_call().call_outcome["tried"] == {"0": "no-press"}
    assert the_call().case.status == CaseStatus.OPEN


def test_when_nobody_answers_the_caller_is_told_and_the_call_is_recorded(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    twiml = post(twilio_app, f"{BASE}/webhooks/twilio/voice/place?attempt=1",
                 Digits=sticker_digits())
    while twiml.find("Dial") is not None:
        twiml = post(twilio_app, twiml.find("Dial").get("action"), DialCallStatus="busy")
    assert "暂时无人接听" in spoken(twiml) and twiml[-1].tag == "Hangup"
    outcome = the_call().call_outcome
    assert outcome["outcome"] == "unanswered"
    assert set(outcome["tried"].values()) == {"busy"}
    assert len(outcome["tried"]) == len(outcome["plan"]) >= 4  # building, grid, community


def test_wrong_or_missing_digits_are_asked_again_then_the_hotline_is_named(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    retry = post(twilio_app, f"{BASE}/webhooks/twilio/voice/place?attempt=1",
                 Digits="1234567890123456789")
    assert "号码无效" in spoken(retry)
    again = post(twilio_app, retry.find("Redirect").text)
    assert again.find("Gather") is not None and "您好" not in spoken(again)
    last = post(twilio_app, f"{BASE}/webhooks/twilio/voice/place?attempt=2", Digits="")
    assert "0752-1234567" in spoken(last) and last[-1].tag == "Hangup"
    assert db.session.scalar(sa.select(sa.func.count(Report.id))) == 0


def test_a_blocked_caller_is_not_put_through(twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    db.session.add(BlockedPhone(phone=CALLER, reason="骚扰", created_at=clock.now()))
    db.session.commit()
    twiml = post(twilio_app, f"{BASE}/webhooks/twilio/voice/incoming")
    assert twiml.find("Gather") is None and twiml[-1].tag == "Hangup"


def test_an_unsigned_call_webhook_is_refused(twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    answer = twilio_app.test_client().post("/webhooks/twilio/voice/place?attempt=1",
                                           data={"Digits": sticker_digits(), "From": CALLER})
    assert answer.status_code == 403
    assert db.session.scalar(sa.select(sa.func.count(Report.id))) == 0


def alert_call(fake: FakeTwilio) -> tuple[Case, Notification]:
    """An alert to B1 by phone: B1 (the building's backup) prefers calls here."""
    member("B1").channel_order = ["voice", "sms"]
    db.session.commit()
    case = open_case("TS-B1-U1", "noise")
    row = send(row_for(case, "B1"))
    assert row.channel == Channel.VOICE and row.provider_id in fake.calls
    return case, row


def call_form(row: Notification, **extra: Any) -> dict[str, str]:
    return {"CallSid": row.provider_id or "", **extra}


def test_an_alert_call_reads_the_case_in_mandarin_and_1_accepts(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    case, row = alert_call(fake_twilio)
    twiml = post(twilio_app, f"{BASE}/webhooks/twilio/voice/alert?n={row.id}")
    assert "噪音扰民 1栋 1单元" in spoken(twiml) and "接单请按 1，无法前往请按 2" in spoken(twiml)
    answered = post(twilio_app, twiml.find("Gather").get("action"), Digits="1")
    assert "已为您接单" in spoken(answered)
    assert db.session.get(Case, case.id).accepted_by.code == "B1"
    assert fake_twilio.callback(row.provider_id, "completed") == 204
    assert db.session.get(Notification, row.id).status == NotificationStatus.DELIVERED


def test_an_alert_call_passed_with_2_is_noted_and_not_accepted(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    case, row = alert_call(fake_twilio)
    twiml = post(twilio_app, f"{BASE}/webhooks/twilio/voice/alert?n={row.id}")
    post(twilio_app, twiml.find("Gather").get("action"), Digits="2")
    assert db.session.get(Case, case.id).status == CaseStatus.OPEN
    assert any("无法前往" in m for m in events(case, EventKind.NOTE))


def test_an_alert_call_nobody_pressed_a_key_on_is_retried_by_sms(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    case, row = alert_call(fake_twilio)
    assert fake_twilio.callback(row.provider_id, "completed") == 204  # a voicemail took it
    db.session.expire_all()
    assert db.session.get(Notification, row.id).status == NotificationStatus.UNDELIVERED
    assert row_for(case, "B1", channel=Channel.SMS).status == NotificationStatus.PENDING


def test_the_digits_in_the_stickers_call_link_are_read_by_the_voice_flow(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    sticker = codes.issue(place("TS-B1-U1"))
    db.session.commit()
    tel = twilio_app.test_client().get(f"/s/{sticker.code}/call").headers["Location"]
    assert tel.startswith("tel:+15005550007,,")
    digits = tel.split(",,", 1)[1].replace("%23", "#")
    post(twilio_app, f"{BASE}/webhooks/twilio/voice/place?attempt=1", Digits=digits)
    assert the_call().case.place.code == "TS-B1-U1" and the_call().category == "other"
