"""When the database is down: resident pages answer a clear 503 with the hotline, not a trace.

A resident scanning a sticker during a database outage (a failover, a restart for an upgrade)
must still learn whom to call. The page cannot look the community up, so every web process
remembers the hotline of each sticker and status link it has served (`HOTLINES`, filled when a
resident page renders) and falls back to `RESIDENT_FALLBACK_HOTLINE` (12345) for the others.
The lift emergency line 96333 is on the page whatever happens.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import sqlalchemy.exc as sa_exc
from flask import Flask, current_app, render_template, request, template_rendered

from dispatch.db import db
from dispatch.resident import board

log = logging.getLogger(__name__)

#: Seconds a client (or a proxy) should wait before trying again.
RETRY_AFTER = 5
#: How many sticker codes and status links each process remembers the hotline of.
REMEMBERED = 20_000

#: (kind, key) → (hotline, tel: link), most recently served last.
HOTLINES: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()


#: Errors that mean the database cannot be reached (psycopg raises OperationalError when the
#: server is down or restarting, InterfaceError on a closed connection; the pool's TimeoutError
#: when every connection is stuck), as opposed to a mistake in a query.
OUTAGES = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


def _request_key() -> tuple[str, str] | None:
    args = request.view_args or {}
    if "code" in args:
        return "code", str(args["code"]).upper()
    if "token" in args:
        return "token", str(args["token"])
    return None


def _remember(sender: Flask, template: Any, context: dict[str, Any], **extra: Any) -> None:
    """Keep the hotline a resident page showed, for the outage page of the same request key."""
    if not context.get("hotline_known") or request.blueprint != "resident":
        return
    key = _request_key()
    if key is None:
        return
    HOTLINES[key] = (str(context["hotline"]), str(context["hotline_tel"]))
    HOTLINES.move_to_end(key)
    while len(HOTLINES) > REMEMBERED:
        HOTLINES.popitem(last=False)


def unavailable(error: Exception) -> Any:
    """The 503 answer: the resident page names the hotline; other pages say it briefly."""
    log.error("database unavailable for %s %s: %s", request.method, request.path,
              str(error).splitlines()[0] if str(error) else type(error).__name__)
    try:
        db.session.rollback()
    except Exception:  # the connection is already gone; the session is removed at teardown
        log.debug("rollback after an outage failed", exc_info=True)
    headers = {"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"}
    if request.blueprint != "resident":
        return ("服务暂时不可用，请稍后再试。Service temporarily unavailable.\n", 503,
                {**headers, "Content-Type": "text/plain; charset=utf-8"})
    key = _request_key()
    known = HOTLINES.get(key) if key else None
    if known is not None:
        hotline, tel = known
    else:
        hotline = str(current_app.config.get("RESIDENT_FALLBACK_HOTLINE", "12345"))
        tel = board.hotline_tel(hotline)
    page = render_template("resident/unavailable.html", hotline=hotline, hotline_tel=tel,
                           hotline_known=known is not None)
    return page, 503, headers


def init_app(app: Flask) -> None:
    """Answer database outages with a 503 page instead of a 500."""
    for error in OUTAGES:
        app.register_error_handler(error, unavailable)
    template_rendered.connect(_remember, app)
