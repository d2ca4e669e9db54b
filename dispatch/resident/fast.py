"""A kept sticker page answered before Flask: the storm at one sticker.

When a lift traps someone at rush hour, one sticker is scanned hundreds of times a minute,
and every answer is the same kept page with the visitor's own form token in it
(`dispatch.resident.pages`). Through Flask each of those answers also ran every request
hook the app has — the console's CSRF check and staff login, the limiter's headers, the
session, the security headers — which together cost twice what serving the page does.
This WSGI layer answers such a plain visit itself and hands every other request to Flask
untouched: a method other than GET, any path but `/s/<code>` or `/S/<code>`, a visitor with
a session (a flashed message may wait for them) or with cases of their own here
(`dispatch.resident.mine`), a code that is not well-formed, a page not kept.

What it sends is what Flask would: the same body, the same headers (the security headers of
`dispatch.security`, `Referrer-Policy: no-referrer`, `Vary: Cookie`, the form cookie for a
new visitor); `tests/dispatch/resident/test_fast.py` compares the two answers header by
header. The visit is counted as Flask's path counts it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import dump_cookie, parse_cookie

from dispatch import security
from dispatch.resident import csrf, i18n, mine, pages, scans
from qr import codes

PATH = re.compile(r"/[sS]/([^/]+)")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class KeptPages:
    """WSGI middleware: kept sticker pages for plain visits, everything else to `inner`."""

    def __init__(self, app: Flask, inner: WSGIApp) -> None:
        self.app = app
        self.inner = inner
        self.session_cookie = str(app.config.get("SESSION_COOKIE_NAME") or "session")
        # The headers every answer carries, fixed at start (`security.headers`).
        self.plain = [("Content-Type", "text/html; charset=utf-8"),
                      *security.FIXED_HEADERS, ("Referrer-Policy", "no-referrer"),
                      ("Vary", "Cookie")]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET":
            found = PATH.fullmatch(environ.get("PATH_INFO", ""))
            if found is not None:
                answer = self._kept(environ, found.group(1))
                if answer is not None:
                    status, headers, body = answer
                    start_response(status, headers)
                    return [body]
        return self.inner(environ, start_response)

    def _kept(self, environ: dict[str, Any], seen: str
              ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        cookies = parse_cookie(environ) if environ.get("HTTP_COOKIE") else {}
        if self.session_cookie in cookies or cookies.get(mine.COOKIE):
            return None
        cache: pages.PageCache | None = self.app.extensions.get("linli.pages")
        code = codes.normalise(seen)
        if cache is None or code is None:
            return None
        chosen = cookies.get(i18n.COOKIE, "")
        page = cache.get(code, chosen if chosen in i18n.LANGUAGES else i18n.DEFAULT)
        if page is None:
            environ[pages.LOOKED] = True  # Flask's view need not look again
            return None
        secure = environ.get("wsgi.url_scheme") == "https"
        name = csrf.SECURE_COOKIE if secure else csrf.COOKIE
        value = csrf.well_formed(cookies.get(name))
        headers = list(self.plain)
        if secure:
            headers.append(("Strict-Transport-Security", security.HSTS))
        if value is None:
            value = secrets.token_urlsafe(16)
            headers.append(("Set-Cookie", dump_cookie(name, value, path="/", httponly=True,
                                                      samesite="Lax", secure=secure)))
        body = csrf.sign(self.app.secret_key, value).encode().join(page.parts)
        headers.append(("Content-Length", str(len(body))))
        scans.writer(self.app).record(page.sticker_id, seen, "view")
        return "200 OK", headers, body
