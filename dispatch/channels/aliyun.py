"""Alibaba Cloud SMS (阿里云短信服务), for mainland numbers Twilio cannot reach two ways.

Mainland carriers only pass registered templates with a registered signature, so a message
is a template code plus parameters, not free text; the member acts through the signed link in
it (no reply codes: Twilio-style two-way SMS does not exist for +86). The outbox composes the
parameters (`dispatch.outbox.texts.template_params`, which names the variables the template
registered under `ALIYUN_SMS_TEMPLATE_CODE` must use).

`ALIYUN_SMS_ENDPOINT` points the official SDK elsewhere (tests use a local server); the
delivery reports come back to `dispatch.hooks.sms.aliyun_report`.
"""

from __future__ import annotations

import json

from alibabacloud_dysmsapi20170525 import models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import utils_models
from darabonba.runtime import RuntimeOptions
from flask import Flask

from dispatch.channels.base import Form, OutgoingMessage, SendResult

#: Alibaba Cloud's answers that will not change by trying again.
FINAL = {"isv.MOBILE_NUMBER_ILLEGAL", "isv.SMS_TEMPLATE_ILLEGAL", "isv.SMS_SIGNATURE_ILLEGAL",
         "isv.TEMPLATE_MISSING_PARAMETERS", "isv.INVALID_PARAMETERS", "isv.BLACK_KEY_CONTROL_LIMIT",
         "isv.PARAM_LENGTH_LIMIT", "isv.INVALID_JSON_PARAM", "isv.MOBILE_COUNT_OVER_LIMIT"}
#: Error codes as the outbox keeps them (16 characters); the full code is in `last_error`.
SHORT_CODES = {"isv.MOBILE_NUMBER_ILLEGAL": "ali-bad-number",
               "isv.BUSINESS_LIMIT_CONTROL": "ali-rate-limit",
               "isv.DAY_LIMIT_CONTROL": "ali-day-limit", "isv.AMOUNT_NOT_ENOUGH": "ali-no-balance"}
TIMEOUT_MS = 10_000


class AliyunSmsSender:
    """Sends template SMS through the official dysmsapi SDK; paced, link-based acceptance."""

    form: Form = "template"
    paced = True
    two_way = False
    looks_up = False

    def __init__(self, app: Flask) -> None:
        config = app.config
        endpoint = config["ALIYUN_SMS_ENDPOINT"]
        scheme, _, host = endpoint.rpartition("://")
        self.client = Client(utils_models.Config(
            access_key_id=config["ALIYUN_ACCESS_KEY_ID"],
            access_key_secret=config["ALIYUN_ACCESS_KEY_SECRET"],
            endpoint=host, protocol=scheme or "https"))
        self.sign_name = config["ALIYUN_SMS_SIGN_NAME"]
        self.template = config["ALIYUN_SMS_TEMPLATE_CODE"]

    def send(self, message: OutgoingMessage) -> SendResult:
        request = models.SendSmsRequest(
            phone_numbers=message.to.removeprefix("+86"),
            sign_name=self.sign_name, template_code=self.template,
            template_param=json.dumps(dict(message.template_params), ensure_ascii=False),
            out_id=str(message.id))
        runtime = RuntimeOptions(connect_timeout=TIMEOUT_MS, read_timeout=TIMEOUT_MS,
                                 autoretry=False)
        try:
            response = self.client.send_sms_with_options(request, runtime)
        except Exception as exc:  # the SDK raises its own exception types for HTTP errors
            code = str(getattr(exc, "code", "") or type(exc).__name__)
            status = getattr(exc, "status_code", None)
            retryable = status is None or int(status) >= 500 or int(status) == 429
            return SendResult.failed(short_code(code), f"{code}: {exc}"[:500],
                                     retryable=retryable)
        body = response.body
        if body.code != "OK":
            return SendResult.failed(short_code(str(body.code)), f"{body.code}: {body.message}",
                                     retryable=body.code not in FINAL)
        return SendResult.sent(str(body.biz_id))


def short_code(code: str) -> str:
    """Alibaba Cloud's error code shortened to fit the outbox's column."""
    return SHORT_CODES.get(code) or ("ali-" + code.removeprefix("isv.").removeprefix("isp."))[:16]
