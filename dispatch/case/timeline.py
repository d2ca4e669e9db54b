"""A case's timeline: what happened to it, when, and who did it, one line per event.

An event stores its kind and its parameters (`data`). `CaseEvent.message` is the staff's line,
in Chinese, and may name people in full (never a phone number). Events residents may see carry
`data["shown"]`; their words are chosen when a page is read, in the reader's language
(`dispatch.resident.timeline`), from parameters that name responders only by
`Member.display_name` (李师傅). Events written before that kept their text in
`data["public"]` / `data["public_en"]`, which the pages still show.
"""

from __future__ import annotations

import enum
from datetime import datetime

from dispatch.db import db
from dispatch.models import Case, CaseEvent


class EventKind(enum.StrEnum):
    """The vocabulary of a case's timeline."""

    REPORTED = "reported"  # the first report opened the case
    JOINED = "joined"  # another report joined it (另有邻居也反映了)
    NOTIFIED = "notified"
    DELIVERED = "delivered"
    SEND_FAILED = "send_failed"
    RESENT = "resent"  # a send was interrupted and repeated: the recipient may get it twice
    RETRIED = "retried"  # a message that could not arrive went out again by another channel
    CONTACT_PROBLEM = "contact_problem"  # a number is invalid or opted out: staff must check
    CALLED = "called"  # a resident's phone call: who was rung, who answered
    SKIPPED = "skipped"  # nobody reachable at a rung, or a member without a working contact
    ESCALATED = "escalated"
    ACCEPTED = "accepted"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    HANDED_OVER = "handed_over"
    REMINDED = "reminded"
    STUCK = "stuck"
    REFERRED = "referred"
    CALLBACK = "callback"
    REOPENED = "reopened"
    CLOSED = "closed"
    NOTE = "note"
    MERGED = "merged"
    DISPATCHED = "dispatched"  # staff assigned the case to a member, who is asked to take it
    RECLASSIFIED = "reclassified"  # staff corrected its category or urgency


def record(case: Case, kind: EventKind, message: str, *, at: datetime,
           member_id: int | None = None, staff_id: int | None = None, **data: object) -> CaseEvent:
    """Append a line to the case's timeline (in the caller's transaction), at the time of the
    decision it records."""
    event = CaseEvent(case=case, kind=str(kind), message=message, at=at,
                      member_id=member_id, staff_id=staff_id, data=data)
    db.session.add(event)
    return event
