"""Provider webhooks: delivery receipts and inbound SMS.

Every route checks the provider's signature first (Twilio's `X-Twilio-Signature` over the URL
rebuilt from `PUBLIC_BASE_URL`): an unsigned or wrongly signed request gets 403 and changes
nothing. They are exempt from CSRF (a provider has no session) and do the least they can:
move the outbox row, answer, and leave any follow-up sends to the outbox's jobs.

Receipts arrive twice, late and out of order, so applying one is idempotent and monotonic:
a row's state only moves forward (pending → sending → sent → delivered / undelivered /
failed), and a late "sent" never overwrites "delivered". A receipt may even come before any
row has its provider id (the provider took the message but answered 500 or timed out; the
row's retry adopts the id after a look-up): it is kept as an `EarlyReceipt` and applied when
the id is adopted (`apply_early_receipts`, queued by the outbox, repaired by the sweeper).
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from dispatch import clock, replies
from dispatch.cases import EventKind, record
from dispatch.channels import fallback, twilio_client
from dispatch.db import db
from dispatch.models import Case, EarlyReceipt, Notification, NotificationStatus
from dispatch.outbox import CHANNEL_NAMES, Purpose

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

#: How far along each state is; a receipt may only move a row to a higher rank.
RANK = {
    NotificationStatus.PENDING: 0, NotificationStatus.SENDING: 1, NotificationStatus.SENT: 2,
    NotificationStatus.DELIVERED: 3, NotificationStatus.UNDELIVERED: 3,
    NotificationStatus.FAILED: 3, NotificationStatus.CANCELLED: 3,
}
#: Twilio's message states, as outbox states (queued, accepted, sending: not yet "sent").
TWILIO_SMS_STATES = {
    "sent": NotificationStatus.SENT, "delivered": NotificationStatus.DELIVERED,
    "read": NotificationStatus.DELIVERED, "undelivered": NotificationStatus.UNDELIVERED,
    "failed": NotificationStatus.FAILED,
}


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse (403) a request that Twilio did not sign for this URL."""
    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not twilio_client.is_signed(request):
            log.warning("unsigned or wrongly signed Twilio webhook to %s", request.path)
            abort(403)
        return view(*args, **kwargs)
    return checked


def twiml(response: object) -> Response:
    return Response(str(response), mimetype="text/xml")


@bp.post("/twilio/sms/status")
@twilio_signed
def sms_status() -> Any:
    """A Twilio delivery receipt for an SMS."""
    state = TWILIO_SMS_STATES.get(request.form.get("MessageStatus", ""))
    sid = request.form.get("MessageSid", "")
    if state is not None and sid:
        apply_receipt(sid, state, request.form.get("ErrorCode") or None)
    return "", 204


@bp.post("/twilio/sms/inbound")
@twilio_signed
def sms_inbound() -> Any:
    """An SMS to our number: a member's reply code, STOP/HELP/START, or anything else."""
    text = replies.answer(request.form.get("From", ""), request.form.get("Body", ""))
    response = MessagingResponse()
    response.message(text)
    return twiml(response)


@bp.post("/aliyun/sms/report")
def aliyun_report() -> Any:
    """Alibaba Cloud's delivery reports (HTTP batch push), authenticated by a shared token.

    Alibaba Cloud does not sign these pushes, so the URL configured in its console carries
    `?token=ALIYUN_REPORT_TOKEN`; without the setting the route does not exist.
    """
    expected = current_app.config.get("ALIYUN_REPORT_TOKEN")
    if not expected:
        abort(404)
    # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, so a 500).
    if not hmac.compare_digest(request.args.get("token", "").encode(), expected.encode()):
        abort(403)
    for item in request.get_json(silent=True) or []:
        if not isinstance(item, dict) or not item.get("biz_id"):
            continue
        state = NotificationStatus.DELIVERED if item.get("success") in (True, "true") else (
            NotificationStatus.UNDELIVERED)
        apply_receipt(str(item["biz_id"]), state,
                      None if state == NotificationStatus.DELIVERED else item.get("err_code"))
    return {"code": 0, "msg": "成功"}


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
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as
    # returning the general Result whatever the statement.
    first = cast(sa.CursorResult[Any], db.session.execute(
        sa.update(Case).where(Case.id == row.case_id, Case.first_delivered_at.is_(None))
        .values(first_delivered_at=now).execution_options(synchronize_session=False)))
    if first.rowcount and row.case is not None:
        name = row.member.name if row.member else "—"
        record(row.case, EventKind.DELIVERED,
               f"{CHANNEL_NAMES.get(row.channel, '消息')}已送达{name}", at=now,
               member_id=row.member_id, notification=row.id)


def _undelivered(row: Notification, now: datetime) -> None:
    if row.case is not None:
        name = row.member.name if row.member else "—"
        record(row.case, EventKind.SEND_FAILED,
               f"发给{name}的{CHANNEL_NAMES.get(row.channel, '消息')}未能送达"
               f"（{row.error_code}）", at=now, member_id=row.member_id, notification=row.id,
               error_code=row.error_code)
    fallback.after_failure(row, now)
