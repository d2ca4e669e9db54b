"""The mainland channels with real workers on PostgreSQL and Redis: a forking RQ worker sends
the WeCom card and the group message; 接单 on the card is accepted and every card updated; an
urgent case nobody takes rings the member by Alibaba Cloud two minutes (here: seconds) later,
and pressing 1 on that call accepts it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import clock
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Case, CaseStatus, Channel, Contact, Notification, NotificationStatus
from tests import factories
from tests.dispatch.jobs.test_reliability import Processes, start_worker, wait_for
from tests.factories import member, place
from tests.fakes.aliyun_server import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.fakes.aliyun_voice_server import FakeAliyunVoice
from tests.fakes.robot_server import DINGTALK_SECRET, DINGTALK_TOKEN, FakeRobots
from tests.fakes.wecom_server import (
    AES_KEY,
    CORP_ID,
    SECRET,
    TOKEN,
    FakeWeCom,
    card_click_xml,
    encrypt_callback,
)
from tests.ops.deployment import PG_URL

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def fakes() -> Iterator[tuple[FakeWeCom, FakeRobots, FakeAliyunVoice]]:
    with FakeWeCom() as wecom, FakeRobots() as robots, FakeAliyunVoice() as voice:
        yield wecom, robots, voice


@pytest.fixture
def mainland(rq_app: Flask, pg_schema: str, redis_url: str, tmp_path: object,
             fakes: tuple[FakeWeCom, FakeRobots, FakeAliyunVoice]) -> Iterator[Processes]:
    wecom, robots, voice = fakes
    settings = {"WECOM_CORP_ID": CORP_ID, "WECOM_AGENT_ID": "1000002", "WECOM_SECRET": SECRET,
                "WECOM_TOKEN": TOKEN, "WECOM_AES_KEY": AES_KEY, "WECOM_API_BASE_URL": wecom.url,
                "ALIYUN_ACCESS_KEY_ID": ACCESS_KEY_ID,
                "ALIYUN_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
                "ALIYUN_VOICE_SHOW_NUMBER": "057188880000", "ALIYUN_VOICE_TTS_CODE": "TTS_1",
                "ALIYUN_VOICE_IVR_CODE": "TTS_2", "ALIYUN_VOICE_IVR_REPLY_CODE": "TTS_3",
                "ALIYUN_VOICE_API_BASE_URL": voice.url, "ALIYUN_REPORT_TOKEN": "report-token",
                "DINGTALK_API_BASE_URL": robots.url}
    rq_app.config.update({**settings, "WECOM_AGENT_ID": 1000002})
    database = f"{PG_URL}?options=-csearch_path%3D{pg_schema}"
    processes = Processes(tmp_path, {  # type: ignore[arg-type]
        "DATABASE_URL": database, "REDIS_URL": redis_url, **settings})
    with rq_app.app_context():
        robots_table = [{"place": "TS-G1", "kind": "dingtalk", "key": DINGTALK_TOKEN,
                         "secret": DINGTALK_SECRET}]
        community = factories.import_community(factories.dispatch_community(robots=robots_table))
        # Two minutes are six seconds here; the rung itself waits a minute.
        factories.set_policy(community, "urgent", call_after_minutes=0.1, rung_minutes=1)
        # The leader and the lift maintainer: asked first about an urgent lift at any hour.
        for code, userid in (("L1", "lijianguo"), ("E1", "chenlei")):
            found = member(code)
            found.contacts.append(Contact(channel=Channel.WECOM, address=userid, priority=0,
                                          created_at=clock.now()))
            if not any(c.channel == Channel.VOICE for c in found.contacts):
                found.contacts.append(Contact(channel=Channel.VOICE, priority=2,
                                              address=found.contacts[0].address,
                                              created_at=clock.now()))
            found.channel_order = ["wecom", "sms", "voice"]
        db.session.commit()
        start_worker(processes, rq_app)
        yield processes
    processes.stop_all()


def click(app: Flask, row_id: int, userid: str) -> int:
    now = int(time.time())
    posted = encrypt_callback(card_click_xml(userid=userid, button="accept",
                                             task_id=f"linli-{row_id}", response_code="rc",
                                             created=now), timestamp=now)
    return app.test_client().post(
        f"/webhooks/wecom/callback?msg_signature={posted.msg_signature}"
        f"&timestamp={posted.timestamp}&nonce={posted.nonce}",
        data=posted.body, content_type="text/xml").status_code


def test_a_card_accepted_from_wecom_with_real_workers(
        rq_app: Flask, mainland: Processes,
        fakes: tuple[FakeWeCom, FakeRobots, FakeAliyunVoice]) -> None:
    wecom, robots, _ = fakes
    with rq_app.app_context():
        case_id = file_report(place("TS-B1-U1-E1"), "elevator", text="电梯停了").case.id
        wait_for("the cards", lambda: len(wecom.sent) == 2)
        wait_for("the group's message", lambda: robots.messages)
        card = db.session.scalars(sa.select(Notification).where(
            Notification.case_id == case_id, Notification.member_id == member("L1").id,
            Notification.channel == Channel.WECOM)).one()
        assert click(rq_app, card.id, "lijianguo") == 200
        assert db.session.get(Case, case_id).accepted_by_id == member("L1").id
        wait_for("both cards updated", lambda: len(wecom.updates) == 2)
        assert {u["button"]["replace_name"] for u in wecom.updates} == {"已由李建国接单"}


def test_an_urgent_case_nobody_takes_rings_and_1_on_the_call_accepts(
        rq_app: Flask, mainland: Processes,
        fakes: tuple[FakeWeCom, FakeRobots, FakeAliyunVoice]) -> None:
    _, _, voice = fakes
    with rq_app.app_context():
        case_id = file_report(place("TS-B1-U1-E1"), "elevator", text="电梯困人").case.id
        leader = member("L1").id

        def leaders_call() -> Notification | None:  # sent: the provider's call id is stored
            return db.session.scalar(sa.select(Notification).where(
                Notification.case_id == case_id, Notification.purpose == "call",
                Notification.member_id == leader,
                Notification.status == NotificationStatus.SENT))

        call = wait_for("the leader's call", leaders_call, timeout=40)
        [request] = [r for r in voice.requests if r.params.get("OutId") == str(call.id)]
        assert request.action == "IvrCall" and json.loads(request.params["StartTtsParams"])
        push = voice.receipts({"call_id": call.provider_id, "answered": "1", "dtmf": "1"})
        report = "/webhooks/aliyun/voice/report?token=report-token"
        assert rq_app.test_client().post(report, data=push).status_code == 200
        case = db.session.get(Case, case_id)
        assert case.status == CaseStatus.ACCEPTED and case.accepted_by_id == leader
