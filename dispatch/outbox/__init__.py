"""The outbox: every message is a row written in the transaction that decided it, then sent.

This package's own module is what deciding code writes with: `add` / `add_all` put a message
(a `Draft`) in the outbox in the caller's transaction and queue its send for after the commit.
The rest of the package sends them:

- `delivery`: the one `send()` of a row (claim, stop conditions, the channel, the answer),
  the recovery of interrupted sends and the sweeper's list of overdue rows;
- `texts`: what each channel is handed (SMS text with reply codes, Aliyun template
  parameters, push payload), composed here so the channels stay leaves;
- `pacing`: a member's messages spaced and bundled per phone; `replies`: the reply codes;
- `fallback`: what a failure means for the contact and the case; `receipts`: delivery
  receipts from the providers; `residents`: the two SMS a resident with a call-back number
  gets (the receipt, and the 回访 request once the case is resolved).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from dispatch import jobs
from dispatch.db import db
from dispatch.models import Case, Channel, Contact, Member, Notification, NotificationStatus


class Purpose:
    """Why a message is sent; alerts and reminders go stale, the others do not."""

    ALERT = "alert"  # please take this case
    TAKEN = "taken"  # someone else took it: no need to go
    REMINDER = "reminder"  # you accepted but are not on site yet
    HANDOVER = "handover"  # a colleague handed the case to you
    STUCK = "stuck"  # the ladder is exhausted: staff must step in
    CALL = "call"  # an urgent alert not taken within minutes: a phone call that rings
    GROUP = "group"  # to a work group's robot: a case opened, went up, was resolved
    ASSIGNED = "assigned"  # staff assigned the case to you: please take it
    PUSH_CODE = "push_code"  # the code that confirms a push subscription (no case)
    RECEIPT = "receipt"  # to a resident: your case number and status link (no member)
    CALLBACK = "callback"  # to a resident: it is resolved, was it solved? (no member)


@dataclass(frozen=True)
class Draft:
    """One message decided, not yet written: see `add_all`.

    To a member through one of their contacts; or, with neither (`to_resident`), to a bare
    address on `channel`: a resident's call-back number, which belongs to no member.
    """

    member: Member | None
    contact: Contact | None
    purpose: str
    body: str
    dedupe_key: str
    rung: int | None = None
    #: Not to be sent before this moment (a call that follows an unanswered alert).
    not_before: datetime | None = None
    address: str | None = None
    channel: Channel | None = None

    @classmethod
    def to_resident(cls, phone: str, purpose: str, body: str, dedupe_key: str) -> Draft:
        """An SMS to a resident's call-back number (E.164)."""
        return cls(None, None, purpose, body, dedupe_key, address=phone, channel=Channel.SMS)

    @property
    def to(self) -> tuple[Channel, str]:
        """The channel and address the message goes to."""
        if self.contact is not None:
            return self.contact.channel, self.contact.address
        if self.channel is None or self.address is None:
            raise ValueError("a draft needs a contact, or a channel and an address")
        return self.channel, self.address


def add(case: Case, member: Member, contact: Contact, purpose: str, body: str, *,
        dedupe_key: str, now: datetime, rung: int | None = None) -> Notification | None:
    """Write an outbox row in the caller's transaction; None if this decision was already made.

    The row is created at `now`, the time of the decision: `due` and pacing judge it by that
    time, so a decision taken with a case's clock is never "in the future" for its own send.
    The send job is queued for after the commit.
    """
    return add_all(case, [Draft(member, contact, purpose, body, dedupe_key, rung)], now=now)[0]


def add_all(case: Case | None, drafts: Sequence[Draft], *, now: datetime
            ) -> list[Notification | None]:
    """`add` for several messages at once (a rung's alerts), in two statements whatever their
    number: one looks up the decisions already made, one INSERT writes the rest. A step that
    alerts a whole party group pays for it once, not per member. A message about no case
    (a push subscription's code) passes None: it is sent, paced and retried like the others."""
    if not drafts:
        return []
    keys = [draft.dedupe_key for draft in drafts]
    made = set(db.session.scalars(
        sa.select(Notification.dedupe_key).where(Notification.dedupe_key.in_(keys))))
    rows: list[Notification | None] = []
    for draft in drafts:
        if draft.dedupe_key in made:
            rows.append(None)
            continue
        made.add(draft.dedupe_key)
        channel, address = draft.to
        rows.append(Notification(
            case=case, member=draft.member, contact=draft.contact, channel=channel,
            to_address=address, purpose=draft.purpose, body=draft.body,
            dedupe_key=draft.dedupe_key, rung=draft.rung, status=NotificationStatus.PENDING,
            next_attempt_at=draft.not_before, created_at=now))
    written = [row for row in rows if row is not None]
    db.session.add_all(written)
    db.session.flush()
    for row in written:
        jobs.enqueue_after_commit(jobs.Job.SEND, row.id, at=row.next_attempt_at,
                                  job_id=jobs.send_job_id(row.id, 0))
    return rows
