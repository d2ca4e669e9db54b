"""What SQL an app sends: for tests that say a page asks the database nothing, or how it asks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Flask

from dispatch.db import db


@contextmanager
def sent(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the app sends while the block runs, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)
