"""Web Push: a member's own phone, without an app, through the browser's push service.

The member subscribes from their member page (`dispatch.member.push`). Each push carries the
same signed accept / resolve links as the SMS (`dispatch.outbox.texts.push_payload`). It is
sent with a TTL (the default of 0 would drop it whenever the phone is offline) and a timeout;
a subscription the push service answers 404 or 410 for is gone for good and is removed
(`dispatch.outbox.fallback`), and the member is reached by their next channel instead.
"""

from __future__ import annotations

import json
import uuid

import requests
from flask import Flask
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from dispatch.channels.base import Form, OutgoingMessage, SendResult

#: Seconds a push service keeps an undelivered alert; other messages keep longer.
ALERT_TTL = 15 * 60
OTHER_TTL = 24 * 60 * 60
TIMEOUT = 10.0


class PushSender:
    """Encrypts and posts one push message per outbox row (pywebpush, VAPID)."""

    form: Form = "push"
    paced = False
    two_way = False
    looks_up = False

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.vapid = Vapid.from_string(app.config["VAPID_PRIVATE_KEY"])

    def send(self, message: OutgoingMessage) -> SendResult:
        if not message.push_keys:
            return SendResult.failed("410", "the subscription was removed", retryable=False)
        alert = message.urgent
        try:
            response = webpush(
                {"endpoint": message.to, "keys": dict(message.push_keys)},
                json.dumps(dict(message.push_payload), ensure_ascii=False),
                vapid_private_key=self.vapid,
                vapid_claims={"sub": self.app.config["VAPID_SUBJECT"]},
                ttl=ALERT_TTL if alert else OTHER_TTL,
                timeout=float(self.app.config.get("PUSH_TIMEOUT", TIMEOUT)),
                headers={"Urgency": "high" if alert else "normal"})
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else None
            return SendResult.failed(str(status or "push"), str(exc.message)[:500],
                                     retryable=status not in (400, 401, 403, 404, 410, 413))
        except requests.Timeout as exc:
            return SendResult.failed("timeout", str(exc)[:500], retryable=True)
        except requests.ConnectionError as exc:
            return SendResult.failed("connection", str(exc)[:500], retryable=True)
        location = getattr(response, "headers", {}).get("Location", "")
        return SendResult.sent(location.rsplit("/", 1)[-1][:64] or f"push-{uuid.uuid4().hex}")
