""""您在这里的反映": the cases this browser reported, remembered in a cookie of its own.

The cookie holds the resident's own status-link tokens (the secrets the receipt already gave
this browser), nothing else: no id, no phone, nothing the server must trust. The sticker page
lists those still open at its place, so a resident who scans again finds their case. Not the
client-address hash: behind a carrier's shared address that would show a stranger's cases.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import request
from werkzeug.wrappers import Response

from dispatch.db import db
from dispatch.models import Case, Place, Report
from dispatch.outbox import residents

COOKIE = "linli_mine"
KEPT = 8  # the newest tokens kept; older cases are found by number and phone
MAX_AGE = 90 * 24 * 3600
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,43}")


def tokens() -> list[str]:
    """The tokens in this browser's cookie, newest first."""
    raw = request.cookies.get(COOKIE, "")
    return [t for t in raw.split(".") if _TOKEN.fullmatch(t)][:KEPT]


def remember(response: Response, token: str) -> None:
    kept = [token, *[t for t in tokens() if t != token]][:KEPT]
    response.set_cookie(COOKIE, ".".join(kept), max_age=MAX_AGE, path="/", httponly=True,
                        samesite="Lax", secure=request.is_secure)


def open_here(place: Place) -> list[tuple[Case, str]]:
    """This browser's open cases at `place`, each with the token of its own link."""
    held = tokens()
    if not held:
        return []
    found: dict[int, tuple[Case, str]] = {}
    reports = db.session.scalars(sa.select(Report).where(Report.public_token.in_(held)))
    for report in reports:
        case = report.case
        if case.place_id == place.id and case.is_open:
            found.setdefault(case.id, (case, residents.link_token(case, report)))
    cases = db.session.scalars(sa.select(Case).where(Case.public_token.in_(held),
                                                     Case.place_id == place.id))
    for case in cases:
        if case.is_open:
            found.setdefault(case.id, (case, case.public_token))
    return sorted(found.values(), key=lambda pair: pair[0].id)
