"""What the responder left when they resolved a case: their note and their after-photos.

Read by the staff case page and the member page; the resident status page can show the same
(`result_of`), with the responder named only by `Member.display_name`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from dispatch.case.timeline import EventKind
from dispatch.db import db
from dispatch.models import Case, CaseEvent, Photo


@dataclass(frozen=True, slots=True)
class Result:
    """The last resolution of a case: when, by whom (public name), the note, the photos."""

    at: datetime
    by: str
    note: str
    photo_ids: list[int]


def after_photo_ids(case: Case) -> list[int]:
    """The ids of the case's after-photos (办理后照片), oldest first."""
    return list(db.session.scalars(sa.select(Photo.id).where(Photo.case_id == case.id)
                                   .order_by(Photo.id)))


def result_of(case: Case) -> Result | None:
    """The case's latest resolution, or None if nobody has resolved it."""
    event = db.session.scalar(
        sa.select(CaseEvent).where(CaseEvent.case_id == case.id,
                                   CaseEvent.kind == str(EventKind.RESOLVED))
        .order_by(CaseEvent.at.desc(), CaseEvent.id.desc()).limit(1))
    if event is None:
        return None
    by = event.member.display_name if event.member is not None else "工作人员"
    photos = [int(i) for i in event.data.get("photos", [])]
    return Result(event.at, by, str(event.data.get("note") or ""), photos)
