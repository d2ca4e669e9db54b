"""Twilio SMS: one outbox row → one `messages.create`, with a delivery-receipt callback.

The message carries a `status_callback` (under `PUBLIC_BASE_URL`, see `dispatch.hooks.sms`)
and a short `validity_period`, so an alert stuck in a carrier queue is dropped instead of
arriving hours late. Errors come back in Twilio's own codes; `dispatch.outbox.fallback`
decides what each means for the contact and the case.

Never twice: a row with a message SID is never sent again (the outbox's rule). The one gap is
a request that timed out or failed with a 5xx after Twilio had in fact taken the message, or
whose process died before storing the SID (the row comes back `interrupted`), so before
trying such a row again the sender asks Twilio for recent messages to that number and adopts
the SID of one with the same text instead of sending another.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import requests
from flask import Flask
from twilio.base.exceptions import TwilioException, TwilioRestException

from dispatch.channels import twilio_client
from dispatch.channels.base import LOOKUP_FAILED, Form, OutgoingMessage, SendResult

log = logging.getLogger(__name__)

STATUS_PATH = "/webhooks/twilio/sms/status"
#: Seconds an SMS may wait in Twilio's queue before it is dropped.
VALIDITY_SECONDS = 600
#: How many recent messages to a phone are searched for one that went out despite an error.
LOOKBACK = 200


class TwilioSmsSender:
    """Sends SMS through the app's Twilio client; paced and answerable by reply codes."""

    form: Form = "text"
    paced = True
    two_way = True
    looks_up = True

    def __init__(self, app: Flask) -> None:
        self.app = app
        # The SDK imports its API modules on first use: here, once (see `channels.prepare`).
        self.messages = twilio_client.client(app).messages

    def send(self, message: OutgoingMessage) -> SendResult:
        config = self.app.config
        if message.uncertain:
            try:
                earlier = find_sent(self.app, message.to, message.text, message.created_at)
            except (TwilioException, requests.RequestException) as exc:
                # Not knowing whether Twilio has it, sending could make a second copy: wait.
                return SendResult.failed(LOOKUP_FAILED, f"could not look up: {exc}"[:500],
                                         retryable=True)
            if earlier is not None:
                log.info("notification %s: Twilio already had it as %s; not sent again",
                         message.id, earlier)
                return SendResult.sent(earlier)
        service = config.get("TWILIO_MESSAGING_SERVICE_SID")
        sender = {"messaging_service_sid": service} if service else {"from_": config["TWILIO_FROM"]}
        return call_twilio(lambda: self.messages.create(
            to=message.to, body=message.text,
            status_callback=config["PUBLIC_BASE_URL"] + STATUS_PATH,
            validity_period=int(config.get("SMS_VALIDITY_SECONDS", VALIDITY_SECONDS)),
            **sender).sid)


def call_twilio(create: object) -> SendResult:
    """Run a Twilio create call and turn its outcome into a `SendResult`."""
    try:
        sid = create()  # type: ignore[operator]
    except TwilioRestException as exc:
        code = str(exc.code) if exc.code else f"http-{exc.status}"
        retryable = exc.status >= 500 or exc.status == 429
        if exc.status >= 500:
            code = f"http-{exc.status}"
        return SendResult.failed(code, str(exc.msg)[:500], retryable=retryable)
    except requests.Timeout as exc:
        return SendResult.failed("timeout", f"no answer from Twilio: {exc}"[:500], retryable=True)
    except requests.ConnectionError as exc:
        return SendResult.failed("connection", f"{exc}"[:500], retryable=True)
    return SendResult.sent(str(sid))


def find_sent(app: Flask, to: str, text: str, since: datetime) -> str | None:
    """The SID of a message to `to` with this text made since `since` (when the row was
    written), if any.

    Raises the SDK's errors when Twilio cannot be asked.
    """
    # A busy volunteer can get dozens of alerts in a storm: look far enough back.
    recent = twilio_client.client(app).messages.list(
        to=to, date_sent_after=since - timedelta(minutes=1), limit=LOOKBACK)
    for message in recent:
        created = message.date_created
        if message.body == text and (created is None
                                     or created >= since.replace(microsecond=0)):
            sid: str = message.sid
            return sid
    return None
