"""When a message cannot arrive: fix the contact, tell staff, and reach the person another way.

One function, `after_failure`, handles every way a message is lost for good, whether the
provider refused it at once (Twilio 21211 invalid number, 21610 the recipient sent STOP, a push
subscription answered 404/410) or a delivery receipt said so later (30003–30008 undeliverable):

1. the contact's status follows what the provider told us: an invalid number is *broken*, an
   opt-out is *stopped*, a dead push subscription is removed; staff see it on the timeline;
2. an alert, reminder or hand-over goes out again by the member's next working channel in
   their own order (push → SMS → call);
3. when the member has no other way and nobody else at the rung is still being reached, the
   case's next step is made due at once: the ladder pages the next people now rather than
   waiting out the rung for someone who cannot hear it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dispatch import outbox, words
from dispatch.case import lifecycle
from dispatch.case.timeline import EventKind, record
from dispatch.db import db
from dispatch.models import (
    Case,
    CaseStatus,
    Channel,
    Contact,
    ContactStatus,
    Member,
    Notification,
    NotificationStatus,
)
from dispatch.outbox import Purpose
from dispatch.roster import duty

log = logging.getLogger(__name__)

#: Provider error codes meaning the number itself is wrong (Twilio, Alibaba Cloud).
BROKEN = {"21211", "21614", "21217", "13224", "ali-bad-number"}
#: The recipient opted out of SMS (replied STOP to the sending number).
STOPPED = {"21610"}
#: The push service no longer knows the subscription.
GONE = {"404", "410"}
#: Purposes worth a second channel: someone must act on them.
RETRIED_PURPOSES = (Purpose.ALERT, Purpose.REMINDER, Purpose.HANDOVER, Purpose.STUCK)
#: Rows still on their way: a member with one of these is still being reached.
LIVE = (NotificationStatus.PENDING, NotificationStatus.SENDING, NotificationStatus.SENT,
        NotificationStatus.DELIVERED)


def after_failure(notification: Notification, now: datetime) -> None:
    """React to a row that failed for good, in the caller's transaction (see the module doc)."""
    code = notification.error_code or ""
    member = notification.member
    contact = notification.contact
    if member is not None and contact is not None:
        _mark_contact(member, contact, code, now)
    if notification.purpose not in RETRIED_PURPOSES or member is None:
        return
    case = notification.case
    if case is None or not _still_wanted(notification, case):
        return
    if _retry_by_next_channel(notification, member, case, now):
        return
    if notification.purpose == Purpose.ALERT:
        _page_next_rung(notification, member, case, now)


def _mark_contact(member: Member, contact: Contact, code: str, now: datetime) -> None:
    if code in BROKEN and contact.status != ContactStatus.BROKEN:
        # The number is wrong for every channel that dials it.
        for same in member.contacts:
            if same.address == contact.address and same.channel in (Channel.SMS, Channel.VOICE):
                same.status = ContactStatus.BROKEN
        tell_staff(member, f"的号码无效（{code}），已停用，请核对后在名单中更正", now,
                   reason="broken", error_code=code)
    elif code in STOPPED and contact.status != ContactStatus.STOPPED:
        contact.status = ContactStatus.STOPPED
        tell_staff(member, f"已退订短信（{code}），短信通知已停用，请联系本人", now,
                   reason="stopped", error_code=code)
    elif code in GONE and contact.channel == Channel.PUSH:
        remove_push_contact(contact)
        log.info("push subscription of member %s is gone (%s); removed", member.code, code)


def remove_push_contact(contact: Contact) -> None:
    """Delete a dead push subscription; the rows sent through it keep their address."""
    db.session.execute(sa.update(Notification).where(Notification.contact_id == contact.id)
                       .values(contact_id=None).execution_options(synchronize_session=False))
    if contact in contact.member.contacts:
        contact.member.contacts.remove(contact)
    db.session.delete(contact)


def _still_wanted(notification: Notification, case: Case) -> bool:
    return lifecycle.why_stale(notification.purpose, case, notification.member_id) is None


def _retry_by_next_channel(notification: Notification, member: Member, case: Case,
                           now: datetime) -> bool:
    base = notification.dedupe_key.split(">", 1)[0]
    tried = set(db.session.scalars(
        sa.select(Notification.channel).where(sa.or_(Notification.dedupe_key == base,
                                                     Notification.dedupe_key.like(base + ">%")))))
    tried.add(notification.channel)
    contact = duty.working_contact(member, skip={str(c) for c in tried})
    if contact is None:
        return False
    added = outbox.add(case, member, contact, notification.purpose, notification.body,
                       dedupe_key=f"{base}>{contact.channel}", now=now, rung=notification.rung)
    if added is None:
        return False
    was = words.channel(notification.channel)
    record(case, EventKind.RETRIED,
           f"发给{member.name}的{was}未能送达（{notification.error_code}），"
           f"改用{words.channel(contact.channel, '其他方式')}通知", at=now,
           member_id=member.id, notification=added.id, failed=notification.id)
    return True


def _page_next_rung(notification: Notification, member: Member, case: Case,
                    now: datetime) -> None:
    """Nobody else at this rung is being reached: make the case's next step due now."""
    if notification.rung != case.rung or case.next_step_at is None:
        return
    others = db.session.scalar(
        sa.select(sa.func.count(Notification.id))
        .where(Notification.case_id == case.id, Notification.rung == case.rung,
               Notification.purpose == Purpose.ALERT, Notification.id != notification.id,
               Notification.member_id != member.id, Notification.status.in_(LIVE)))
    if not others:
        lifecycle.page_next_rung_now(case, member, notification.error_code, now)


def tell_staff(member: Member, problem: str, now: datetime, **data: Any) -> None:
    """Put a contact problem on the timeline of the member's open cases, where staff look.

    A member without an open case is only logged: the next step that skips them says why on
    that case's timeline.
    """
    # A subquery, not a join with DISTINCT: PostgreSQL cannot compare the case's JSON
    # columns for DISTINCT ("could not identify an equality operator for type json").
    open_cases = list(db.session.scalars(
        sa.select(Case)
        .where(Case.id.in_(sa.select(Notification.case_id)
                           .where(Notification.member_id == member.id)),
               Case.status.in_((CaseStatus.OPEN, CaseStatus.ACCEPTED, CaseStatus.ON_SITE)))
        .order_by(Case.id)))
    for case in open_cases:
        record(case, EventKind.CONTACT_PROBLEM, f"{member.name}{problem}", at=now,
               member_id=member.id, **data)
    log.warning("contact problem: member %s %s", member.code, problem)
