"""A kept sticker page is answered before Flask for a plain visit, with exactly what Flask
would have sent: the same page, the same headers, a form cookie and token of the visitor's
own, and the visit counted."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch.db import db
from dispatch.models import Scan
from dispatch.resident import scans
from tests.dispatch.resident.helpers import csrf_token
from tests.sql import sent

PLACE = "TS-B1-U1"


def _headers(response: Any) -> dict[str, str]:
    """Header names and values, the form cookie's value left out (it is each visitor's)."""
    seen = {}
    for name, value in response.headers.items():
        if name == "Set-Cookie":
            cookie_name, _, rest = value.partition("=")
            value = f"{cookie_name}=…; {rest.partition(';')[2].strip()}"
        seen[name] = value
    return seen


@pytest.mark.parametrize("base_url", ["http://localhost", "https://localhost"])
def test_the_answer_before_flask_is_the_answer_flask_gives(
        app: Flask, stickers: dict[str, str], base_url: str) -> None:
    path = f"/s/{stickers[PLACE]}"
    app.test_client().get(path, base_url=base_url)  # rendered and kept
    with sent(app) as sql:
        early = app.test_client().get(path, base_url=base_url)
    assert sql == []
    through_flask = app.test_client()
    # A session cookie sends the visit through Flask (a flashed message may wait in it).
    through_flask.set_cookie("session", "x", domain="localhost")
    late = through_flask.get(path, base_url=base_url)
    assert early.status_code == late.status_code == 200
    assert _headers(early) == _headers(late)
    assert ("__Host-linli_form" in early.headers["Set-Cookie"]) == base_url.startswith("https")
    page, flasks = early.get_data(as_text=True), late.get_data(as_text=True)
    assert page.replace(csrf_token(page), csrf_token(flasks)) == flasks
    assert csrf_token(page) != csrf_token(flasks)


def test_a_returning_visitor_keeps_their_cookie_and_token(app: Flask,
                                                          stickers: dict[str, str]) -> None:
    path = f"/s/{stickers[PLACE]}"
    visitor = app.test_client()
    first = visitor.get(path)
    again = visitor.get(path)
    assert "Set-Cookie" in first.headers and "Set-Cookie" not in again.headers
    assert csrf_token(first.get_data(as_text=True)) == csrf_token(again.get_data(as_text=True))


def test_every_answer_before_flask_is_counted_as_a_visit(app: Flask,
                                                         stickers: dict[str, str]) -> None:
    path = f"/S/{stickers[PLACE]}"
    for _ in range(3):
        assert app.test_client().get(path).status_code == 200
    scans.flush(app)
    with app.app_context():
        rows = db.session.execute(sa.select(Scan.code_seen, Scan.action)).all()
    assert rows == [(stickers[PLACE], "view")] * 3


def test_what_is_not_a_plain_visit_to_a_kept_page_goes_to_flask(
        app: Flask, stickers: dict[str, str]) -> None:
    code = stickers[PLACE]
    kept = app.test_client().get(f"/s/{code}").get_data(as_text=True)
    for path in (f"/s/{code}/", f"/s/{code}X", f"/s/{code}/call/x", "/s/"):
        answer = app.test_client().get(path)
        assert answer.status_code in (301, 404), path  # Flask's redirect or helpful page
        assert answer.get_data(as_text=True) != kept
    assert app.test_client().post(f"/s/{code}").status_code == 405


def test_a_page_not_kept_is_looked_for_once(app: Flask, stickers: dict[str, str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cache = app.extensions["linli.pages"]
    asked: list[tuple[str, str]] = []
    look = cache.get

    def counted(code: str, language: str) -> Any:
        asked.append((code, language))
        return look(code, language)

    monkeypatch.setattr(cache, "get", counted)
    assert app.test_client().get(f"/s/{stickers[PLACE]}").status_code == 200  # rendered
    assert asked == [(stickers[PLACE], "zh")]  # by the layer before Flask, not by the view too
