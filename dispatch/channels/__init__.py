"""Channels: how one outbox row reaches a person.

A sender is anything with `send(notification) -> SendResult`. It is called by
`dispatch.outbox.send` alone, outside any database transaction, and never for a row that
already has a provider id. The result says what happened in the provider's own terms: its
message id when it took the message, otherwise an error code and whether trying again later
could help. `SMS_BACKEND` chooses the sender; the console sender logs each message, and the
outbox row itself is the stored message, so the whole flow runs before a real provider exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from flask import Flask, current_app

from dispatch.channels.base import Sender, SendResult
from dispatch.channels.console import ConsoleSender
from dispatch.models import Channel, Notification

__all__ = ["BACKENDS", "SendResult", "Sender", "prepare", "sender_for"]


#: SMS_BACKEND value → a factory building the sender for an app.
BACKENDS: dict[str, Callable[[Flask], Sender]] = {
    "console": lambda app: ConsoleSender(),
    "twilio": lambda app: _provider("twilio_sms", "TwilioSmsSender", app),
    "aliyun": lambda app: _provider("aliyun", "AliyunSmsSender", app),
}
#: Channels with a provider of their own, used when the setting named here is configured.
CHANNEL_BACKENDS: dict[Channel, tuple[str, Callable[[Flask], Sender]]] = {
    Channel.VOICE: ("TWILIO_VOICE_NUMBER",
                    lambda app: _provider("twilio_voice", "TwilioVoiceSender", app)),
    Channel.PUSH: ("VAPID_PRIVATE_KEY", lambda app: _provider("push", "PushSender", app)),
}


def _provider(module: str, name: str, app: Flask) -> Sender:
    """Build a provider's sender; imported on first use (their SDKs import the outbox)."""
    sender: Sender = getattr(importlib.import_module(f"dispatch.channels.{module}"), name)(app)
    return sender


def sender_for(notification: Notification, app: Flask | None = None) -> Sender:
    """The sender for this row's channel: voice and push use their own provider when it is
    configured (`CHANNEL_BACKENDS`); everything else goes to the `SMS_BACKEND` one."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    own = CHANNEL_BACKENDS.get(notification.channel)
    if own is not None and app.config.get(own[0]):
        key = f"linli.sender.{notification.channel}"
        if key not in app.extensions:
            app.extensions[key] = own[1](app)
        return app.extensions[key]  # type: ignore[no-any-return]
    sender = app.extensions.get("linli.sender")
    if sender is None:
        sender = app.extensions["linli.sender"] = BACKENDS[app.config["SMS_BACKEND"]](app)
    return sender


def prepare(app: Flask) -> None:
    """Build the app's configured senders now, provider SDKs imported.

    A forking worker calls this before it forks, so each work horse inherits them ready instead
    of building them, and importing an SDK, for every job it runs.
    """
    app.extensions.setdefault("linli.sender", BACKENDS[app.config["SMS_BACKEND"]](app))
    for channel, (setting, build) in CHANNEL_BACKENDS.items():
        if app.config.get(setting):
            app.extensions.setdefault(f"linli.sender.{channel}", build(app))
