"""The resident forms' CSRF check: a signed double-submit cookie, not Flask-WTF's session token.

Why: Flask-WTF's `generate_csrf` puts a random value in Flask's signed session and signs a
timed token, and the session cookie is then serialized and signed as well: two itsdangerous
signatures, JSON and zlib for every new visitor, half the CPU of serving a kept sticker page
(docs/benchmarks.md). Here a new visitor costs one random value and one HMAC, and the sticker
page leaves Flask's session alone.

How (OWASP's "signed double-submit cookie"): the browser keeps a random value in a cookie, and
every form carries the HMAC of that value under a key only the server has. A POST is taken
only when its form token is the HMAC of the cookie sent beside it. A forging site can make a
browser send the cookie but cannot read it, so it cannot put the matching token in its form;
nor can it toss in a cookie of its own with a token to match, because it cannot compute the
HMAC. Over HTTPS the cookie is named `__Host-…`, which browsers take only from this very host,
Secure and for path /, so a sibling subdomain cannot toss one in either; SameSite=Lax keeps
the cookie off cross-site POSTs to begin with.

That is as safe as Flask-WTF was for these forms. They have no login, so there is no session
or user to bind a token to: Flask-WTF's value in the session was just as anonymous as this
cookie. No time limit is needed, because a token is only good beside its own cookie, and the
cookie lasts as long as the browser session, as Flask's session cookie did (no lasting
identifier on an anonymous resident's phone; a lost cookie costs one more press of the button,
with everything typed kept). And no Referer check: the resident pages send no referrer (status
links are secrets), so their POSTs carry none, and Flask-WTF's Referer check over HTTPS could
not pass for them.

Staff and member pages keep Flask-WTF's `CSRFProtect`; `app.py` exempts only this blueprint.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import re
import secrets
from typing import NoReturn

from flask import Response, after_this_request, current_app, g, request
from flask_wtf.csrf import CSRFError

log = logging.getLogger(__name__)

#: The form field, the same name Flask-WTF uses, so every form posts the same thing.
FIELD = "csrf_token"
COOKIE = "linli_form"
#: Over HTTPS: accepted by browsers only from this host, with Secure and Path=/.
SECURE_COOKIE = "__Host-linli_form"
#: 16 random bytes, urlsafe base64 without padding: what `secrets.token_urlsafe(16)` makes.
_VALUE = re.compile(r"[A-Za-z0-9_-]{22}")
#: HMAC-SHA256 cut to 128 bits: a forger must guess it, one POST per guess.
TOKEN_BYTES = 16
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token() -> str:
    """This visitor's form token: the HMAC of their form cookie (made if missing).

    Worked out once per request, however many forms the page has.
    """
    if "resident_form_token" not in g:
        g.resident_form_token = _sign(_visitor_value())
    token: str = g.resident_form_token
    return token


def check() -> None:
    """Refuse a POST whose form token is not the HMAC of the form cookie sent beside it.

    Raises Flask-WTF's `CSRFError`, so the resident views' handler shows the form again with
    everything typed. `WTF_CSRF_ENABLED = False` turns the check off, as it does Flask-WTF's.
    """
    if request.method in _SAFE_METHODS or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    value = _cookie_value()
    sent = request.form.get(FIELD, "")
    if value is None:
        _refuse("The form cookie is missing.")
    elif not sent:
        _refuse("The form token is missing.")
    elif not hmac.compare_digest(sent.encode(), _sign(value).encode()):
        _refuse("The form token does not match the form cookie.")


def _refuse(reason: str) -> NoReturn:
    log.info("resident form refused: %s", reason)
    raise CSRFError(reason)


def _visitor_value() -> str:
    """The value in the visitor's form cookie; a new one, set on the response, if none came."""
    seen = _cookie_value()
    value = seen or secrets.token_urlsafe(16)

    @after_this_request
    def set_cookie(response: Response) -> Response:
        response.vary.add("Cookie")  # the page carries this visitor's own token: never share it
        if seen is None:
            response.set_cookie(_cookie_name(), value, path="/", httponly=True,
                                samesite="Lax", secure=request.is_secure)
        return response

    return value


def _cookie_name() -> str:
    return SECURE_COOKIE if request.is_secure else COOKIE


def _cookie_value() -> str | None:
    """The visitor's form cookie, if there is a well-formed one."""
    return well_formed(request.cookies.get(_cookie_name()))


def well_formed(value: str | None) -> str | None:
    """A form cookie's value if it is one this module could have made, else None."""
    return value if value is not None and _VALUE.fullmatch(value) else None


def _sign(value: str) -> str:
    return sign(current_app.secret_key, value)


def sign(secret: str | bytes | None, value: str) -> str:
    """The form token of a form cookie's value under the app's SECRET_KEY."""
    if not secret:  # the config always makes one (`dispatch.config`)
        raise RuntimeError("SECRET_KEY is not set")
    digest = hmac.digest(_key(secret), value.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest[:TOKEN_BYTES]).rstrip(b"=").decode()


@functools.lru_cache(maxsize=4)
def _key(secret: str | bytes) -> bytes:
    """The forms' own key, derived from SECRET_KEY once per key: an HMAC made with SECRET_KEY
    for anything else is never a form token."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.digest(raw, b"linli resident forms", hashlib.sha256)
