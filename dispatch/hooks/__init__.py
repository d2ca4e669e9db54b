"""Provider webhooks at /webhooks: `sms` (delivery receipts, inbound replies), `voice`
(Twilio's calls: the resident's call through a sticker, the alert call's key presses) and
`wecom` (button clicks on WeCom alert cards), `aliyun_voice` (how Alibaba Cloud's alert calls
ended, and the key pressed).

Every route checks the provider's signature (or shared token) instead of a CSRF token.
"""

from __future__ import annotations

from flask import Flask

from dispatch.hooks import aliyun_voice, sms, voice, wecom

BLUEPRINTS = (sms.bp, voice.bp, wecom.bp, aliyun_voice.bp)


def init_app(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
