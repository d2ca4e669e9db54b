"""Twilio voice alerts: an urgent notification as a phone call that reads the case in Mandarin.

The call fetches its TwiML from `dispatch.hooks.voice` (press 1 to accept, 2 to pass); its status
callback moves the outbox row. A call counts as delivered only when the member pressed a key:
a voicemail that picks up and records the message has not told anyone anything, so a call
that ends without a key press is *undelivered* and the member is tried by their next channel.
"""

from __future__ import annotations

from flask import Flask

from dispatch.channels import twilio_client
from dispatch.channels.base import Form, OutgoingMessage, SendResult
from dispatch.channels.twilio_sms import call_twilio

ALERT_PATH = "/webhooks/twilio/voice/alert"
STATUS_PATH = "/webhooks/twilio/voice/status"
#: Seconds to let the member's phone ring.
RING_SECONDS = 30


class TwilioVoiceSender:
    """Places alert calls from the service's voice number; paced like SMS."""

    form: Form = "text"
    paced = True
    two_way = False
    looks_up = False

    def __init__(self, app: Flask) -> None:
        self.app = app
        # The SDK imports its API modules on first use: here, once (see `channels.prepare`).
        self.calls = twilio_client.client(app).calls

    def send(self, message: OutgoingMessage) -> SendResult:
        config = self.app.config
        base = config["PUBLIC_BASE_URL"]
        caller = config.get("TWILIO_VOICE_NUMBER") or config.get("TWILIO_FROM")
        return call_twilio(lambda: self.calls.create(
            to=message.to, from_=caller,
            url=f"{base}{ALERT_PATH}?n={message.id}",
            status_callback=base + STATUS_PATH, timeout=RING_SECONDS).sid)
