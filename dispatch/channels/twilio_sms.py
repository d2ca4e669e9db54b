"""Twilio SMS: one outbox row → one `messages.create`, with a delivery-receipt callback.

The message carries a `status_callback` (under `PUBLIC_BASE_URL`, see `dispatch.hooks.sms`)
and a short `validity_period`, so an alert stuck in a carrier queue is dropped instead of
arriving hours late. Errors come back in Twilio's own codes; `dispatch.channels.fallback`
decides what each means for the contact and the case.

Never twice: a row with a message SID is never sent again (the outbox's rule). The one gap is
a request that timed out or failed with a 5xx after Twilio had in fact taken the message, or
whose process died before storing the SID (the row comes back `interrupted`), so before
trying such a row again the sender asks Twilio for recent messages to that number and adopts
the SID of one with the same text instead of sending another.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import requests
from flask import Flask
from twilio.base.exceptions import TwilioException, TwilioRestException

from dispatch import links
from dispatch.channels import throttle, twilio_client
from dispatch.channels.base import LOOKUP_FAILED, UNCERTAIN, SendResult
from dispatch.db import db
from dispatch.models import Notification
from dispatch.replies import describe, hint

log = logging.getLogger(__name__)

STATUS_PATH = "/webhooks/twilio/sms/status"
#: Seconds an SMS may wait in Twilio's queue before it is dropped.
VALIDITY_SECONDS = 600
#: How many recent messages to a phone are searched for one that went out despite an error.
LOOKBACK = 200


class TwilioSmsSender:
    """Sends SMS through the app's Twilio client; paced and answerable by reply codes."""

    paced = True
    two_way = True

    def __init__(self, app: Flask) -> None:
        self.app = app
        # The SDK imports its API modules on first use: here, once (see `channels.prepare`).
        self.messages = twilio_client.client(app).messages

    def send(self, notification: Notification) -> SendResult:
        # The first attempt's text is kept: a bundle's list and its signed link would otherwise
        # differ on a retry, and the look-up below could not recognise the first message.
        text = notification.sent_text
        if text is None:
            text = notification.sent_text = text_for(notification, two_way=True)
            # Kept before Twilio sees it: should this process die mid-send, the row's recovery
            # looks for exactly this text (a bundle's signed link differs each time it is made).
            db.session.commit()
        config = self.app.config
        if notification.error_code in UNCERTAIN:
            try:
                earlier = find_sent(self.app, notification.to_address, text, notification)
            except (TwilioException, requests.RequestException) as exc:
                # Not knowing whether Twilio has it, sending could make a second copy: wait.
                return SendResult.failed(LOOKUP_FAILED, f"could not look up: {exc}"[:500],
                                         retryable=True)
            if earlier is not None:
                log.info("notification %s: Twilio already had it as %s; not sent again",
                         notification.id, earlier)
                return SendResult.sent(earlier)
        service = config.get("TWILIO_MESSAGING_SERVICE_SID")
        sender = {"messaging_service_sid": service} if service else {"from_": config["TWILIO_FROM"]}
        return call_twilio(lambda: self.messages.create(
            to=notification.to_address, body=text,
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


def find_sent(app: Flask, to: str, text: str, notification: Notification) -> str | None:
    """The SID of a message to `to` with this text made since the row was written, if any.

    Raises the SDK's errors when Twilio cannot be asked.
    """
    # A busy volunteer can get dozens of alerts in a storm: look far enough back.
    recent = twilio_client.client(app).messages.list(
        to=to, date_sent_after=notification.created_at - timedelta(minutes=1), limit=LOOKBACK)
    for message in recent:
        created = message.date_created
        if message.body == text and (created is None or created >= notification.created_at
                                     .replace(microsecond=0)):
            sid: str = message.sid
            return sid
    return None


def text_for(notification: Notification, *, two_way: bool) -> str:
    """The SMS text: the row's body with its reply line, or the list of a bundle."""
    rows, cases = [], set()
    for row in [notification, *throttle.bundled(notification)]:
        if row.case_id not in cases:  # two alerts about one case are listed once
            cases.add(row.case_id)
            rows.append(row)
    if len(rows) == 1:
        line = hint(notification) if two_way else ""
        return notification.body + (f"\n{line}" if line else "")
    lines = [f"【邻里】您有 {len(rows)} 件待接单："]
    for row in rows:
        if row.case is None:
            continue
        code = f"{row.reply_code} " if two_way and row.reply_code else ""
        lines.append(f"{code}{describe(row.case)}（{row.case.number}）")
    if two_way:
        first = next((r.reply_code for r in rows if r.reply_code), "1")
        lines.append(f"回复编号接单，编号加D表示已解决（如 {first} 或 {first}D）")
    if notification.member_id is not None:
        lines.append(f"查看全部：{links.url(links.Purpose.MEMBER, notification.member_id)}")
    return "\n".join(lines)
