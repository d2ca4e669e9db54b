"""What a committed transaction changed, told to whoever keeps copies of it.

The sticker pages are kept rendered (`dispatch.resident.pages`) because a district's scans
cannot each afford a dozen queries; a kept page must go as soon as what it shows changes,
not after a guess at how long it stays true. The writers do not know who keeps what, and
must not: the lifecycle would otherwise import the resident face. So every transaction is
watched here instead, at the level of the session:

- a flush notes what it wrote, as tags: the place of every case it wrote (`place(id)`), or
  `EVERYTHING` for what every page may show (communities, places, stickers, members, their
  responsibilities, notices);
- a flush that wrote the rest of a duty roster (shifts, overrides, contacts), which no page
  shows but the ladder reads (`dispatch.roster.kept`), notes `ROSTER`;
- a bulk UPDATE or DELETE of one of those tables notes `EVERYTHING` (or `ROSTER`), unless its
  writer says which tags it touched (`execution_options(changes=(...))`, with `touch` after it);
- once the transaction commits, the tags go to the app's listeners
  (`app.extensions["linli.changes"]`); a rollback forgets them.

A change written past the session (raw SQL by hand) is not seen here; kept pages then last
their maximum age (`RESIDENT_PAGE_CACHE_SECONDS`), or until `flask pages clear`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from sqlalchemy.orm import ORMExecuteState, Session

from dispatch.db import on_transaction_end
from dispatch.models import (
    Case,
    Community,
    Contact,
    DutyOverride,
    Member,
    Notice,
    Place,
    Responsibility,
    Shift,
    Sticker,
)

log = logging.getLogger(__name__)

EVERYTHING = "*"
#: What any kept page may show besides its place's cases: any change here is `EVERYTHING`.
SHOWN_EVERYWHERE = (Community, Place, Sticker, Member, Responsibility, Notice)
#: The rest of what decides who is asked and how (the members and their responsibilities
#: are `EVERYTHING` already): a change here is `ROSTER`, which kept pages ignore.
ROSTER = "roster"
ROSTER_ONLY = (Shift, DutyOverride, Contact)
#: The tag a bulk statement on each watched table notes when its writer says nothing.
_TABLES = {**{model.__table__.name: EVERYTHING for model in (*SHOWN_EVERYWHERE, Case)},
           **{model.__table__.name: ROSTER for model in ROSTER_ONLY}}
_PENDING = "linli.changes.pending"
_LISTENERS = "linli.changes"

Listener = Callable[[frozenset[str]], object]


def place(place_id: int) -> str:
    """The tag of one place's own cases."""
    return f"place:{place_id}"


def place_of(tag: str) -> int | None:
    """The place id of a `place` tag (None for `EVERYTHING` or anything else)."""
    kind, _, number = tag.partition(":")
    return int(number) if kind == "place" and number.isdigit() else None


def touch(session: Session, tags: Iterable[str]) -> None:
    """Note tags a statement changed that the flush cannot see (a bulk UPDATE's)."""
    session.info.setdefault(_PENDING, set()).update(tags)


def listen(app: Flask, listener: Listener) -> None:
    """Call `listener(tags)` after every commit (in this process) that changed something."""
    app.extensions.setdefault(_LISTENERS, []).append(listener)
    if not sa.event.contains(Session, "after_flush", _note_flush):
        sa.event.listen(Session, "after_flush", _note_flush)
        sa.event.listen(Session, "do_orm_execute", _note_bulk)
    on_transaction_end(_announce, _forget)


def _note_flush(session: Session, context: Any) -> None:
    tags: set[str] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Case):
            # Its place now and, had it moved, before (the page it left shows it no more).
            history = sa.inspect(obj).attrs.place_id.history
            tags.update(place(p) for p in (*history.added, *history.deleted, obj.place_id)
                        if p is not None)
        elif isinstance(obj, SHOWN_EVERYWHERE):
            tags.add(EVERYTHING)
        elif isinstance(obj, ROSTER_ONLY):
            tags.add(ROSTER)
    if tags:
        touch(session, tags)


def _note_bulk(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    tag = _TABLES.get(getattr(table, "name", None) or "")
    if tag is None:
        return
    told = state.execution_options.get("changes")
    touch(state.session, [tag] if told is None else told)


def _announce(session: Session) -> None:
    # After the whole transaction only (`on_transaction_end`): told at a savepoint's release,
    # a process re-reading a roster before the commit would keep the old rows as fresh.
    tags = frozenset(session.info.pop(_PENDING, ()))
    if not tags or not has_app_context():
        return
    for listener in current_app.extensions.get(_LISTENERS, ()):
        try:
            listener(tags)
        except Exception:  # the commit stands; a listener's failure is its own to repair
            log.exception("change listener failed")


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
