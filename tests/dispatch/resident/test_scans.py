"""Sticker visits are written in batches by a background thread, and kept while the database
cannot take them."""

from __future__ import annotations

import time

import psycopg
import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import clock
from dispatch.db import db
from dispatch.models import Scan
from dispatch.resident import scans
from tests.dispatch.resident.helpers import Resident


def _count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(Scan.id)))


def test_visits_are_written_in_the_background_then_the_thread_ends(
        app: Flask, resident: Resident) -> None:
    # The batch waits until the test says its interval is up: with the default second, a slow
    # first render on a loaded machine let the thread write before the check below.
    app.config["SCAN_FLUSH_SECONDS"] = 60
    for _ in range(3):
        resident.scan("TS-B1-U1")
    writer = scans.writer(app)
    assert writer.thread is not None and _count(app) == 0  # nothing written on the request
    writer.wake.set()  # the interval is up
    deadline = time.monotonic() + 10
    while (_count(app) < 3 or writer.thread is not None) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _count(app) == 3
    assert writer.thread is None  # idle: no thread left polling


def test_visits_wait_in_memory_while_the_database_refuses_them(app: Flask,
                                                               resident: Resident) -> None:
    app.config["SCAN_FLUSH_SECONDS"] = 60  # only this test writes
    resident.scan("TS-B1-U1")
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE scan RENAME TO scan_away"))
    try:
        # SQLite's error comes through SQLAlchemy; PostgreSQL's COPY is psycopg's own.
        with pytest.raises((sa.exc.DBAPIError, psycopg.Error)):
            scans.flush(app)
        resident.scan("TS-B1-U1")
    finally:  # the table back whatever happens: later tests share this schema
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE scan_away RENAME TO scan"))
    assert scans.flush(app) == 2
    assert _count(app) == 2


@pytest.mark.postgres
def test_on_postgresql_visits_are_copied_in_with_their_times(pg_app: Flask) -> None:
    writer = scans.writer(pg_app)
    with pg_app.app_context():
        before = clock.now()
        writer.record(None, "ABCDEFGHJKMN", "unknown")
        writer.record(None, "x" * 80, "revoked")
        assert scans.flush(pg_app) == 2
        rows = db.session.execute(sa.select(Scan.code_seen, Scan.action, Scan.at)
                                  .order_by(Scan.id)).all()
    assert [(code, action) for code, action, _ in rows] == [
        ("ABCDEFGHJKMN", "unknown"), ("x" * 64, "revoked")]
    assert all(before <= at <= clock.now() for _, _, at in rows)
