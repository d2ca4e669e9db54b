"""Channels: how one outbox message reaches a person.

A sender is anything with `send(OutgoingMessage) -> SendResult` (`base.Sender`). It is called
by `dispatch.outbox.delivery` alone, outside any database transaction, and never for a row
that already has a provider id. Senders are leaves: they know their provider's SDK and nothing
of cases, members or the outbox, which composes what they are handed. The result says what
happened in the provider's own terms: its message id when it took the message, otherwise an
error code and whether trying again later could help. `SMS_BACKEND` chooses the sender; the
console sender logs each message, and the outbox row itself is the stored message, so the
whole flow runs before a real provider exists.

Providers: `console`, `twilio_sms`, `twilio_voice`, `aliyun` (SMS), `push` (Web Push), and
`wecom` (alert cards), `robots` (work groups), `aliyun_voice` (mainland calls);
`twilio_client` and `webapi` are what they share.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app

from dispatch.channels.base import Form, OutgoingMessage, Sender, SendResult
from dispatch.channels.console import ConsoleSender
from dispatch.models import Channel

__all__ = ["BACKENDS", "OutgoingMessage", "SendResult", "Sender", "prepare", "sender_for"]


#: SMS_BACKEND value → a factory building the sender for an app.
BACKENDS: dict[str, Callable[[Flask], Sender]] = {
    "console": lambda app: ConsoleSender(),
    "twilio": lambda app: _twilio_sms(app),
    "aliyun": lambda app: _aliyun_sms(app),
}
#: Channels with a provider of their own, used when the setting named here is configured (the
#: first configured one of a channel's: mainland voice before Twilio's).
CHANNEL_BACKENDS: dict[Channel, tuple[tuple[str | None, Callable[[Flask], Sender]], ...]] = {
    Channel.VOICE: (("ALIYUN_VOICE_SHOW_NUMBER", lambda app: _aliyun_voice(app)),
                    ("TWILIO_VOICE_NUMBER", lambda app: _twilio_voice(app))),
    Channel.PUSH: (("VAPID_PRIVATE_KEY", lambda app: _push(app)),),
    Channel.WECOM: (("WECOM_CORP_ID", lambda app: _wecom(app)),),
    # Each group's robot is named in the community file; the channel itself is always on.
    Channel.ROBOT: ((None, lambda app: _robots(app)),),
}

# A provider's module is imported when its sender is first built, not with this package: the
# SDKs cost 0.1–0.5 s each to import, and most processes (the CLI, a deployment on one
# provider) never use most of them. These are the only imports inside functions here.


def _twilio_sms(app: Flask) -> Sender:
    from dispatch.channels.twilio_sms import TwilioSmsSender

    return TwilioSmsSender(app)


def _aliyun_sms(app: Flask) -> Sender:
    from dispatch.channels.aliyun import AliyunSmsSender

    return AliyunSmsSender(app)


def _twilio_voice(app: Flask) -> Sender:
    from dispatch.channels.twilio_voice import TwilioVoiceSender

    return TwilioVoiceSender(app)


def _aliyun_voice(app: Flask) -> Sender:
    from dispatch.channels.aliyun_voice import AliyunVoiceSender

    return AliyunVoiceSender(app.config)


def _push(app: Flask) -> Sender:
    from dispatch.channels.push import PushSender

    return PushSender(app)


def _wecom(app: Flask) -> Sender:
    from dispatch.channels.wecom import WeComSender

    return WeComSender(app.config)


def _robots(app: Flask) -> Sender:
    from dispatch.channels.robots import RobotSender

    return RobotSender(app.config["WECOM_API_BASE_URL"], app.config["DINGTALK_API_BASE_URL"])


def sender_for(channel: str, app: Flask | None = None) -> Sender:
    """The sender for a channel: voice, push and WeCom use their own provider when it is
    configured (`CHANNEL_BACKENDS`); everything else goes to the `SMS_BACKEND` one. A WeCom
    userid is no phone number: without WeCom configured its messages fail (and the member is
    reached by their next channel), except on the console backend, which takes anything."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    own = _configured(app, Channel(channel))
    if own is not None:
        key = f"linli.sender.{channel}"
        if key not in app.extensions:
            app.extensions[key] = own(app)
        return app.extensions[key]  # type: ignore[no-any-return]
    if channel == Channel.WECOM and app.config["SMS_BACKEND"] != "console":
        return NOT_CONFIGURED
    sender = app.extensions.get("linli.sender")
    if sender is None:
        sender = app.extensions["linli.sender"] = BACKENDS[app.config["SMS_BACKEND"]](app)
    return sender


class NotConfigured:
    """The sender of a channel whose provider is not set up: every message fails for good."""

    form: Form = "text"
    paced = False
    two_way = False
    looks_up = False

    def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult.failed("not-configured", f"no provider for {message.channel}",
                                 retryable=False)


NOT_CONFIGURED = NotConfigured()


def prepare(app: Flask) -> None:
    """Build the app's configured senders now, provider SDKs imported.

    A forking worker calls this before it forks, so each work horse inherits them ready instead
    of building them, and importing an SDK, for every job it runs.
    """
    app.extensions.setdefault("linli.sender", BACKENDS[app.config["SMS_BACKEND"]](app))
    for channel in CHANNEL_BACKENDS:
        build = _configured(app, channel)
        if build is not None:
            app.extensions.setdefault(f"linli.sender.{channel}", build(app))


def _configured(app: Flask, channel: Channel) -> Callable[[Flask], Sender] | None:
    """The factory of the channel's own provider that is configured, if any."""
    return next((build for setting, build in CHANNEL_BACKENDS.get(channel, ())
                 if setting is None or app.config.get(setting)), None)
