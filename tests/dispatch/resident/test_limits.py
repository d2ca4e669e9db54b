"""Rate limits: per client address, per sticker, per call-back phone; misses cannot enumerate."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch.db import db
from dispatch.models import Report
from dispatch.resident import pages
from dispatch.resident.limits import limiter
from tests.dispatch.resident.helpers import Resident


def _from(app: Flask, stickers: dict[str, str], address: str) -> Resident:
    """A resident's browser behind another client address."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Resident(client, stickers)


def _reports(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(Report.id)))


def _friendly_429(response: Any, hotline: str = "0752-1234567") -> None:
    html = response.get_data(as_text=True)
    assert response.status_code == 429
    assert "操作太频繁了" in html and f'href="tel:{hotline}"' in html


def test_unknown_codes_are_limited_and_then_nothing_answers(app: Flask,
                                                            resident: Resident) -> None:
    app.config["RESIDENT_LIMIT_MISSES"] = "3 per minute"
    assert resident.scan("TS-B1-U1").status_code == 200  # hits do not count
    pages.clear(app)  # looked up again, not served as kept
    for guess in ("AAAAAAAAAAAA", "BBBBBBBBBBBB", "CCCCCCCCCCCC"):
        assert resident.client.get(f"/S/{guess}").status_code == 404
    _friendly_429(resident.client.get("/S/DDDDDDDDDDDD"), hotline="12345")
    # once spent, a real code answers 429 too: guessing teaches nothing
    assert resident.scan("TS-B1-U1").status_code == 429
    assert resident.client.get(f"/c/{'A' * 22}").status_code == 429
    # another address is not affected
    other = _from(app, resident.stickers, "10.0.0.9")
    assert other.scan("TS-B1-U1").status_code == 200
    # A page kept from someone's scan is served before any limit: reaching it takes guessing
    # its code right, which the limit could not make any less likely.
    assert resident.scan("TS-B1-U1").status_code == 200
    assert resident.scan("TS-B2-U1").status_code == 429  # not kept: looked up, so limited


def test_submissions_are_limited_per_address(app: Flask, resident: Resident) -> None:
    app.config["RESIDENT_LIMIT_REPORTS_IP"] = "2 per hour"
    assert resident.message(place="TS-B1-U1", category="repair").status_code == 303
    assert resident.message(place="TS-B1-U1", category="noise", phone="bad").status_code == 422
    _friendly_429(resident.message(place="TS-B1-U1", category="other"))
    assert _reports(app) == 1


def test_filed_reports_are_limited_per_sticker(app: Flask, resident: Resident) -> None:
    app.config["RESIDENT_LIMIT_REPORTS_STICKER"] = "2 per hour"
    for n in range(2):
        neighbour = _from(app, resident.stickers, f"10.0.1.{n}")
        assert neighbour.message(category="elevator").status_code == 303
    late = _from(app, resident.stickers, "10.0.1.99")
    assert late.message(category="elevator", phone="bad").status_code == 429
    _friendly_429(late.message(category="elevator"))
    assert late.message(place="TS-B1-U1", category="repair").status_code == 303
    assert _reports(app) == 3


def test_validation_errors_do_not_use_up_a_stickers_budget(app: Flask,
                                                           resident: Resident) -> None:
    app.config["RESIDENT_LIMIT_REPORTS_STICKER"] = "1 per hour"
    for _ in range(3):
        assert resident.message(phone="bad").status_code == 422
    assert resident.message().status_code == 303


def test_filed_reports_are_limited_per_call_back_phone(app: Flask, resident: Resident) -> None:
    app.config["RESIDENT_LIMIT_REPORTS_PHONE"] = "1 per hour"
    first = _from(app, resident.stickers, "10.0.2.1")
    assert first.message(place="TS-B1-U1", category="repair",
                         phone="13800138000").status_code == 303
    second = _from(app, resident.stickers, "10.0.2.2")
    _friendly_429(second.message(place="TS-B2-U1", category="noise", phone="+86 138 0013 8000"))
    assert second.message(place="TS-B2-U1", category="noise", phone="").status_code == 303
    assert second.message(place="TS-B2-U1", category="other",
                          phone="13900139000").status_code == 303


def test_call_taps_are_limited_but_the_429_page_still_gives_the_number(
        app: Flask, resident: Resident) -> None:
    app.config["RESIDENT_LIMIT_CALLS_STICKER"] = "1 per hour"
    code = resident.stickers["TS-B1-U1"]
    assert resident.client.get(f"/s/{code}/call").status_code == 302
    _friendly_429(resident.client.get(f"/s/{code}/call"))


@pytest.mark.redis
def test_limits_are_kept_in_redis_when_redis_url_is_set(redis_url: str, app: Flask,
                                                        stickers: dict[str, str]) -> None:
    from redis import Redis

    from app import create_app
    from tests.conftest import _dispose, base_config

    def worker() -> Flask:
        """Another web worker: its own app and limiter storage, the same Redis."""
        return create_app(base_config(
            SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
            SQLALCHEMY_ENGINE_OPTIONS=app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
            REDIS_URL=redis_url, RESIDENT_LIMIT_MISSES="2 per minute"))

    first = worker()
    second = None
    try:
        assert type(limiter.storage).__name__ == "RedisStorage"
        client = first.test_client()
        for _ in range(2):
            assert client.get("/S/AAAAAAAAAAAA").status_code == 404
        assert any(b"resident-misses" in key for key in Redis.from_url(redis_url).keys("*"))
        second = worker()
        assert second.test_client().get("/S/AAAAAAAAAAAA").status_code == 429
        assert second.test_client().get(f"/s/{stickers['TS-B1-U1']}").status_code == 429
    finally:
        for built in (first, second):
            if built is not None:
                _dispose(built)
        limiter.init_app(app)  # back to this test's in-memory storage


def test_a_call_back_phone_without_digits_is_refused_quietly_not_logged_as_an_error(
        app: Flask, resident: Resident, caplog: pytest.LogCaptureFixture) -> None:
    """A typo in the phone field is the resident's everyday mistake: the form says so (422);
    the per-phone limit has no phone to count and is not asked, so nothing is logged as an
    error (the limiter logs one per limit when its key is empty)."""
    response = resident.message(text="楼道灯坏了", phone="abc")
    assert response.status_code == 422
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
