"""Fixtures for tests that talk to providers: the fake Twilio and an app configured for it.

Loaded by `tests/conftest.py` (`pytest_plugins`), so every test module can ask for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from twilio.request_validator import RequestValidator

from dispatch.db import db
from tests import factories
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, Sender

TWILIO_FROM = "+15005550006"
VOICE_NUMBER = "+15005550007"


def twilio_settings(fake: FakeTwilio, **overrides: Any) -> dict[str, Any]:
    """The settings that send SMS and calls through the fake."""
    settings: dict[str, Any] = {
        "SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM": TWILIO_FROM,
        "TWILIO_MESSAGING_SERVICE_SID": None, "TWILIO_VOICE_NUMBER": VOICE_NUMBER,
        "TWILIO_API_BASE_URL": fake.url, "TWILIO_TIMEOUT": 1.0,
    }
    settings.update(overrides)
    return settings


def into_app(app: Flask) -> Sender:
    """A webhook sender that posts into the app's test client instead of over the network."""
    def post(url: str, form: dict[str, str], headers: dict[str, str]) -> int:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return app.test_client().post(path, data=form, headers=headers).status_code
    return post


def signed_post(client: Any, app: Flask, path: str, form: dict[str, str],
                token: str = AUTH_TOKEN) -> Any:
    """POST `form` to `path` signed as Twilio signs webhooks for the public URL."""
    signature = RequestValidator(token).compute_signature(
        app.config["PUBLIC_BASE_URL"] + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """The fake Twilio REST API, serving on a free local port for the test."""
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def twilio_app(app: Flask, fake_twilio: FakeTwilio) -> Iterator[Flask]:
    """The app (PostgreSQL) sending through the fake Twilio, with the dispatch community, in
    context.

    The fake posts its delivery receipts and inbound SMS into this app.
    """
    yield from _with_twilio(app, fake_twilio)


@pytest.fixture(params=["sqlite", "postgresql"])
def twilio_any_app(request: pytest.FixtureRequest, fake_twilio: FakeTwilio) -> Iterator[Flask]:
    """`twilio_app`, on SQLite and on the real PostgreSQL (row locks, SKIP LOCKED)."""
    app = request.getfixturevalue("sqlite_app" if request.param == "sqlite" else "pg_app")
    yield from _with_twilio(app, fake_twilio)


def _with_twilio(app: Flask, fake: FakeTwilio) -> Iterator[Flask]:
    app.config.update(twilio_settings(fake))
    fake.sender = into_app(app)
    with app.app_context():
        factories.import_community(factories.dispatch_community())
        db.session.commit()
        yield app
        db.session.rollback()
