"""Provider webhooks: delivery receipts and inbound SMS.

Every route checks the provider's signature first (Twilio's `X-Twilio-Signature` over the URL
rebuilt from `PUBLIC_BASE_URL`): an unsigned or wrongly signed request gets 403 and changes
nothing. They are exempt from CSRF (a provider has no session) and do the least they can:
move the outbox row, answer, and leave any follow-up sends to the outbox's jobs.

Receipts arrive twice, late and out of order, so applying one is idempotent and monotonic:
a row's state only moves forward (pending → sending → sent → delivered / undelivered /
failed), and a late "sent" never overwrites "delivered".
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from dispatch import replies
from dispatch.cases import EventKind, record
from dispatch.channels import fallback, twilio_client
from dispatch.db import db, utcnow
from dispatch.models import Case, Notification, NotificationStatus
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
    now = now or utcnow()
    rows = list(db.session.scalars(
        sa.select(Notification).where(Notification.provider_id == provider_id)
        .order_by(Notification.id).with_for_update()))
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


def _delivered(row: Notification, now: datetime) -> None:
    """The first delivered alert is the case's first-delivered milestone."""
    if row.case_id is None or row.purpose != Purpose.ALERT:
        return
    first = db.session.execute(
        sa.update(Case).where(Case.id == row.case_id, Case.first_delivered_at.is_(None))
        .values(first_delivered_at=now).execution_options(synchronize_session=False))
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
