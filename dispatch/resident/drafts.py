"""Photos kept across a form error, so a resident without JavaScript never chooses them twice.

A browser never fills a file field again, so a message form shown again (a mistyped phone, a
keyword to confirm) would lose the photos that already crossed a slow line. Instead the
re-encoded photos are kept as `PhotoDraft` rows, tied to the browser's form token (a keyed hash
of it: only the browser that sent them can see or use them), and named by hidden fields in the
form shown again. Sending the form takes them into the report. They last `LIFETIME`; older
drafts are deleted whenever drafts are written, and never read.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from dispatch.db import db
from dispatch.models import PhotoDraft
from dispatch.resident.photos import Reencoded

LIFETIME = timedelta(hours=1)


def owner(form_token: str) -> str:
    """The keyed hash that ties drafts to one browser's form token."""
    key = hashlib.sha256(b"linli photo drafts" + str(current_app.secret_key).encode()).digest()
    return hmac.new(key, form_token.encode(), hashlib.sha256).hexdigest()


def keep(form_token: str, photos: Iterable[Reencoded], now: datetime) -> list[int]:
    """Store photos for this form token (commits); returns their ids. Expired drafts go."""
    forget_expired(now)
    rows = [PhotoDraft(owner=owner(form_token), content_type=p.content_type, data=p.data,
                       width=p.width, height=p.height, thumbnail=p.thumbnail, created_at=now)
            for p in photos]
    db.session.add_all(rows)
    db.session.commit()
    return [row.id for row in rows]


def find(form_token: str, ids: Iterable[int], now: datetime) -> list[PhotoDraft]:
    """This form token's live drafts among `ids`, in the order given."""
    wanted = list(dict.fromkeys(ids))[:10]
    if not wanted or not form_token:
        return []
    rows = {row.id: row for row in db.session.scalars(
        sa.select(PhotoDraft).where(PhotoDraft.id.in_(wanted),
                                    PhotoDraft.owner == owner(form_token),
                                    PhotoDraft.created_at > now - LIFETIME))}
    return [rows[i] for i in wanted if i in rows]


def as_reencoded(rows: Iterable[PhotoDraft]) -> list[Reencoded]:
    return [Reencoded(r.data, r.width, r.height, r.thumbnail, r.content_type) for r in rows]


def drop(rows: Iterable[PhotoDraft]) -> None:
    """Delete drafts taken into a report, in the caller's transaction."""
    for row in rows:
        db.session.delete(row)


def forget_expired(now: datetime) -> int:
    """Delete every draft past its lifetime (in the caller's transaction); how many."""
    result = db.session.execute(sa.delete(PhotoDraft).where(
        PhotoDraft.created_at <= now - LIFETIME))
    return int(getattr(result, "rowcount", 0) or 0)
