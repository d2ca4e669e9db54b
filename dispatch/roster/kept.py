"""Who may answer, kept in each worker process: a community's responsibilities with their
members' shifts, overrides and contacts, for the ladder step.

Every step asks who is responsible at its rung and who of them is on duty now
(`routing.responders`, `duty.on_duty`). Read from the database that is four statements per
step (responsibilities with their members, contacts, shifts, overrides), the same rows for
every case of a community until somebody edits its roster; in a storm of reports they are a
good part of what a step costs. So a worker keeps them, per community, and decides the duty
from the kept rows with the step's own clock, exactly as from fresh ones: what is kept is the
roster, never whether someone is on duty.

A kept roster must never outlive a change to it, in any process: a member taken off duty in
the console must not be paged by a worker a minute later. Every committed change to members,
responsibilities, shifts, overrides, contacts, places or communities is seen by
`dispatch.changes` (tags `EVERYTHING` and `ROSTER`); the process that committed it sets a new
random token in Redis, and a step reads the token (one Redis round trip) before it uses what
is kept: a different token, and the process reads the rosters again. The token is read before
the database, so a change that lands while a roster is being read leaves that copy stale on
arrival, never kept as fresh; a token Redis has lost is a new random one, never an old one.

Only with Redis, and only where `responders(..., kept=True)` asks (the step): without Redis a
change made by another process (a `flask` command beside the embedded runner) could not be
heard, and the console reads the roster it is editing, uncommitted changes included, from its
own session. When Redis does not answer, or a token could not be set after a change (the
next change or step tries again), steps read the database as before. What no commit announces
(SQL typed by hand) is seen within `MAX_AGE_SECONDS`, when a kept roster is read again anyway.

The forking worker class (`flask worker --worker-class fork`) runs each job in a process of
its own, which would read a whole roster for one step: it reads the database as before.

Kept rows are detached from any session; a step gets its own persistent copies of the few
members it asks (`Session.merge(load=False)`: no statement), so what it writes (outbox rows
naming them) is exactly what it wrote before.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Sequence

import sqlalchemy as sa
from flask import Flask, current_app
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.orm import Session, contains_eager, selectinload

from dispatch import changes, jobs
from dispatch.db import db
from dispatch.models import DutyOverride, Member, Responsibility

log = logging.getLogger(__name__)

TOKEN_KEY = "linli:roster:token"
#: A kept roster is read again after this long even if no change was announced: the bound
#: for what no commit announces (SQL typed by hand, an announcement Redis lost).
MAX_AGE_SECONDS = 60.0
#: Each kept roster is read again at a random age between this share of `MAX_AGE_SECONDS` and
#: all of it. Rosters a burst of steps read together would otherwise all be read again at
#: once a minute later, in the middle of the burst: a storm across a district's 20
#: communities had both workers re-read all 20 in the same second, and fell behind for good.
MAX_AGE_SPREAD = 0.5
#: Tags that change what is kept here.
TAGS = frozenset({changes.EVERYTHING, changes.ROSTER})
_EXTENSION = "linli.roster"


class KeptRosters:
    """One process's kept rosters, valid while the shared token is the one they were read
    under."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.lock = threading.Lock()
        self.token: bytes | None = None
        #: community id → its responsibilities, and when they are to be read again (monotonic)
        self.communities: dict[int, tuple[list[Responsibility], float]] = {}
        #: A change whose token Redis did not take: no kept roster is used until it has.
        self.unsent = False

    def responsibilities(self, community_id: int) -> list[Responsibility] | None:
        """The community's responsibilities as now committed (detached, members loaded with
        their shifts, overrides and contacts); None when they cannot be vouched for."""
        token = self._current_token()
        if token is None:
            return None
        with self.lock:
            if token != self.token:
                self.communities.clear()
                self.token = token
            kept = self.communities.get(community_id)
        if kept is not None and time.monotonic() < kept[1]:
            return kept[0]
        stale_at = time.monotonic() + MAX_AGE_SECONDS * random.uniform(MAX_AGE_SPREAD, 1.0)
        rows = _read(community_id)
        with self.lock:
            if self.token == token:  # else a change came meanwhile: used once, not kept
                self.communities[community_id] = (rows, stale_at)
        return rows

    def changed(self, tags: frozenset[str]) -> None:
        """A commit of this process changed `tags`: forget, and tell every process."""
        if not tags & TAGS:
            return
        with self.lock:
            self.communities.clear()
            self.token = None
            self.unsent = True
        self._send()

    def _send(self) -> bool:
        try:
            self.redis.set(TOKEN_KEY, secrets.token_hex(8))
        except RedisError as exc:
            log.warning("Redis away (%s): kept rosters unused until it takes the change", exc)
            return False
        with self.lock:
            self.unsent = False
        return True

    def _current_token(self) -> bytes | None:
        """The shared token; a new random one if Redis holds none; None if Redis is away or
        a change of this process is not announced yet."""
        try:
            if self.unsent and not self._send():
                return None
            token = self.redis.get(TOKEN_KEY)
            if token is None:
                self.redis.set(TOKEN_KEY, secrets.token_hex(8), nx=True)
                token = self.redis.get(TOKEN_KEY)
        except RedisError:
            return None
        return token if isinstance(token, bytes) else None


def responsibilities(community_id: int) -> list[Responsibility] | None:
    """The kept responsibilities of a community (see `KeptRosters.responsibilities`), or None
    when there are none to trust here (no Redis, Redis away) or to keep (a forking worker's
    horse, gone after its one job): read the database then."""
    kept: KeptRosters | None = current_app.extensions.get(_EXTENSION)
    if kept is None or jobs.forked_for_one_job():
        return None
    return kept.responsibilities(community_id)


def attach(members: Sequence[Member]) -> list[Member]:
    """The step session's own copies of kept members, with their shifts, overrides and
    contacts, without a statement."""
    return [db.session.merge(member, load=False) for member in members]


def _read(community_id: int) -> list[Responsibility]:
    """A community's responsibilities, members and all, read in a session of their own and
    detached from it (the step's session must not own shared objects)."""
    with Session(db.engine, expire_on_commit=False) as session:
        rows = list(session.scalars(_everyone(), {"community": community_id}).unique())
        session.expunge_all()
    return rows


def _everyone() -> sa.Select[Responsibility]:
    """What `duty.on_duty` and the step read of a community's responders (a stand-in's own
    overrides and contacts too: `duty` asks the stand-in when the member is on leave)."""
    stand_in = selectinload(Member.overrides).joinedload(DutyOverride.stand_in)
    return (sa.select(Responsibility)
            .join(Responsibility.member)
            .where(Member.community_id == sa.bindparam("community"))
            .options(contains_eager(Responsibility.member).selectinload(Member.shifts),
                     contains_eager(Responsibility.member).selectinload(Member.contacts),
                     contains_eager(Responsibility.member).options(
                         stand_in.selectinload(Member.overrides),
                         stand_in.selectinload(Member.contacts),
                         stand_in.selectinload(Member.shifts))))


def init_app(app: Flask) -> None:
    """Keep rosters in this app's processes when it has Redis (see the module's docstring)."""
    redis_url = app.config.get("REDIS_URL")
    if not redis_url:
        return
    kept = KeptRosters(Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2))
    app.extensions[_EXTENSION] = kept
    changes.listen(app, kept.changed)
