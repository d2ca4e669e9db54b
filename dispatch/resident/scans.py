"""Sticker visits (`Scan` rows), written in batches off the resident's request.

A scan is a statistic, not a case: nobody waits for it, and the page a resident opens in a
lift must not wait for a database commit to count it. Each web process keeps the visits of
the last `SCAN_FLUSH_SECONDS` in memory and a background thread writes them in one statement.
The thread exists only while there is something to write and the process writes what it
holds when it exits normally, so a process killed outright (SIGKILL, OOM) loses at most the
last second or so of visits — never a report, which is always committed before its answer.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from dispatch import clock, security
from dispatch.db import db
from dispatch.models import Scan

log = logging.getLogger(__name__)

DEFAULT_FLUSH_SECONDS = 1.0
#: While the database is down visits wait in memory, up to this many (then the oldest go).
MAX_PENDING = 20_000


class ScanWriter:
    """The visits one app has seen and not yet written, and the thread that writes them."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.pending: list[tuple[Any, ...]] = []  # in the order of `COLUMNS`
        self.lock = threading.Lock()
        #: Held while a batch is written: a flush waits for the background thread's batch in
        #: flight, so "flushed" means "in the database" (exit, tests reading `Scan`).
        self.writing = threading.Lock()
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()
        self.closing = False

    def record(self, sticker_id: int | None, code_seen: str, action: str) -> None:
        with self.lock:
            # A code as typed may hold anything; PostgreSQL refuses NUL in text.
            self.pending.append((sticker_id, security.clean(code_seen)[:64],
                                 security.clean(action)[:16], clock.now()))
            if self.thread is None and not self.closing:
                self.thread = threading.Thread(target=self._loop, name="linli-scans",
                                               daemon=True)
                self.thread.start()

    def flush(self) -> int:
        """Write what is pending now, on the caller's thread, after any batch the background
        thread is writing; returns how many rows this call wrote."""
        with self.writing:
            return self._write_pending()

    def _write_pending(self) -> int:
        with self.lock:
            rows, self.pending = self.pending, []
        if not rows:
            return 0
        try:
            with self.app.app_context(), db.engine.begin() as connection:
                _insert(connection, rows)
        except sa.exc.DataError:
            # One row the database refuses must not hold back the others for ever.
            return self._one_by_one(rows)
        except Exception:
            # The database is down: keep the visits for the next round rather than drop them.
            with self.lock:
                self.pending[:0] = rows
                del self.pending[:-MAX_PENDING]
            raise
        return len(rows)

    def _one_by_one(self, rows: list[tuple[Any, ...]]) -> int:
        """Write each row alone; drop (and log) only those the database refuses outright."""
        written = 0
        with self.app.app_context():
            for row in rows:
                try:
                    with db.engine.begin() as connection:
                        connection.execute(Scan.__table__.insert(),
                                           [dict(zip(COLUMNS, row, strict=True))])
                    written += 1
                except sa.exc.DataError as exc:
                    log.error("scan dropped, the database refuses it: %r (%s)", row[1],
                              (str(exc.orig).splitlines() or ["?"])[0])
        return written

    def close(self) -> None:
        """Stop the thread and write what is left (the app is going away)."""
        with self.lock:
            self.closing, thread = True, self.thread
        self.wake.set()
        if thread is not None:
            thread.join(timeout=10)
        self.flush()

    def _loop(self) -> None:
        interval = float(self.app.config["SCAN_FLUSH_SECONDS"])
        while True:
            self.wake.wait(interval)
            self.wake.clear()
            if self.closing:
                return
            try:
                self.flush()
            except Exception as exc:  # the database is down: one line a second, not a trace
                first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
                log.warning("could not write %d scans (%s); retrying", len(self.pending),
                            first_line)
            with self.lock:
                if not self.pending:
                    self.thread = None
                    return


COLUMNS = ("sticker_id", "code_seen", "action", "at")


def _insert(connection: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
    """One statement for the batch: COPY on PostgreSQL, where it costs the web process a fifth
    of what an INSERT's parameters do per row (docs/benchmarks.md); an INSERT elsewhere."""
    if connection.dialect.name != "postgresql":
        connection.execute(Scan.__table__.insert(), [dict(zip(COLUMNS, row, strict=True))
                                                     for row in rows])
        return
    sql = f"COPY {Scan.__table__.name} ({', '.join(COLUMNS)}) FROM STDIN"
    driver = connection.connection.driver_connection
    assert driver is not None  # None only once the connection is closed
    with driver.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


_writers: weakref.WeakSet[ScanWriter] = weakref.WeakSet()


def record(sticker_id: int | None, code_seen: str, action: str) -> None:
    """Count a visit to a sticker URL (`view`, `call`, or why the code was unusable)."""
    writer(current_app).record(sticker_id, code_seen, action)


def flush(app: Flask) -> int:
    """Write the app's pending visits now (at exit, and in tests before reading `Scan`)."""
    return writer(app).flush()


def writer(app: Flask) -> ScanWriter:
    found: ScanWriter = app.extensions["linli.scans"]  # by init_app
    return found


@atexit.register
def _flush_all() -> None:
    for each in list(_writers):
        try:
            each.flush()
        except Exception:
            log.exception("scans lost at exit")


def init_app(app: Flask) -> None:
    app.config.setdefault("SCAN_FLUSH_SECONDS", DEFAULT_FLUSH_SECONDS)
    app.extensions["linli.scans"] = new = ScanWriter(app)
    _writers.add(new)
