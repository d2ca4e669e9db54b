"""A resident's report: every one is kept, and joins the open case it belongs to.

A scan's message, a call through the sticker, a call the desk logs: each is a `Report` filed
here, which `dispatch.case.lifecycle.file` puts on its case (opening one when none is open for
the place and category).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dispatch import clock
from dispatch.case import lifecycle
from dispatch.community import settings
from dispatch.db import db
from dispatch.models import (
    Case,
    Photo,
    Place,
    Report,
    ReportKind,
    Sticker,
    Urgency,
    VoiceNote,
)
from dispatch.outbox import residents


@dataclass(frozen=True, slots=True)
class Filed:
    """What filing a report did: the case it landed on, the report, and whether it was new.

    `case_id`, `report_id` and `link` (the reporter's own status-link token) are read before
    the commit: the resident's receipt needs only them, and reading them from `case` and
    `report` after the commit would load both rows again.
    """

    case: Case
    report: Report
    opened: bool
    case_id: int
    report_id: int
    link: str


def file_report(place: Place, category: str, *, kind: ReportKind = ReportKind.MESSAGE,
                text: str | None = None, callback_phone: str | None = None,
                anonymous: bool = False, sticker: Sticker | None = None,
                client_hash: str | None = None, join: Case | None = None,
                photos: Sequence[Photo] = (), voice_notes: Sequence[VoiceNote] = (),
                urgency: Urgency | None = None,
                now: datetime | None = None) -> Filed:
    """Record a report, on `join` if it is still open, else on the open case of its kind.

    `urgency` overrides the category's for a case this report opens (a desk call).
    The report's photos and voice notes are stored in the same transaction, so a report never
    lands without what the resident sent with it.

    Commits. Raises `ValueError` for a category the community does not have.
    """
    now = now or clock.now()
    found = settings.category(place.community, category)
    if found is None:
        raise ValueError(f"unknown category {category!r}")
    report = Report(place_id=place.id, sticker_id=sticker.id if sticker else None,
                    kind=kind, category=category, text=text, callback_phone=callback_phone,
                    anonymous=anonymous, client_hash=client_hash, created_at=now)
    report.photos.extend(photos)
    report.voice_notes.extend(voice_notes)
    case, opened = lifecycle.file(report, place, found, now, join=join, urgency=urgency)
    db.session.flush()  # the commit's own flush, early: the ids are known now
    filed = Filed(case, report, opened, case.id, report.id, residents.link_token(case, report))
    db.session.commit()
    return filed
