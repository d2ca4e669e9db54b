"""The sticker page, rendered once per sticker and language and then served from memory.

Every scan of a sticker shows the same page: the place, who answers there, notices and the
problems already reported. Building it costs a dozen queries and a template render, and a
broken lift at rush hour is hundreds of scans of one sticker in a minute, so each web process
keeps the rendered page for `RESIDENT_PAGE_CACHE_SECONDS` (default 5; 0 turns it off).

Staleness is bounded both ways: anything this process commits clears its pages at once (the
resident who just filed a report, staff posting a notice), and what other processes change —
a worker marking a case accepted, another web process — shows within those seconds.

The one part of the page that belongs to the visitor is the forms' token
(`dispatch.resident.csrf`): the page is kept cut where the token was, and each visitor's own
token is put back in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import sqlalchemy as sa
from cachetools import TTLCache
from flask import Flask, Response, current_app, has_app_context, session
from sqlalchemy.orm import Session, SessionTransaction

from dispatch.models import Sticker
from dispatch.resident import csrf, i18n
from qr import codes

DEFAULT_SECONDS = 5.0
#: Pages kept per process (about 10 KB each): a district's busiest stickers, not all of them.
MAX_PAGES = 2_000
_CHANGED = "linli.pages.changed"


@dataclass(frozen=True, slots=True)
class Page:
    """A rendered sticker page, encoded and cut where the visitor's token goes (`parts`), and
    the sticker whose visits it counts. Joining bytes is forty times cheaper than replacing in
    and encoding 10 KB of text on every view."""

    sticker_id: int
    parts: tuple[bytes, ...]


class PageCache:
    """One web process's kept pages, by (sticker code, language); its threads share it."""

    def __init__(self, seconds: float) -> None:
        self.pages: TTLCache[tuple[str, str], Page] = TTLCache(MAX_PAGES, seconds)
        self.lock = threading.Lock()


def plain_visit() -> bool:
    """Nothing is waiting for this visitor only (a flashed message is shown once, to one)."""
    return "_flashes" not in session


def cached(seen: str) -> Page | None:
    """The kept page for a scanned code in the visitor's language, if there is one."""
    cache = _cache()
    code = codes.normalise(seen)
    if cache is None or code is None:
        return None
    with cache.lock:
        return cache.pages.get((code, i18n.language()))


def keep(sticker: Sticker, html: str) -> None:
    """Keep a freshly rendered page (rendered for a `plain_visit`)."""
    cache = _cache()
    if cache is None:
        return
    page = Page(sticker.id, tuple(html.encode().split(csrf.token().encode())))
    with cache.lock:
        cache.pages[(sticker.code, i18n.language())] = page


def serve(page: Page) -> Response:
    """The kept page with this visitor's own form token in every form."""
    return Response(csrf.token().encode().join(page.parts), mimetype="text/html")


def clear(app: Flask) -> None:
    cache = app.extensions.get("linli.pages")
    if cache is not None:
        with cache.lock:
            cache.pages.clear()


def _cache() -> PageCache | None:
    return current_app.extensions.get("linli.pages")


def _note_change(db_session: Session, context: object) -> None:
    db_session.info[_CHANGED] = True


def _clear_after_commit(db_session: Session) -> None:
    if db_session.info.pop(_CHANGED, False) and has_app_context():
        clear(current_app)


def _forget_change(db_session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the whole transaction, not a savepoint inside it
        db_session.info.pop(_CHANGED, None)


def init_app(app: Flask) -> None:
    app.config.setdefault("RESIDENT_PAGE_CACHE_SECONDS", DEFAULT_SECONDS)
    seconds = float(app.config["RESIDENT_PAGE_CACHE_SECONDS"])
    if seconds > 0:
        app.extensions["linli.pages"] = PageCache(seconds)
    if not sa.event.contains(Session, "after_flush", _note_change):
        sa.event.listen(Session, "after_flush", _note_change)
        sa.event.listen(Session, "after_commit", _clear_after_commit)
        sa.event.listen(Session, "after_soft_rollback", _forget_change)
