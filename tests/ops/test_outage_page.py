"""The resident page during a database outage, and `flask reconcile`, without servers."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy.exc as sa_exc
from flask import Flask

from dispatch.resident import board


def _database_down(*args: Any, **kwargs: Any) -> None:
    raise sa_exc.OperationalError("SELECT 1", {}, Exception("connection refused"))


def test_the_sticker_page_answers_503_with_the_hotline_when_the_database_is_down(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(board, "sticker_for_page", _database_down)  # the page's one lookup
    page = app.test_client().get("/s/ABCD1234EFGH")
    text = page.get_data(as_text=True)
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "5"
    assert "12345" in text and "96333" in text and "Traceback" not in text


def test_a_message_posted_while_the_database_is_down_gets_the_same_page(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    monkeypatch.setattr(board, "sticker_for_page", _database_down)  # the message's one lookup
    page = app.test_client().post("/s/ABCD1234EFGH/message", data={"category": "elevator"})
    assert page.status_code == 503 and "12345" in page.get_data(as_text=True)


def test_reconcile_on_an_empty_database_finds_nothing_and_exits_0(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    assert "0 problem(s), 0 note(s)." in result.output
