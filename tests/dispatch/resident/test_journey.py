"""The resident keeps the case: an own link for every reporter, an SMS receipt and a 回访 SMS,
a look-up by number and phone, and "您在这里的反映" on the sticker page."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import clock, jobs, security
from dispatch.case import lifecycle
from dispatch.db import db
from dispatch.models import (
    Case,
    CaseStatus,
    Member,
    Notification,
    NotificationStatus,
    Place,
    Sticker,
)
from dispatch.outbox import Purpose, delivery
from qr import codes
from tests.dispatch.resident.helpers import Resident, accept, case_of, receipt_token
from tests.fakes.twilio_server import FakeTwilio

PHONE = "13800138000"
E164 = "+8613800138000"


def _texts(purpose: str) -> list[Notification]:
    return list(db.session.scalars(sa.select(Notification).where(Notification.purpose == purpose)
                                   .order_by(Notification.id)))


def _resolve(case_id: int, note: str = "") -> Case:
    case = db.session.get(Case, case_id)
    member = db.session.scalar(sa.select(Member).where(Member.code == "L1"))
    return lifecycle.resolve(case.id, member.id, note)


# --- 我也遇到了: the neighbour's own link ----------------------------------------------------

def test_me_too_gives_the_neighbour_their_own_link_not_the_first_residents(
        app: Flask, resident: Resident) -> None:
    first = receipt_token(resident.message(text="电梯停在5楼", phone=PHONE))
    with app.app_context():
        case_id = case_of(first).id
    neighbour = Resident(app.test_client(), resident.stickers)
    response = neighbour.me_too(case_id)
    own = receipt_token(response)
    assert own != first
    receipt = neighbour.client.get(response.headers["Location"]).get_data(as_text=True)
    assert first not in receipt and f"/c/{own}" in receipt
    status = neighbour.client.get(f"/c/{own}").get_data(as_text=True)
    assert first not in status and "处理进度" in status
    with app.app_context():
        assert case_of(own).id == case_id


def test_the_neighbour_answers_the_callback_on_their_own_link(app: Flask,
                                                              resident: Resident) -> None:
    first = receipt_token(resident.message())
    with app.app_context():
        case_id = case_of(first).id
    neighbour = Resident(app.test_client(), resident.stickers)
    own = receipt_token(neighbour.me_too(case_id))
    with app.app_context():
        _resolve(case_id, "已更换门机板")
    page = neighbour.client.get(f"/c/{own}").get_data(as_text=True)
    assert f'action="/c/{own}/callback' in page and first not in page
    assert neighbour.callback(own, solved="yes", satisfaction="5").status_code == 303
    with app.app_context():
        assert db.session.get(Case, case_id).status == CaseStatus.CLOSED


def test_counts_say_reports_the_same_way_everywhere(app: Flask, resident: Resident) -> None:
    first = receipt_token(resident.message())
    with app.app_context():
        case_id = case_of(first).id
    resident.me_too(case_id)
    html = resident.scan().get_data(as_text=True)
    assert "共 2 人次反映" in html and "位邻居" not in html


# --- the SMS receipt and the 回访 SMS -----------------------------------------------------

def test_a_callback_phone_gets_one_sms_with_the_number_and_the_own_link(
        app: Flask, resident: Resident, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = receipt_token(resident.message(text="门关不上", phone="138 0013 8000"))
    receipt = resident.client.get(f"/c/{token}/receipt").get_data(as_text=True)
    assert "发到您留下的手机上" in receipt
    with app.app_context():
        case = case_of(token)
        [sms] = _texts(Purpose.RECEIPT)
        assert (sms.to_address, sms.member_id, sms.contact_id, sms.case_id) == (
            E164, None, None, case.id)
        assert case.number in sms.body and f"http://linli.test/c/{token}" in sms.body
        assert delivery.send(sms.id) == NotificationStatus.SENT
    assert PHONE not in caplog.text and "8000 13" not in caplog.text


def test_a_number_typed_into_the_message_is_masked_in_the_log_of_what_was_sent(
        app: Flask, resident: Resident, caplog: pytest.LogCaptureFixture) -> None:
    """The members' alerts quote the resident's words; the console channel logs what it
    sends, and nothing a resident types may put a phone number in a log."""
    caplog.set_level(logging.INFO)
    resident.message(text="楼道灯不亮，联系我13800138000，或１３９ ００１３ ９０００")
    with app.app_context():
        jobs.runner(app).drain()  # the step: the members' alerts, quoting the words
        assert [delivery.send(alert.id) for alert in _texts(Purpose.ALERT)] == [
            NotificationStatus.SENT, NotificationStatus.SENT]
    sent = [line for line in caplog.messages if "楼道灯不亮" in line]
    assert sent and all("联系我[电话]，或[电话]" in line for line in sent)
    assert PHONE not in caplog.text and "9000" not in caplog.text


def test_an_error_quoting_a_phone_is_logged_without_it(
        app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """A failed statement's text carries its parameters: the traceback is masked too, and
    what is not a phone number (times, ids) is left as it was."""
    log = logging.getLogger("dispatch.test")
    try:
        raise ValueError("INSERT … (to_address)=(+8613800138000) "
                         "at 2026-12-07T01:28:37, id 12345678")
    except ValueError:
        log.exception("job send(%s) failed for %s", 12345678, "138 0013 8000")
    assert "138 0013 8000" not in caplog.text and "+8613800138000" not in caplog.text
    assert "job send(12345678) failed for [电话]" in caplog.text
    assert "(to_address)=[电话]) at 2026-12-07T01:28:37, id 12345678" in caplog.text
    wrong = logging.getLogRecordFactory()("dispatch.test", logging.WARNING, __file__, 1,
                                          "a call with %s and %s", ("one argument",), None)
    assert wrong.msg == "a call with %s and %s"  # left for logging to report, not raised here


def test_a_workers_own_log_lines_are_left_alone_without_asking_the_phone_matcher(
        app: Flask, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """RQ names the worker in every line it logs, by a hex id that mostly holds a run of seven
    digits: four lines a job, on the workers' busiest path. Such a line is not a phone
    number's, and costs a regular expression, not libphonenumber; a number beside it is still
    masked."""
    asked: list[str] = []
    matcher = security.without_phones
    monkeypatch.setattr(security, "without_phones",
                        lambda text, **kw: asked.append(text) or matcher(text, **kw))
    log = logging.getLogger("rq.worker")
    worker = "28333428111e40cbafa461653f00bc75"
    log.warning("Worker %s: linli: dispatch.jobs.run('send', 4211) (send-4211-0)", worker)
    assert asked == [] and worker in caplog.text
    log.warning("Worker %s: job for 138 0013 8000", worker)
    assert len(asked) == 1 and f"Worker {worker}: job for [电话]" in caplog.text


def test_no_phone_no_me_too_no_sms(app: Flask, resident: Resident) -> None:
    token = receipt_token(resident.message())
    with app.app_context():
        case_id = case_of(token).id
    resident.me_too(case_id)
    with app.app_context():
        assert _texts(Purpose.RECEIPT) == []


def test_a_resolved_case_asks_each_resident_who_left_a_number_for_the_callback(
        app: Flask, resident: Resident) -> None:
    first = receipt_token(resident.message(phone=PHONE))
    other = Resident(app.test_client(), resident.stickers)
    second = receipt_token(other.message(phone="13900139000"))
    again = Resident(app.test_client(), resident.stickers)
    receipt_token(again.message(phone=PHONE))  # the same phone twice: asked once
    with app.app_context():
        case_id = case_of(first).id
        _resolve(case_id)
        asks = _texts(Purpose.CALLBACK)
        assert sorted(a.to_address for a in asks) == ["+8613800138000", "+8613900139000"]
        bodies = {a.to_address: a.body for a in asks}
        assert f"/c/{first}" in bodies[E164] and f"/c/{second}" in bodies["+8613900139000"]
        assert all("问题解决了吗" in b for b in bodies.values())
    # Answered before it went out: the request is no longer wanted.
    resident.callback(first, solved="yes")
    with app.app_context():
        assert delivery.send(asks[0].id) == NotificationStatus.CANCELLED


def test_resident_sms_are_paced_per_phone_like_any_other(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    place = db.session.scalar(sa.select(Place).where(Place.code == "TS-B1-U1-E1"))
    codes.ensure_stickers([place])
    db.session.commit()
    code = db.session.scalar(sa.select(Sticker.code).where(Sticker.place_id == place.id))
    resident = Resident(twilio_app.test_client(), {"TS-B1-U1-E1": code})
    token = receipt_token(resident.message(phone=PHONE))
    case_id = case_of(token).id
    _resolve(case_id)
    receipt, ask = _texts(Purpose.RECEIPT)[0], _texts(Purpose.CALLBACK)[0]
    now = clock.now()
    assert delivery.send(receipt.id, now) == NotificationStatus.SENT
    assert delivery.send(ask.id, now) == NotificationStatus.PENDING  # a minute apart
    assert len([m for m in fake_twilio.sent("Messages") if m.form["To"] == E164]) == 1


# --- finding the case again ------------------------------------------------------------

def test_look_up_by_number_and_phone_opens_the_residents_own_link(app: Flask,
                                                                  resident: Resident) -> None:
    token = receipt_token(resident.message(phone=PHONE))
    with app.app_context():
        number = case_of(token).number
    stranger = Resident(app.test_client(), resident.stickers)
    found = _find(stranger, number, "138-0013-8000")
    assert found.status_code == 303 and found.headers["Location"].endswith(f"/c/{token}")


def test_look_up_answers_a_wrong_number_and_a_wrong_phone_alike(app: Flask,
                                                                resident: Resident) -> None:
    token = receipt_token(resident.message(phone=PHONE))
    with app.app_context():
        case = case_of(token)
        number, wrong = case.number, f"{case.community.code}-{case.id + 1:06d}"
    stranger = Resident(app.test_client(), resident.stickers)
    answers = [_find(stranger, wrong, PHONE), _find(stranger, number, "13900139000"),
               _find(stranger, "", "")]
    assert {a.status_code for a in answers} == {404}
    problems = {re.search(r'class="problem bad" role="alert">([^<]+)<', a.get_data(as_text=True))
                .group(1) for a in answers}
    assert len(problems) == 1 and token not in "".join(a.get_data(as_text=True) for a in answers)


def test_look_ups_are_rate_limited(app: Flask, resident: Resident) -> None:
    app.config["RESIDENT_LIMIT_LOOKUPS_IP"] = "2 per hour"
    answers = [_find(resident, "TS-000099", PHONE).status_code for _ in range(3)]
    assert answers == [404, 404, 429]


def _find(resident: Resident, number: str, phone: str) -> Any:
    return resident.client.post(f"/s/{resident.stickers['TS-B1-U1-E1']}/find",
                                data={"csrf_token": resident.token(), "number": number,
                                      "phone": phone})


def test_the_sticker_page_lists_this_browsers_open_cases_here(app: Flask,
                                                              resident: Resident) -> None:
    token = receipt_token(resident.message())
    html = resident.scan().get_data(as_text=True)
    assert "您在这里的反映" in html and f'href="/c/{token}"' in html
    # Another browser (even behind the same address) does not see it.
    other = Resident(app.test_client(), resident.stickers).scan().get_data(as_text=True)
    assert "您在这里的反映" not in other and token not in other
    # Nor does another place's sticker, nor this one once the case is closed.
    assert token not in resident.scan("TS-B1-U1").get_data(as_text=True)
    with app.app_context():
        case = case_of(token)
        accept(case, db.session.scalar(sa.select(Member).where(Member.code == "L1")))
        _resolve(case.id)
    resident.callback(token, solved="yes")
    assert "您在这里的反映" not in resident.scan().get_data(as_text=True)


def test_a_mainland_sms_template_gets_the_residents_own_link(app: Flask,
                                                             resident: Resident) -> None:
    from dispatch.outbox import texts

    token = receipt_token(resident.message(phone=PHONE))
    with app.app_context():
        case = case_of(token)
        params = texts.template_params(_texts(Purpose.RECEIPT)[0])
        assert params == {"place": case.place.label, "what": "电梯故障", "number": case.number,
                          "action": "已受理，查看进度", "link": f"http://linli.test/c/{token}"}
