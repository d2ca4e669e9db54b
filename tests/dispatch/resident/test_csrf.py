"""The resident forms' CSRF check: a signed double-submit cookie, and no Flask session for it."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, url_for

from dispatch.db import db
from dispatch.models import Callback, Case, CaseStatus, Report
from dispatch.resident import csrf, pages
from tests.dispatch.resident.helpers import (
    Resident,
    csrf_token,
    receipt_token,
    walk_to_resolved,
)
from tests.factories import add_staff, login

PLACE = "TS-B1-U1"


def _filed(app: Flask) -> tuple[int, int]:
    """How many reports and cases there are."""
    with app.app_context():
        return (db.session.scalar(sa.select(sa.func.count(Report.id))),
                db.session.scalar(sa.select(sa.func.count(Case.id))))


def _cookies_set(response: Any) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def _token(response: Any) -> str:
    return csrf_token(response.get_data(as_text=True))


def test_a_first_visit_sets_only_the_form_cookie_and_its_token_files_a_report(
        app: Flask, stickers: dict[str, str]) -> None:
    code = stickers[PLACE]
    first, second = app.test_client(), app.test_client()
    rendered = first.get(f"/s/{code}")
    assert len(app.extensions["linli.pages"].local) == 1  # the second visitor gets it kept
    kept = second.get(f"/s/{code}")
    for page in (rendered, kept):
        [cookie] = _cookies_set(page)  # no `session=` cookie beside it
        assert cookie.startswith(f"{csrf.COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        assert "Expires" not in cookie and "Max-Age" not in cookie  # a browser session
        assert "Secure" not in cookie  # plain HTTP here
        assert "Cookie" in page.vary  # no shared cache may hand one visitor's token to another
    for visitor, page in ((first, rendered), (second, kept)):
        receipt_token(visitor.post(f"/s/{code}/message",
                                   data={"csrf_token": _token(page), "category": "repair"}))
    assert _filed(app) == (2, 1)


@pytest.mark.parametrize("how", ["without the cookie", "without the token",
                                 "with another visitor's token", "with a tampered token"])
def test_a_message_without_its_own_valid_token_is_refused_keeping_the_text(
        app: Flask, stickers: dict[str, str], how: str) -> None:
    code = stickers[PLACE]
    visitor = app.test_client()
    token: str | None = _token(visitor.get(f"/s/{code}"))
    if how == "without the cookie":
        visitor.delete_cookie(csrf.COOKIE)
    elif how == "without the token":
        token = None
    elif how == "with another visitor's token":
        token = _token(app.test_client().get(f"/s/{code}"))
    else:
        token = ("B" if token[0] == "A" else "A") + token[1:]
    data = {"category": "repair", "text": "楼道灯不亮", "csrf_token": token}
    response = visitor.post(f"/s/{code}/message",
                            data={k: v for k, v in data.items() if v is not None})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "提交没有成功" in html and ">楼道灯不亮</textarea>" in html
    assert 'value="repair" checked' in html
    assert _filed(app) == (0, 0)


def test_a_refused_message_goes_through_when_sent_again_from_the_page_it_came_back_on(
        app: Flask, stickers: dict[str, str]) -> None:
    code = stickers[PLACE]
    visitor = app.test_client()
    token = _token(visitor.get(f"/s/{code}"))
    visitor.delete_cookie(csrf.COOKIE)  # as when the browser was closed and opened again
    refused = visitor.post(f"/s/{code}/message", data={"csrf_token": token,
                                                       "category": "repair", "text": "灯不亮"})
    assert refused.status_code == 400
    assert [c.split("=")[0] for c in _cookies_set(refused)] == [csrf.COOKIE]
    again = visitor.post(f"/s/{code}/message", data={"csrf_token": _token(refused),
                                                     "category": "repair", "text": "灯不亮"})
    receipt_token(again)
    assert _filed(app) == (1, 1)


def test_kept_and_fresh_pages_carry_each_visitors_own_token_good_only_with_its_cookie(
        app: Flask, stickers: dict[str, str]) -> None:
    code = stickers[PLACE]
    first, second = app.test_client(), app.test_client()
    fresh = first.get(f"/s/{code}").get_data(as_text=True)
    kept = second.get(f"/s/{code}").get_data(as_text=True)
    mine, theirs = csrf_token(fresh), csrf_token(kept)
    assert mine != theirs and theirs not in fresh and mine not in kept
    assert kept.replace(theirs, mine) == fresh  # the same page; only the token is their own
    pages.clear(app)
    again = first.get(f"/s/{code}")
    assert _token(again) == mine and _cookies_set(again) == []  # a returning visitor's own
    assert first.post(f"/s/{code}/message",
                      data={"csrf_token": theirs, "category": "repair"}).status_code == 400
    assert second.post(f"/s/{code}/message",
                       data={"csrf_token": mine, "category": "repair"}).status_code == 400
    assert _filed(app) == (0, 0)
    receipt_token(first.post(f"/s/{code}/message", data={"csrf_token": mine,
                                                        "category": "repair"}))
    receipt_token(second.post(f"/s/{code}/message", data={"csrf_token": theirs,
                                                         "category": "repair"}))


def test_over_https_the_form_cookie_is_host_prefixed_and_secure(
        app: Flask, stickers: dict[str, str]) -> None:
    code = stickers[PLACE]
    visitor = app.test_client()
    page = visitor.get(f"https://linli.test/s/{code}")
    [cookie] = _cookies_set(page)
    assert cookie.startswith(f"{csrf.SECURE_COOKIE}=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/" in cookie and "Domain" not in cookie  # what `__Host-` requires
    # No Referer, as from a real browser: the resident pages ask for none to be sent.
    receipt_token(visitor.post(f"https://linli.test/s/{code}/message",
                               data={"csrf_token": _token(page), "category": "repair"}))


def test_over_https_a_form_cookie_without_the_host_prefix_does_not_count(
        app: Flask, stickers: dict[str, str]) -> None:
    """A sibling subdomain could have set a plain cookie; over HTTPS only `__Host-` counts."""
    code = stickers[PLACE]
    visitor = app.test_client()
    token = _token(visitor.get(f"http://linli.test/s/{code}"))
    assert visitor.get_cookie(csrf.COOKIE, domain="linli.test") is not None
    refused = visitor.post(f"https://linli.test/s/{code}/message",
                           data={"csrf_token": token, "category": "repair"})
    assert refused.status_code == 400
    assert _filed(app) == (0, 0)


def test_a_malformed_form_cookie_is_replaced_with_a_good_one(
        app: Flask, stickers: dict[str, str]) -> None:
    code = stickers[PLACE]
    visitor = app.test_client()
    visitor.set_cookie(csrf.COOKIE, "forged")
    page = visitor.get(f"/s/{code}")
    [cookie] = _cookies_set(page)
    assert cookie.startswith(f"{csrf.COOKIE}=") and "forged" not in cookie
    receipt_token(visitor.post(f"/s/{code}/message",
                               data={"csrf_token": _token(page), "category": "repair"}))


def test_me_too_is_refused_without_this_visitors_token(app: Flask, resident: Resident) -> None:
    code = resident.stickers["TS-B1-U1-E1"]
    token = receipt_token(resident.message())
    with app.app_context():
        case_id = db.session.scalar(sa.select(Case.id).where(Case.public_token == token))
    stranger = app.test_client()
    stranger.get(f"/s/{code}")
    for data in ({}, {"csrf_token": resident.token()}):
        assert stranger.post(f"/s/{code}/me-too/{case_id}", data=data).status_code == 400
    assert _filed(app) == (1, 1)
    assert resident.me_too(case_id).status_code == 303
    assert _filed(app) == (2, 1)


def test_the_callback_is_refused_without_this_visitors_token(app: Flask,
                                                             resident: Resident) -> None:
    token = receipt_token(resident.message())
    stranger = app.test_client()
    assert _cookies_set(stranger.get(f"/c/{token}")) == []  # no form yet, so no cookie
    with app.app_context():
        walk_to_resolved(db.session.scalar(sa.select(Case.id)
                                           .where(Case.public_token == token)))
    status_page = stranger.get(f"/c/{token}")
    for data in ({"solved": "no"}, {"solved": "no", "csrf_token": resident.token()}):
        refused = stranger.post(f"/c/{token}/callback", data=data)
        assert refused.status_code == 400
        assert 'name="solved" value="no" checked' in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Callback.id))) == 0
        assert db.session.scalar(sa.select(Case.status)) == CaseStatus.RESOLVED
    answered = stranger.post(f"/c/{token}/callback",
                             data={"solved": "yes", "csrf_token": _token(status_page)})
    assert answered.status_code == 303


def test_every_resident_post_needs_the_form_token(app: Flask) -> None:
    """Whatever the resident pages take by POST, now or later, is checked before its view."""
    posts = [rule for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("resident.") and "POST" in (rule.methods or ())]
    assert {rule.endpoint for rule in posts} >= {"resident.message", "resident.me_too",
                                                 "resident.callback"}
    values = {"code": "ZZZZZZZZZZZZ", "case_id": 1, "token": "x" * 22}
    for rule in posts:
        with app.test_request_context():
            path = url_for(rule.endpoint, **{name: values[name] for name in rule.arguments})
        # Without the check the view would answer 404: no such sticker or case.
        assert app.test_client().post(path).status_code == 400, path


def test_turning_csrf_off_turns_this_check_off_too(app: Flask,
                                                   stickers: dict[str, str]) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    receipt_token(app.test_client().post(f"/s/{stickers[PLACE]}/message",
                                         data={"category": "repair"}))


def test_staff_forms_keep_flask_wtf_and_refuse_a_resident_form_token(
        app: Flask, client: Any, stickers: dict[str, str]) -> None:
    add_staff(app)
    token = _token(client.get(f"/s/{stickers[PLACE]}"))
    refused = client.post("/staff/login", data={"username": "admin",
                                                "password": "correct horse",
                                                "csrf_token": token})
    assert refused.status_code == 400
    assert login(client).status_code == 302  # with Flask-WTF's own token from its page
