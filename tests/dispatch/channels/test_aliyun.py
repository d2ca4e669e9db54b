"""Alibaba Cloud SMS through the official SDK against a local endpoint that checks signatures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from dispatch.db import db
from dispatch.models import Case, ContactStatus, NotificationStatus
from tests import factories
from tests.dispatch.channels.helpers import contact, link_names, open_case, row_for, send
from tests.factories import member
from tests.fakes.aliyun_server import ACCESS_KEY_ID, ACCESS_KEY_SECRET, FakeAliyun

REPORT = "/webhooks/aliyun/sms/report?token=report-token-123"


@pytest.fixture
def fake_aliyun() -> Iterator[FakeAliyun]:
    with FakeAliyun() as fake:
        yield fake


@pytest.fixture
def aliyun_app(app: Flask, fake_aliyun: FakeAliyun) -> Iterator[Flask]:
    app.config.update(SMS_BACKEND="aliyun", ALIYUN_ACCESS_KEY_ID=ACCESS_KEY_ID,
                      ALIYUN_ACCESS_KEY_SECRET=ACCESS_KEY_SECRET, ALIYUN_SMS_SIGN_NAME="邻里社区",
                      ALIYUN_SMS_TEMPLATE_CODE="SMS_480115123", ALIYUN_SMS_ENDPOINT=fake_aliyun.url,
                      ALIYUN_REPORT_TOKEN="report-token-123")
    with app.app_context():
        factories.import_community(factories.dispatch_community())
        yield app


def test_an_alert_is_a_signed_template_sms_with_the_members_link(
        aliyun_app: Flask, fake_aliyun: FakeAliyun) -> None:
    case = open_case()
    row = send(row_for(case, "E1"))
    [request] = fake_aliyun.requests
    assert request.signature_ok and request.action == "SendSms"
    assert request.params["PhoneNumbers"] == "13800138005"
    assert request.params["SignName"] == "邻里社区"
    assert request.params["TemplateCode"] == "SMS_480115123"
    assert request.params["OutId"] == str(row.id)
    params = dict(request.template_param)
    assert link_names(params.pop("link")) == ("case", member("E1").id, case.id)
    assert params == {"place": "1栋 1单元 · 1号电梯", "what": "电梯故障",
                      "number": case.number, "action": "请接单"}
    assert row.status == NotificationStatus.SENT and row.provider_id.endswith("^0")
    assert row.reply_code is None  # no two-way SMS to +86: acceptance is by the link


def test_an_illegal_number_breaks_the_contact(aliyun_app: Flask, fake_aliyun: FakeAliyun) -> None:
    fake_aliyun.answer_next("isv.MOBILE_NUMBER_ILLEGAL")
    row = send(row_for(open_case(), "E1"))
    assert row.status == NotificationStatus.FAILED and row.error_code == "ali-bad-number"
    assert "isv.MOBILE_NUMBER_ILLEGAL" in row.last_error
    assert contact("E1").status == ContactStatus.BROKEN


@pytest.mark.parametrize(("code", "http_status", "error_code"), [
    ("isv.BUSINESS_LIMIT_CONTROL", 200, "ali-rate-limit"),
    ("isp.SYSTEM_ERROR", 500, "ali-SYSTEM_ERROR"),
])
def test_rate_limits_and_server_errors_are_retried_later(
        aliyun_app: Flask, fake_aliyun: FakeAliyun, code: str, http_status: int,
        error_code: str) -> None:
    fake_aliyun.answer_next(code, http_status=http_status)
    row = send(row_for(open_case(), "E1"))
    assert row.status == NotificationStatus.PENDING and row.error_code == error_code
    assert row.next_attempt_at is not None and len(fake_aliyun.requests) == 1


def test_delivery_reports_need_the_token_and_move_the_row(
        aliyun_app: Flask, fake_aliyun: FakeAliyun) -> None:
    case = open_case()
    row = send(row_for(case, "E1"))
    report = [{"phone_number": "13800138005", "success": True, "biz_id": row.provider_id,
               "out_id": str(row.id), "err_code": "DELIVERED", "err_msg": "用户接收成功",
               "send_time": "2026-11-27 10:00:00", "report_time": "2026-11-27 10:00:03"}]
    client = aliyun_app.test_client()
    assert client.post("/webhooks/aliyun/sms/report?token=wrong", json=report).status_code == 403
    db.session.expire_all()
    assert db.session.get(type(row), row.id).status == NotificationStatus.SENT
    answer = client.post(REPORT, json=report)
    assert answer.status_code == 200 and answer.get_json()["code"] == 0
    db.session.expire_all()
    assert db.session.get(type(row), row.id).status == NotificationStatus.DELIVERED
    assert db.session.get(Case, case.id).first_delivered_at is not None
