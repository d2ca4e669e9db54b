"""Pacing per recipient: at most one message a minute per phone, five alert SMS per quarter hour,
and alerts that pile up for one phone go out together as one SMS listing them.

This is the outbox's gate, called by `dispatch.outbox.send` on a claimed row right before the
provider is called (`before_send`), and right after its answer is stored (`after_send`):

- **hold**: a row that would break a limit goes back to pending, due when the limit allows,
  without counting as an attempt;
- **bundle**: when an alert SMS goes out, the other alerts pending for the same phone are
  claimed with it (`bundled_into_id` names the carrier row) and listed in its text; GoAlert's
  scheme, since a burst of reports about one building should not buzz a volunteer six times;
- **reply codes** are given here, under the same lock (see `dispatch.replies`).

The provider id rule still holds: bundled rows take the carrier's message id once it has one,
so a receipt moves them all, and a bundled row found later with a carrier that already has an
id adopts it instead of being sent again (the process may have died in between).
Concurrent senders for one phone serialise on a row lock of its contacts; a row in flight with
a lower id makes a later one wait its minute.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from dispatch import channels, jobs, replies
from dispatch.channels import fallback
from dispatch.channels.base import UNCERTAIN
from dispatch.db import db
from dispatch.models import Case, CaseStatus, Channel, Contact, Notification, NotificationStatus
from dispatch.outbox import SEND_JOB, Purpose

#: Channels that ring or buzz a phone, when their sender says it is `paced` (real providers;
#: the console sender is not, so the demo and the engine's tests see every message at once).
PACED = (Channel.SMS, Channel.VOICE)
CONTACT_GAP = timedelta(minutes=1)
ALERT_LIMIT = 5
ALERT_WINDOW = timedelta(minutes=15)
#: At most this many cases in one bundled SMS (the rest wait for the next one).
BUNDLE_MAX = 6


def limits() -> tuple[timedelta, int, timedelta]:
    """(gap per phone, alert SMS allowed, per window), overridable in the app config."""
    config = current_app.config
    return (timedelta(seconds=float(config.get("THROTTLE_GAP_SECONDS",
                                               CONTACT_GAP.total_seconds()))),
            int(config.get("THROTTLE_ALERTS", ALERT_LIMIT)),
            timedelta(seconds=float(config.get("THROTTLE_ALERT_WINDOW_SECONDS",
                                               ALERT_WINDOW.total_seconds()))))


def before_send(notification: Notification, now: datetime) -> NotificationStatus | None:
    """Prepare a claimed row for sending; a status instead when it must not be sent now."""
    if notification.bundled_into_id is not None:
        carrier = db.session.get(Notification, notification.bundled_into_id)
        if carrier is not None and carrier.provider_id is not None:
            _adopt(notification, carrier, now)
            db.session.commit()
            return notification.status
        notification.bundled_into_id = None  # the carrier did not make it: go on alone
    sender = channels.sender_for(notification)
    if notification.channel not in PACED or not getattr(sender, "paced", False):
        db.session.commit()
        return None
    _lock_phone(notification.to_address)
    hold = hold_until(notification, now)
    if hold is not None:
        _hold(notification, hold, now)
        db.session.commit()
        return notification.status
    if (notification.channel == Channel.SMS and notification.purpose == Purpose.ALERT
            and notification.sent_text is None):  # a retry resends its first bundle unchanged
        _bundle(notification, now)
    if notification.channel == Channel.SMS and getattr(sender, "two_way", False):
        for row in [notification, *bundled(notification)]:
            replies.assign_code(row)
    db.session.commit()
    return None


def after_send(notification: Notification, now: datetime) -> None:
    """Settle the rows bundled into this one, and react if it failed for good (commits)."""
    companions = bundled(notification)
    if notification.provider_id is not None:
        for row in companions:
            _adopt(row, notification, now)
    elif (notification.status == NotificationStatus.PENDING
          and notification.error_code in UNCERTAIN):
        # The provider may have the bundle already: its rows stay in it, and the carrier's
        # retry (same text) either finds that message or sends the same list once.
        for row in companions:
            row.updated_at = now
    else:
        for row in companions:
            row.status = NotificationStatus.PENDING
            row.bundled_into_id = None
            row.next_attempt_at = notification.next_attempt_at
            row.updated_at = now
    if notification.status == NotificationStatus.FAILED:
        fallback.after_failure(notification, now)
    db.session.commit()


def bundled(notification: Notification) -> list[Notification]:
    """The rows riding in this one's message, oldest first."""
    if notification.id is None:
        return []
    return list(db.session.scalars(
        sa.select(Notification)
        .where(Notification.bundled_into_id == notification.id,
               Notification.status == NotificationStatus.SENDING)
        .order_by(Notification.id)
        .execution_options(populate_existing=True)))


def hold_until(notification: Notification, now: datetime) -> datetime | None:
    """When this row may go out, if not now: the per-phone gap and the alert SMS quota."""
    gap, allowed, window = limits()
    same_phone = (Notification.to_address == notification.to_address,
                  Notification.channel.in_(PACED))
    in_flight = db.session.scalar(
        sa.select(sa.func.count(Notification.id))
        .where(*same_phone, Notification.status == NotificationStatus.SENDING,
               Notification.bundled_into_id.is_(None), Notification.id < notification.id))
    if in_flight:
        return now + gap
    last = db.session.scalar(
        sa.select(sa.func.max(Notification.sent_at))
        .where(*same_phone, Notification.sent_at.is_not(None)))
    if last is not None and now - last < gap:
        return last + gap
    if notification.channel != Channel.SMS or notification.purpose != Purpose.ALERT:
        return None
    recent = list(db.session.scalars(
        sa.select(sa.func.min(Notification.sent_at))
        .where(Notification.to_address == notification.to_address,
               Notification.channel == Channel.SMS, Notification.purpose == Purpose.ALERT,
               Notification.sent_at > now - window, Notification.provider_id.is_not(None))
        .group_by(Notification.provider_id)
        .order_by(sa.func.min(Notification.sent_at))))
    if len(recent) >= allowed:
        return recent[-allowed] + window
    return None


def _lock_phone(phone: str) -> None:
    db.session.execute(sa.select(Contact.id).where(Contact.address == phone)
                       .order_by(Contact.id).with_for_update())


def _hold(notification: Notification, until: datetime, now: datetime) -> None:
    """Back to pending until `until`; the claim's attempt does not count."""
    notification.status = NotificationStatus.PENDING
    notification.attempts = max(notification.attempts - 1, 0)
    notification.next_attempt_at = until
    notification.updated_at = now
    jobs.enqueue_after_commit(SEND_JOB, notification.id, at=until,
                              job_id=f"send-{notification.id}-held-{int(until.timestamp())}")


def _bundle(carrier: Notification, now: datetime) -> None:
    """Claim the other alerts pending for this phone into the carrier's SMS."""
    waiting = (sa.select(Notification.id)
               .join(Case, Case.id == Notification.case_id)
               .where(Notification.to_address == carrier.to_address,
                      Notification.channel == Channel.SMS,
                      Notification.purpose == Purpose.ALERT,
                      Notification.status == NotificationStatus.PENDING,
                      # a row awaiting a retry after an uncertain failure is resent alone, as
                      # it was (its own text and riders): the provider may already have it
                      Notification.sent_text.is_(None),
                      Notification.id != carrier.id, Case.status == CaseStatus.OPEN)
               .order_by(Notification.id)
               .limit(BUNDLE_MAX - 1)
               .with_for_update(of=Notification, skip_locked=True))
    ids = list(db.session.scalars(waiting))
    if not ids:
        return
    db.session.execute(
        sa.update(Notification)
        .where(Notification.id.in_(ids), Notification.status == NotificationStatus.PENDING)
        .values(status=NotificationStatus.SENDING, bundled_into_id=carrier.id, updated_at=now)
        .execution_options(synchronize_session=False))


def _adopt(row: Notification, carrier: Notification, now: datetime) -> None:
    """The row went out inside the carrier's message: it shares its provider id and state."""
    row.provider_id = carrier.provider_id
    row.status = carrier.status
    row.sent_at = carrier.sent_at or now
    row.delivered_at = carrier.delivered_at
    row.error_code = None
    row.updated_at = now
    if row.case_id is not None and row.purpose == Purpose.ALERT:
        db.session.execute(
            sa.update(Case).where(Case.id == row.case_id, Case.first_notified_at.is_(None))
            .values(first_notified_at=row.sent_at).execution_options(synchronize_session=False))
