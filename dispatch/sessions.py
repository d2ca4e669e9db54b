"""Flask's signed-cookie sessions, with the signing serializer built once, not per request.

Flask builds a new `URLSafeTimedSerializer` each time it opens or saves a session: once for
every request, which opens the session even without a cookie, and again for every save. When
the sticker page's CSRF token lived in the session it was saved on nearly every view, and
building serializers was a tenth of serving a kept sticker page (docs/benchmarks.md); the
resident forms now have a cookie of their own (`dispatch.resident.csrf`), but every request
still opens the session, and staff pages, receipts and flashed messages save it. A serializer
holds only its keys and settings, so one per set of keys serves every thread.
"""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class SignedCookieSessions(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._serializers: dict[tuple[object, ...], URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if keys not in self._serializers:
            self._serializers[keys] = super().get_signing_serializer(app)
        return self._serializers[keys]
