"""Alibaba Cloud's VoiceReport receipts: how each alert call ended, and the key pressed.

Alibaba Cloud does not sign these pushes, so the URL set in its console carries
`?token=ALIYUN_REPORT_TOKEN` (the SMS reports' token); without it the route does not exist.
A push may come twice and list a call twice: each call is applied by its call id, through
the outbox's monotonic receipts and the lifecycle's idempotent accept. Pressing 1 accepts the
case as the member the call was for, as pressing 1 on a Twilio call does; 2 passes. A call
that asked for a key and got none reached nobody (voicemail, hung up): undelivered, so the
member is tried by their next channel; a call that only read the alert out was delivered if
it was answered.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, request

from dispatch import clock
from dispatch.case import lifecycle
from dispatch.case.timeline import EventKind, record
from dispatch.channels.aliyun_voice import ACCEPT, PASS, CallResult, ReceiptRefused, parse_receipts
from dispatch.db import db
from dispatch.models import Channel, Notification, NotificationStatus
from dispatch.outbox import receipts, texts

log = logging.getLogger(__name__)

bp = Blueprint("aliyun_voice", __name__, url_prefix="/webhooks/aliyun/voice")


@bp.post("/report")
def report() -> Any:
    expected = current_app.config.get("ALIYUN_REPORT_TOKEN")
    if not expected or not current_app.config.get("ALIYUN_VOICE_SHOW_NUMBER"):
        abort(404)
    # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, so a 500).
    if not hmac.compare_digest(request.args.get("token", "").encode(), expected.encode()):
        abort(403)
    try:
        calls = parse_receipts(request.get_data())
    except ReceiptRefused as refused:
        return {"code": 400, "msg": str(refused)}, 400
    for result in calls.values():
        apply(result)
    return {"code": 0, "msg": "成功"}


def apply(result: CallResult) -> None:
    """Act on one ended call (commits): the key first (accepting is idempotent, a pass is
    noted once), then the receipt, which only ever moves a row forward."""
    row = db.session.scalar(sa.select(Notification).where(
        Notification.provider_id == result.call_id, Notification.channel == Channel.VOICE)
        .order_by(Notification.id).limit(1))
    now = clock.now()
    if row is not None and row.case_id is not None and row.member_id is not None:
        if result.choice == ACCEPT:
            try:
                lifecycle.accept(row.case_id, row.member_id, now)
            except lifecycle.ActionRefused as refused:
                log.info("aliyun voice: accept on case %s refused: %s", row.case_id, refused)
        elif result.choice == PASS and row.case is not None and row.member is not None \
                and not _noted(row, result.call_id):
            record(row.case, EventKind.NOTE, f"{row.member.name}电话中表示无法前往", at=now,
                   member_id=row.member_id, call=result.call_id)
            db.session.commit()
    asked = row is not None and row.purpose in texts.URGENT and bool(
        current_app.config.get("ALIYUN_VOICE_IVR_CODE"))
    if result.choice is not None or (result.answered and not asked):
        receipts.apply_receipt(result.call_id, NotificationStatus.DELIVERED, None, now)
    else:
        receipts.apply_receipt(result.call_id, NotificationStatus.UNDELIVERED,
                               f"ali-{result.status_code or 'no-press'}"[:16], now)


def _noted(row: Notification, call_id: str) -> bool:
    return any(event.kind == EventKind.NOTE and event.data.get("call") == call_id
               for event in row.case.events) if row.case is not None else False
