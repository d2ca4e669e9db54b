"""The sticker page, rendered once and then served as kept until what it shows changes.

Every scan of a sticker shows the same page: the place, who answers there, notices and the
problems already reported. Building it costs queries and a template render, and a district
has thousands of stickers, each scanned a few times a day — almost every scan would be a
render if each web process kept only what it had rendered itself. So pages are kept twice:

- **shared**, in Redis when `REDIS_URL` is set: one copy per sticker and language for every
  web process, compressed (a district's pages fit in a few tens of MB);
- **in each process**, the busiest `LOCAL_PAGES` of them, for the storm at one sticker (a
  lift stuck at rush hour) that must not pay even a Redis round trip per view.

A kept page is dropped by what changes it, not by a timer (`dispatch.changes`): a commit that
wrote a case drops its place's pages; one that wrote what every page may show (roster,
places, stickers, notices) drops them all. In Redis each tag has a random token, and a page
is kept with the tokens it was rendered under: a change sets a new token, and a page whose
tokens are not the current ones is not served. Tokens are read *before* the database, so a
change that lands during a render leaves that render stale on arrival, never kept as fresh.
A token Redis has lost is a new random one, never a reused number, so a Redis restart cannot
revive an old page. Each process hears the changes on a Redis channel and drops its own
copies; while it cannot hear them (Redis down, reconnecting) it serves none of its own.

Without Redis (the embedded set-up: one process) a commit drops this process's pages
directly; what other processes (a `flask` command) change shows within
`RESIDENT_PAGE_CACHE_SECONDS` (default 5), the only bound it has. With Redis, that setting
is the backstop for what no commit announced (SQL typed by hand): 24 hours by default.
A page also ends when its notices start or end, and at local midnight while it says "周一
08:30" of a case waiting for working hours (`expires`). 0 turns keeping off.

A page in Redis is kept under the release that drew it (`release_of`: a fingerprint of the
templates, the translations and the code): Redis outlives a deploy, and a page drawn by the
code before it would otherwise be served for up to a day after it, with the old words and
the old form. Old releases' pages are left to expire.

The one part of the page that belongs to the visitor is the forms' token
(`dispatch.resident.csrf`): the page is kept cut where the token was, and each visitor's own
token is put back in.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import secrets
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask, Response, current_app, session
from redis import Redis
from redis.exceptions import RedisError

from dispatch import changes, clock
from dispatch.models import Sticker
from dispatch.resident import csrf, i18n
from qr import codes

log = logging.getLogger(__name__)

LOCAL_SECONDS = 5.0  # without Redis
SHARED_SECONDS = 24 * 3600.0  # with Redis
#: Pages kept in each process (about 10 KB each): a district's busiest stickers.
LOCAL_PAGES = 2_000
#: What a process remembers of sticker → place (ids only): enough for a district's stickers.
PLACES_KNOWN = 50_000
CHANNEL = "linli:pages:changed"
_PREFIX = "linli:pages:"
_CUT = b"\0"
#: Set in the WSGI environ when `dispatch.resident.fast` looked for the kept page and found
#: none: the view renders at once instead of asking Redis the same question again.
LOOKED = "linli.pages.looked"  # between the parts of a kept page, where each visitor's token goes


@dataclass(frozen=True, slots=True)
class Page:
    """A rendered sticker page, encoded and cut where the visitor's token goes (`parts`), and
    the sticker whose visits it counts. Joining bytes is forty times cheaper than replacing in
    and encoding 10 KB of text on every view."""

    sticker_id: int
    parts: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class _Kept:
    page: Page
    place_id: int
    expires: datetime
    epoch: tuple[int, int]  # (everything, this place) when it was rendered or fetched


@dataclass(frozen=True, slots=True)
class Begun:
    """What a render starts from, read before the database: this process's epoch of
    everything and, with Redis, the shared token of everything."""

    epoch: int
    token: bytes | None


@dataclass(frozen=True, slots=True)
class Stamp:
    """A render's epochs and tokens: everything's from `Begun`, its place's read once the
    place was known and before any of its cases was read."""

    epoch: tuple[int, int]
    tokens: tuple[bytes, bytes] | None


class PageCache:
    """One app's kept pages: its own copies, and the shared ones when it has Redis."""

    def __init__(self, max_age: float, redis: Redis | None, release: str = "") -> None:
        self.max_age = timedelta(seconds=max_age)
        self.redis = redis
        self.release = release
        self.lock = threading.Lock()
        self.local: OrderedDict[tuple[str, str], _Kept] = OrderedDict()
        self.places: OrderedDict[str, int] = OrderedDict()  # sticker code → place id
        self.everything = 0
        self.place_epochs: dict[int, int] = {}
        self.unsent: set[str] = set()  # tags Redis did not take; sent with the next change
        # Without Redis nothing else announces; with it, the listener must be up first.
        self.hearing = redis is None
        self._listener_pid: int | None = None

    # -- reading ----------------------------------------------------------------------------

    def get(self, code: str, language: str) -> Page | None:
        now = clock.now()
        with self.lock:
            kept = self.local.get((code, language))
            if kept is not None and self.hearing and kept.expires > now \
                    and kept.epoch == self._epoch(kept.place_id):
                self.local.move_to_end((code, language))
                return kept.page
            place_id = self.places.get(code)
            epoch = self._epoch(place_id) if place_id is not None else None
        if self.redis is None:
            return None
        self._ensure_listener()
        tags = (_tag_key(changes.EVERYTHING), _tag_key(changes.place(place_id or 0)))
        try:
            if place_id is None or epoch is None:
                # First sight of this code here: its page says its place, then its tokens.
                raw = _bytes(self.redis.get(self._page_key(code, language)))
                place_id = _place_in(raw)
                if place_id is None:
                    return None
                with self.lock:
                    _remember(self.places, code, place_id, PLACES_KNOWN)
                    epoch = self._epoch(place_id)
                tags = (tags[0], _tag_key(changes.place(place_id)))
                everything, here = self.redis.mget(tags)
            else:
                everything, here, stored = self.redis.mget(*tags, self._page_key(code, language))
                raw = _bytes(stored)
        except RedisError:
            return None
        found = _unpack(raw, (_bytes(everything), _bytes(here)), now)
        if found is None:
            return None
        self._keep_local(code, language, _Kept(found[0], place_id, found[1], epoch))
        return found[0]

    def begin(self) -> Begun:
        with self.lock:
            epoch = self.everything
        token = None
        if self.redis is not None:
            self._ensure_listener()
            try:
                token = _token(self.redis, changes.EVERYTHING)
            except RedisError:
                token = None
        return Begun(epoch, token)

    def stamp(self, begun: Begun, place_id: int) -> Stamp:
        with self.lock:
            epoch = (begun.epoch, self.place_epochs.get(place_id, 0))
        tokens = None
        if self.redis is not None and begun.token is not None:
            try:
                tokens = (begun.token, _token(self.redis, changes.place(place_id)))
            except RedisError:
                tokens = None
        return Stamp(epoch, tokens)

    # -- keeping ----------------------------------------------------------------------------

    def put(self, sticker: Sticker, language: str, page: Page, stamp: Stamp,
            expires: datetime) -> None:
        """Keep a page rendered from `stamp` (stale on arrival if anything changed since)."""
        expires = min(expires, clock.now() + self.max_age)
        with self.lock:
            _remember(self.places, sticker.code, sticker.place_id, PLACES_KNOWN)
        self._keep_local(sticker.code, language, _Kept(page, sticker.place_id, expires,
                                                        stamp.epoch))
        if self.redis is None or stamp.tokens is None:
            return
        self._ensure_listener()
        seconds = int((expires - clock.now()).total_seconds())
        if seconds <= 0:
            return
        with contextlib.suppress(RedisError):  # served from this process until it is back
            self.redis.set(self._page_key(sticker.code, language),
                           _pack(page, sticker.place_id, stamp.tokens, expires), ex=seconds)

    def _page_key(self, code: str, language: str) -> str:
        return f"{_PREFIX}page:{self.release}:{code}:{language}"

    def _keep_local(self, code: str, language: str, kept: _Kept) -> None:
        with self.lock:
            if kept.epoch != self._epoch(kept.place_id):
                return  # something changed while it was rendered or fetched
            self.local[(code, language)] = kept
            self.local.move_to_end((code, language))
            while len(self.local) > LOCAL_PAGES:
                self.local.popitem(last=False)

    # -- changes ----------------------------------------------------------------------------

    def changed(self, tags: frozenset[str]) -> bool:
        """A commit of this process changed `tags`: drop own copies, then tell the others.
        False if Redis did not take it (the tags go with the next change this process makes)."""
        self.drop(tags)
        if self.redis is None:
            return True
        with self.lock:
            tags, self.unsent = tags | self.unsent, set()
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for tag in tags:
                    pipe.set(_tag_key(tag), secrets.token_hex(8))
                pipe.publish(CHANNEL, ",".join(sorted(tags)))
                pipe.execute()
        except RedisError:
            log.warning("Redis away: %d page changes are sent with the next one", len(tags))
            with self.lock:
                self.unsent |= tags
            return False
        return True

    def drop(self, tags: frozenset[str] | set[str]) -> None:
        """Forget this process's copies of what `tags` name."""
        with self.lock:
            if changes.EVERYTHING in tags:
                self.everything += 1
                self.local.clear()
                return
            for tag in tags:
                place_id = changes.place_of(tag)
                if place_id is not None:
                    self.place_epochs[place_id] = self.place_epochs.get(place_id, 0) + 1

    def _epoch(self, place_id: int) -> tuple[int, int]:
        return self.everything, self.place_epochs.get(place_id, 0)

    # -- hearing other processes ------------------------------------------------------------

    def _ensure_listener(self) -> None:
        """One listening thread per process (started after a fork, not before it)."""
        if self._listener_pid == os.getpid():
            return
        with self.lock:
            if self._listener_pid == os.getpid():
                return
            self._listener_pid = os.getpid()
            self.hearing = False
        threading.Thread(target=self._listen, name="linli-pages", daemon=True).start()

    def _listen(self) -> None:
        assert self.redis is not None
        while True:
            try:
                pubsub = self.redis.pubsub()
                pubsub.subscribe(CHANNEL)
                for message in pubsub.listen():  # type: ignore[no-untyped-call]
                    if message["type"] == "subscribe":
                        # Whatever was announced while not subscribed is unknown: start over.
                        self.drop({changes.EVERYTHING})
                        self.hearing = True
                    elif message["type"] == "message":
                        self.drop(set(message["data"].decode().split(",")))
            except (RedisError, OSError, ValueError):
                pass
            self.hearing = False
            self.drop({changes.EVERYTHING})
            time.sleep(1)


def _tag_key(tag: str) -> str:
    return f"{_PREFIX}tag:{tag}"


def _token(redis: Redis, tag: str) -> bytes:
    """A tag's token; one Redis does not hold (never set, or lost) gets a new random one."""
    key = _tag_key(tag)
    token = _bytes(redis.get(key))
    if token is None:
        redis.set(key, secrets.token_hex(8), nx=True)
        token = _bytes(redis.get(key))
    return token or b""


def _bytes(value: bytes | str | None) -> bytes | None:
    """What a Redis client without `decode_responses` returns, typed as such."""
    return value.encode() if isinstance(value, str) else value


def _pack(page: Page, place_id: int, tokens: tuple[bytes, bytes], expires: datetime) -> bytes:
    head = b"|".join((tokens[0], tokens[1], b"%d" % expires.timestamp(), b"%d" % page.sticker_id,
                      b"%d" % place_id))
    return head + b"|" + zlib.compress(_CUT.join(page.parts), 1)


def _place_in(raw: bytes | None) -> int | None:
    fields = raw.split(b"|", 5) if raw is not None else []
    return int(fields[4]) if len(fields) == 6 and fields[4].isdigit() else None


def _unpack(raw: bytes | None, tokens: tuple[bytes | None, bytes | None],
            now: datetime) -> tuple[Page, datetime] | None:
    """The kept page, if it was rendered under `tokens` (the current ones) and still holds."""
    if raw is None or None in tokens:
        return None
    try:
        everything, here, expires_at, sticker_id, _place, body = raw.split(b"|", 5)
        expires = datetime.fromtimestamp(int(expires_at), tz=now.tzinfo)
        if (everything, here) != tokens or expires <= now:
            return None
        return Page(int(sticker_id), tuple(zlib.decompress(body).split(_CUT))), expires
    except (ValueError, zlib.error):
        return None


def _remember(mapping: OrderedDict[str, int], key: str, value: int, limit: int) -> None:
    mapping[key] = value
    mapping.move_to_end(key)
    while len(mapping) > limit:
        mapping.popitem(last=False)


# --- the views' side ------------------------------------------------------------------------

def plain_visit() -> bool:
    """Nothing is waiting for this visitor only (a flashed message is shown once, to one)."""
    return "_flashes" not in session


def cached(seen: str) -> Page | None:
    """The kept page for a scanned code in the visitor's language, if there is one."""
    cache = _cache()
    code = codes.normalise(seen)
    if cache is None or code is None:
        return None
    return cache.get(code, i18n.language())


def begin() -> Begun | None:
    """Taken before a render reads the database (None when pages are not kept)."""
    cache = _cache()
    return cache.begin() if cache is not None else None


def stamp(begun: Begun | None, place_id: int) -> Stamp | None:
    """Taken once the render knows its place, before it reads the place's cases."""
    cache = _cache()
    if cache is None or begun is None:
        return None
    return cache.stamp(begun, place_id)


def keep(sticker: Sticker, html: str, stamp: Stamp | None, expires: datetime) -> None:
    """Keep a freshly rendered page (rendered for a `plain_visit`)."""
    cache = _cache()
    if cache is None or stamp is None:
        return
    page = Page(sticker.id, tuple(html.encode().split(csrf.token().encode())))
    cache.put(sticker, i18n.language(), page, stamp, expires)


def serve(page: Page) -> Response:
    """The kept page with this visitor's own form token in every form."""
    return Response(csrf.token().encode().join(page.parts), mimetype="text/html")


def clear(app: Flask) -> bool:
    """Forget every kept page, here and (with Redis) in every process; False if Redis did not
    take it, and the other processes keep theirs."""
    cache = app.extensions.get("linli.pages")
    return cache is None or cache.changed(frozenset({changes.EVERYTHING}))


#: What draws a sticker page, under the app's root: a change to any of them is a new release.
DRAWN_BY = ("templates/**/*.html", "dispatch/**/*.py", "dispatch/translations/**/*.po",
            "qr/**/*.py")


@functools.cache
def release_of(root: str) -> str:
    """A fingerprint of the files under `root` that draw a page (`DRAWN_BY`): their paths and
    contents, so the same code on every server agrees without being told a version, and a
    checkout whose files changed is another release. Read once per process (~160 files, ~8 ms)."""
    digest = hashlib.blake2b(digest_size=8)
    base = Path(root)
    for pattern in DRAWN_BY:
        for path in sorted(base.glob(pattern)):
            digest.update(path.relative_to(base).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _cache() -> PageCache | None:
    return current_app.extensions.get("linli.pages")


def init_app(app: Flask) -> None:
    redis_url = app.config.get("REDIS_URL")
    default = SHARED_SECONDS if redis_url else LOCAL_SECONDS
    seconds = app.config.get("RESIDENT_PAGE_CACHE_SECONDS")
    seconds = default if seconds is None else float(seconds)
    app.config["RESIDENT_PAGE_CACHE_SECONDS"] = seconds
    if seconds <= 0:
        return
    redis = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) \
        if redis_url else None
    cache = PageCache(seconds, redis, release_of(app.root_path) if redis else "")
    app.extensions["linli.pages"] = cache
    changes.listen(app, cache.changed)
