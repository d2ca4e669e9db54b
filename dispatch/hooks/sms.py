"""Provider webhooks for SMS: delivery receipts and inbound replies.

Every route checks the provider's signature first (Twilio's `X-Twilio-Signature` over the URL
rebuilt from `PUBLIC_BASE_URL`): an unsigned or wrongly signed request gets 403 and changes
nothing. They are exempt from CSRF (a provider has no session) and do the least they can:
move the outbox row, answer, and leave any follow-up sends to the outbox's jobs.

Receipts are applied by `dispatch.outbox.receipts`. An inbound SMS is read by `answer()`,
which acts through the case lifecycle's own functions and returns the short text to send
back. A reply without a number acts on the newest open case only when there is exactly one;
otherwise the member is shown the choices. STOP, HELP and START keep their usual carrier
meaning.
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

from dispatch import clock
from dispatch.case import lifecycle
from dispatch.channels import twilio_client
from dispatch.db import db
from dispatch.models import (
    Case,
    CaseStatus,
    Channel,
    Contact,
    ContactStatus,
    Notification,
    NotificationStatus,
)
from dispatch.outbox import receipts
from dispatch.outbox.fallback import tell_staff
from dispatch.outbox.replies import Action, describe, parse

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

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
        receipts.apply_receipt(sid, state, request.form.get("ErrorCode") or None)
    return "", 204


@bp.post("/twilio/sms/inbound")
@twilio_signed
def sms_inbound() -> Any:
    """An SMS to our number: a member's reply code, STOP/HELP/START, or anything else."""
    text = answer(request.form.get("From", ""), request.form.get("Body", ""))
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
        receipts.apply_receipt(str(item["biz_id"]), state,
                      None if state == NotificationStatus.DELIVERED else item.get("err_code"))
    return {"code": 0, "msg": "成功"}


HELP_TEXT = ("【邻里】社区值守通知。回复“编号”接单（如 1），“编号D”表示已解决（如 1D）；"
             "回复 STOP 退订短信，START 恢复。")
UNKNOWN_TEXT = ("【邻里】本号码未登记为社区值守人员。居民报事请扫描楼道或电梯里的二维码，"
                "或拨打社区服务电话。")



# ---------------------------------------------------------------------------------------------
# Reading replies


def answer(phone: str, text: str, now: datetime | None = None) -> str:
    """Act on an SMS from `phone` and return the text to send back (commits)."""
    now = now or clock.now()
    contacts = list(db.session.scalars(
        sa.select(Contact).where(Contact.address == phone, Contact.channel == Channel.SMS)))
    if not contacts:
        return UNKNOWN_TEXT
    reply = parse(text)
    if reply.action == Action.STOP:
        return _stop(contacts, now)
    if reply.action == Action.START:
        return _start(contacts)
    if reply.action == Action.HELP:
        return HELP_TEXT
    open_rows = _open_notifications(phone)
    if reply.action == Action.UNKNOWN:
        return "【邻里】没看懂您的回复。" + _choices(open_rows)
    target: Notification | None
    if reply.code is None:
        cases = {row.case_id for row in open_rows}
        if len(cases) != 1:
            return "【邻里】您有多件待办，请回复编号。" + _choices(open_rows) if cases else (
                "【邻里】您目前没有待处理的事项。")
        target = open_rows[0]
    else:
        target = next((row for row in open_rows if row.reply_code == reply.code), None)
        if target is None:
            return f"【邻里】没有编号为 {reply.code} 的待办事项。" + _choices(open_rows)
    return _act(target, reply.action, now)


def _open_notifications(phone: str) -> list[Notification]:
    """The rows this phone can still answer, newest first, one per case."""
    rows = db.session.scalars(
        sa.select(Notification)
        .join(Case, Case.id == Notification.case_id)
        .where(Notification.to_address == phone, Notification.channel == Channel.SMS,
               Notification.reply_code.is_not(None),
               Case.status.in_((CaseStatus.OPEN, CaseStatus.ACCEPTED, CaseStatus.ON_SITE)))
        .order_by(Notification.id.desc()))
    seen: set[int | None] = set()
    newest = []
    for row in rows:
        if row.case_id not in seen:
            seen.add(row.case_id)
            newest.append(row)
    return newest


def _choices(rows: list[Notification]) -> str:
    if not rows:
        return "您目前没有待处理的事项。" + HELP_TEXT.removeprefix("【邻里】社区值守通知。")
    lines = [f"{row.reply_code}：{describe(row.case)}" for row in rows if row.case is not None]
    code = rows[0].reply_code
    return "回复编号接单，编号加D表示已解决（如 " + f"{code} 或 {code}D）：\n" + "\n".join(lines)


def _act(row: Notification, action: Action, now: datetime) -> str:
    """Accept or resolve the row's case as its member, and say what happened."""
    assert row.case is not None and row.case_id is not None and row.member_id is not None
    case_id, member_id, code = row.case_id, row.member_id, row.reply_code
    number = row.case.number
    what = f"{describe(row.case)}（{number}）"
    try:
        if action == Action.ACCEPT:
            case = lifecycle.accept(case_id, member_id, now)
            if case.accepted_by_id != member_id:
                return f"【邻里】{what}已由他人接单，谢谢！"
            return f"【邻里】您已接单：{what}。处理完毕请回复 {code}D。"
        lifecycle.resolve(case_id, member_id, "短信回复：已解决", now)
        return f"【邻里】已记录解决：{what}。谢谢您！"
    except lifecycle.ActionRefused as refused:
        return f"【邻里】{what}：{refused}"


def _stop(contacts: list[Contact], now: datetime) -> str:
    """The member asked for no more SMS: the contact stops, and staff hear of it."""
    for contact in contacts:
        if contact.status != ContactStatus.STOPPED:
            contact.status = ContactStatus.STOPPED
            tell_staff(contact.member, "回复了退订（STOP），不再接收短信通知，请联系本人核实",
                       now, reason="stop")
    db.session.commit()
    return "【邻里】已退订值守短信通知。回复 START 可恢复。"


def _start(contacts: list[Contact]) -> str:
    for contact in contacts:
        if contact.status == ContactStatus.STOPPED:
            contact.status = ContactStatus.OK
    db.session.commit()
    return "【邻里】已恢复值守短信通知。" + HELP_TEXT.removeprefix("【邻里】社区值守通知。")
