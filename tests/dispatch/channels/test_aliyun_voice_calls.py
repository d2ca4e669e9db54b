"""Alibaba Cloud voice end to end: an urgent alert not taken in two minutes rings the member
through the official SDK; pressing 1 on that call accepts the case, applied from the
VoiceReport receipt by call id, however often it comes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import clock, jobs
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Case, CaseStatus, Channel, Contact, Notification, NotificationStatus
from tests import clock as test_clock
from tests import factories
from tests.clock import MIN
from tests.factories import member, place
from tests.fakes.aliyun_server import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.fakes.aliyun_voice_server import FakeAliyunVoice

REPORT = "/webhooks/aliyun/voice/report?token=report-token"


@pytest.fixture
def voice(app: Flask, frozen_clock: None) -> Iterator[FakeAliyunVoice]:
    with FakeAliyunVoice() as fake, app.app_context():
        app.config.update(ALIYUN_ACCESS_KEY_ID=ACCESS_KEY_ID,
                          ALIYUN_ACCESS_KEY_SECRET=ACCESS_KEY_SECRET,
                          ALIYUN_VOICE_SHOW_NUMBER="057188880000",
                          ALIYUN_VOICE_TTS_CODE="TTS_1", ALIYUN_VOICE_IVR_CODE="TTS_2",
                          ALIYUN_VOICE_IVR_REPLY_CODE="TTS_3", ALIYUN_VOICE_API_BASE_URL=fake.url,
                          ALIYUN_REPORT_TOKEN="report-token")
        factories.import_community(factories.dispatch_community())
        leader = member("L1")
        leader.contacts.append(Contact(channel=Channel.VOICE, address="+8613800138001",
                                       priority=1, created_at=clock.now()))
        db.session.commit()
        yield fake


def run_jobs(app: Flask, at: datetime | None = None) -> None:
    if at is not None:
        test_clock.move_to(at)
    while jobs.runner(app).drain():
        db.session.expire_all()
    db.session.expire_all()


def call_row(case: Case) -> Notification:
    return db.session.scalars(sa.select(Notification).where(
        Notification.case_id == case.id, Notification.purpose == "call")).one()


def test_the_call_after_an_unanswered_alert_asks_for_a_key_and_1_accepts(
        app: Flask, voice: FakeAliyunVoice) -> None:
    start = clock.now()
    case = file_report(place("TS-B1-U1-E1"), "elevator", text="电梯困人").case
    run_jobs(app)
    assert voice.requests == []  # the SMS went first
    run_jobs(app, start + 2 * MIN)
    [request] = voice.requests
    row = call_row(case)
    assert request.action == "IvrCall" and request.params["CalledNumber"] == "13800138001"
    assert request.params["OutId"] == str(row.id) and row.status == NotificationStatus.SENT
    push = voice.receipts({"call_id": row.provider_id, "answered": "1", "dtmf": "1"})
    for _ in range(2):  # Alibaba Cloud may push the same receipt twice
        assert app.test_client().post(REPORT, data=push).status_code == 200
    case = db.session.get(Case, case.id)
    assert case.status == CaseStatus.ACCEPTED and case.accepted_by_id == member("L1").id
    assert db.session.get(Notification, row.id).status == NotificationStatus.DELIVERED


def test_a_call_nobody_answers_is_undelivered_and_2_only_notes_the_pass(
        app: Flask, voice: FakeAliyunVoice) -> None:
    start = clock.now()
    case = file_report(place("TS-B1-U1-E1"), "elevator").case
    run_jobs(app)
    run_jobs(app, start + 2 * MIN)
    row = call_row(case)
    unanswered = voice.receipts({"call_id": row.provider_id})
    assert app.test_client().post(REPORT, data=unanswered).status_code == 200
    assert db.session.get(Notification, row.id).status == NotificationStatus.UNDELIVERED
    case = file_report(place("TS-B1-U1"), "help").case
    run_jobs(app)
    run_jobs(app, start + 4 * MIN)
    row = call_row(case)
    passed = voice.receipts({"call_id": row.provider_id, "answered": "1", "dtmf": "2"})
    for _ in range(2):
        assert app.test_client().post(REPORT, data=passed).status_code == 200
    case = db.session.get(Case, case.id)
    assert case.status == CaseStatus.OPEN
    assert [e.message for e in case.events if "无法前往" in e.message] == [
        "李建国电话中表示无法前往"]


def test_a_receipt_without_the_token_is_refused(app: Flask, voice: FakeAliyunVoice) -> None:
    client = app.test_client()
    assert client.post("/webhooks/aliyun/voice/report?token=wrong", data=b"[]").status_code == 403
    assert client.post(REPORT, data=b"{not json").status_code == 400
