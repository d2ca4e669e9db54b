"""Photos and voice notes kept across a form error, so a resident never sends them twice.

A browser never fills a file field again, so a message form shown again (a mistyped phone, a
keyword to confirm) would lose the photos that already crossed a slow line. Instead the
re-encoded photos are kept as `PhotoDraft` rows, tied to the browser's form token (a keyed hash
of it: only the browser that sent them can see or use them), and named by hidden fields in the
form shown again. Sending the form takes them into the report. They last `LIFETIME`; older
drafts are deleted whenever drafts are written, and never read.

A voice note (`dispatch.resident.voice`) is kept the same way, as a `VoiceNote` with no report
yet: the page's script sends the recording once, and a form that comes back (a mistyped phone,
a recording too long) plays it from here instead of asking for it again.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from dispatch.db import db
from dispatch.models import PhotoDraft, VoiceNote
from dispatch.resident.photos import Reencoded
from dispatch.resident.voice import Recording

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


def as_recording(row: VoiceNote) -> Recording:
    return Recording(row.data, row.content_type)


def drop(rows: Iterable[PhotoDraft | VoiceNote]) -> None:
    """Delete drafts taken into a report, in the caller's transaction."""
    for row in rows:
        db.session.delete(row)


def keep_voice(form_token: str, recording: Recording, now: datetime) -> int:
    """Store a voice note for this form token (commits); returns its id."""
    forget_expired(now)
    row = VoiceNote(owner=owner(form_token), content_type=recording.content_type,
                    data=recording.data, size=len(recording.data), created_at=now)
    db.session.add(row)
    db.session.commit()
    return row.id


def find_voice(form_token: str, note_id: int | None, now: datetime) -> VoiceNote | None:
    """This form token's live voice draft `note_id` (not yet filed with a report), if any."""
    if note_id is None or not form_token:
        return None
    return db.session.scalar(sa.select(VoiceNote).where(
        VoiceNote.id == note_id, VoiceNote.report_id.is_(None),
        VoiceNote.owner == owner(form_token), VoiceNote.created_at > now - LIFETIME))


def forget_expired(now: datetime) -> int:
    """Delete every draft past its lifetime (in the caller's transaction); how many."""
    result = db.session.execute(sa.delete(PhotoDraft).where(
        PhotoDraft.created_at <= now - LIFETIME))
    voices = db.session.execute(sa.delete(VoiceNote).where(
        VoiceNote.report_id.is_(None), VoiceNote.created_at <= now - LIFETIME))
    return sum(int(getattr(r, "rowcount", 0) or 0) for r in (result, voices))
