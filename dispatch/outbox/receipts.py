"""Delivery receipts: a provider says a message arrived, or did not.

Receipts arrive twice, late and out of order, so applying one is idempotent and monotonic:
a row's state only moves forward (pending → sending → sent → delivered / undelivered /
failed), and a late "sent" never overwrites "delivered". A receipt may even come before any
row has its provider id (the provider took the message but answered 500 or timed out; the
row's retry adopts the id after a look-up): it is kept as an `EarlyReceipt` and applied when
the id is adopted (`apply_early_receipts`, queued by `delivery`, repaired by the sweeper).
The first delivered alert is the case's delivered milestone (`case.lifecycle`); a message
that did not arrive goes to `fallback`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from dispatch import clock, words
from dispatch.case import lifecycle
from dispatch.case.timeline import EventKind, record
from dispatch.db import db
from dispatch.models import EarlyReceipt, Notification, NotificationStatus
from dispatch.outbox import Purpose, fallback

log = logging.getLogger(__name__)

#: How far along each state is; a receipt may only move a row to a higher rank.
RANK = {
    NotificationStatus.PENDING: 0, NotificationStatus.SENDING: 1, NotificationStatus.SENT: 2,
    NotificationStatus.DELIVERED: 3, NotificationStatus.UNDELIVERED: 3,
    NotificationStatus.FAILED: 3, NotificationStatus.CANCELLED: 3,
}

def apply_receipt(provider_id: str, state: NotificationStatus, error_code: str | None,
                  now: datetime | None = None) -> int:
    """Move every row with this provider id forward to `state`; returns how many moved (commits).

    Bundled rows share their carrier's id, so one receipt moves them all.
    """
    now = now or clock.now()
    rows = list(db.session.scalars(
        sa.select(Notification).where(Notification.provider_id == provider_id)
        .order_by(Notification.id).with_for_update()))
    if not rows and provider_id:
        db.session.add(EarlyReceipt(provider_id=provider_id, status=state,
                                    error_code=error_code, received_at=now))
        log.info("receipt %s for %s before any row has that id: kept", state, provider_id)
    moved = [row for row in rows if RANK[state] > RANK[row.status]]
    for row in moved:
        row.status = state
        row.updated_at = now
        if state == NotificationStatus.DELIVERED:
            row.delivered_at = now
            _delivered(row, now)
        elif state in (NotificationStatus.UNDELIVERED, NotificationStatus.FAILED):
            row.error_code = error_code or str(state)
            _undelivered(row, now)
    db.session.commit()
    return len(moved)


#: An early receipt whose id no row adopts within this long belongs to no message of ours.
EARLY_RECEIPTS_KEPT = timedelta(days=1)


def apply_early_receipts(provider_id: str) -> int:
    """Apply the furthest receipt kept for `provider_id`, now that a row has adopted it, at
    the time it came; returns how many rows moved (commits). The outbox queues this when a
    send adopts an id that has receipts waiting."""
    kept = list(db.session.scalars(
        sa.select(EarlyReceipt).where(EarlyReceipt.provider_id == provider_id)
        .order_by(EarlyReceipt.id).with_for_update(skip_locked=True)))
    if not kept:
        db.session.rollback()
        return 0
    furthest = max(kept, key=lambda receipt: RANK[receipt.status])  # the first, among equals
    state, error_code, at = furthest.status, furthest.error_code, furthest.received_at
    for receipt in kept:
        db.session.delete(receipt)
    db.session.flush()
    return apply_receipt(provider_id, state, error_code, at)  # commits the deletions with it


def apply_adopted_receipts(now: datetime | None = None, limit: int = 500) -> int:
    """The sweeper's repair: apply the kept receipts whose id a row has adopted (the job the
    outbox queued was lost, or the row adopted the id while the receipt was being kept), and
    drop the ones older than `EARLY_RECEIPTS_KEPT`. Returns how many rows moved."""
    adopted = list(db.session.scalars(
        sa.select(EarlyReceipt.provider_id)
        .where(EarlyReceipt.provider_id.in_(
            sa.select(Notification.provider_id).where(Notification.provider_id.is_not(None))))
        .group_by(EarlyReceipt.provider_id)
        .limit(limit)))
    db.session.rollback()
    moved = sum(apply_early_receipts(provider_id) for provider_id in adopted)
    db.session.execute(sa.delete(EarlyReceipt).where(
        EarlyReceipt.received_at < (now or clock.now()) - EARLY_RECEIPTS_KEPT))
    db.session.commit()
    return moved


def _delivered(row: Notification, now: datetime) -> None:
    """The first delivered alert is the case's first-delivered milestone."""
    if row.case_id is None or row.purpose != Purpose.ALERT:
        return
    if lifecycle.first_delivered(row.case_id, now) and row.case is not None:
        name = row.member.name if row.member else "—"
        record(row.case, EventKind.DELIVERED,
               f"{words.channel(row.channel)}已送达{name}", at=now,
               member_id=row.member_id, notification=row.id)


def _undelivered(row: Notification, now: datetime) -> None:
    if row.case is not None:
        name = row.member.name if row.member else "—"
        record(row.case, EventKind.SEND_FAILED,
               f"发给{name}的{words.channel(row.channel)}未能送达"
               f"（{row.error_code}）", at=now, member_id=row.member_id, notification=row.id,
               error_code=row.error_code)
    fallback.after_failure(row, now)
