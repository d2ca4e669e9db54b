"""SMS reply codes: a member answers an alert by texting "1" (接单) or "1D" (已解决).

Each notification that can be answered gets the smallest number not held by another open
notification to the same phone (GoAlert's scheme). A number stays held until its case is
closed, so an old SMS can never act on a newer case; one case keeps one number per phone, so
the reminder about a case answers to the same "1" as its alert. Codes are given when the row
is sent, under a row lock on the phone's contacts, so two workers never hand out the same one.

`answer()` reads an inbound SMS and acts through the escalation engine's own functions, and
returns the short text to send back. A reply without a number acts on the newest open case
only when there is exactly one; otherwise the member is shown the choices. STOP, HELP and
START keep their usual carrier meaning.
"""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from dispatch import clock, escalation
from dispatch.channels.fallback import tell_staff
from dispatch.community import settings
from dispatch.db import db
from dispatch.models import (
    Case,
    CaseStatus,
    Channel,
    Contact,
    ContactStatus,
    Notification,
)
from dispatch.outbox import Purpose

#: Case states during which a notification's code stays held (everything but closed).
HOLDING = (CaseStatus.OPEN, CaseStatus.ACCEPTED, CaseStatus.ON_SITE, CaseStatus.RESOLVED)
#: Purposes a member can answer by SMS.
ANSWERABLE = (Purpose.ALERT, Purpose.REMINDER, Purpose.HANDOVER, Purpose.STUCK)

STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "TD", "退订"}
START_WORDS = {"START", "UNSTOP", "YES"}
HELP_WORDS = {"HELP", "INFO", "帮助", "?"}
ACCEPT_WORDS = {"接", "接单", "好", "好的", "收到", "OK", "Y", "A"}
RESOLVE_WORDS = {"D", "已解决", "解决", "完成", "DONE"}

HELP_TEXT = ("【邻里】社区值守通知。回复“编号”接单（如 1），“编号D”表示已解决（如 1D）；"
             "回复 STOP 退订短信，START 恢复。")
UNKNOWN_TEXT = ("【邻里】本号码未登记为社区值守人员。居民报事请扫描楼道或电梯里的二维码，"
                "或拨打社区服务电话。")


class Action(enum.StrEnum):
    ACCEPT = "accept"
    RESOLVE = "resolve"
    STOP = "stop"
    START = "start"
    HELP = "help"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Reply:
    """An inbound SMS read: what it asks for, and the code it names (None: no code)."""

    action: Action
    code: str | None = None


def parse(text: str) -> Reply:
    """Read an SMS reply: "1", "1D", "1 d", "１Ｄ", "接单", "已解决", "STOP"…"""
    clean = unicodedata.normalize("NFKC", text).strip().upper()
    clean = clean.strip("。.!！,，")
    if clean in STOP_WORDS:
        return Reply(Action.STOP)
    if clean in START_WORDS:
        return Reply(Action.START)
    if clean in HELP_WORDS:
        return Reply(Action.HELP)
    match = re.fullmatch(r"(\d{1,3})\s*(D|接单|接|已解决|解决)?", clean)
    if match:
        action = Action.RESOLVE if match[2] in ("D", "已解决", "解决") else Action.ACCEPT
        return Reply(action, str(int(match[1])))
    if clean in ACCEPT_WORDS:
        return Reply(Action.ACCEPT)
    if clean in RESOLVE_WORDS:
        return Reply(Action.RESOLVE)
    return Reply(Action.UNKNOWN)


# ---------------------------------------------------------------------------------------------
# Giving codes


def assign_code(notification: Notification) -> str | None:
    """Give the row its reply code, in the caller's transaction; None if it cannot be answered.

    The caller holds the row lock on the contacts with this phone number
    (`throttle.before_send` takes it), so concurrent senders never hand out the same number.
    """
    if notification.purpose not in ANSWERABLE or notification.case_id is None:
        return None
    if notification.reply_code:
        return notification.reply_code
    held = db.session.execute(_held(), {"phone": notification.to_address}).all()
    same_case = next((code for code, case_id in held if case_id == notification.case_id), None)
    taken = {code for code, _ in held}
    code = same_case or str(next(n for n in range(1, len(taken) + 2) if str(n) not in taken))
    notification.reply_code = code
    return code


@functools.cache
def _held() -> sa.Select[str | None, int | None]:
    """The codes held on `phone`, with their cases; built once per process (every SMS that can
    be answered runs it)."""
    return (sa.select(Notification.reply_code, Notification.case_id)
            .join(Case, Case.id == Notification.case_id)
            .where(Notification.to_address == sa.bindparam("phone"),
                   Notification.channel == Channel.SMS,
                   Notification.reply_code.is_not(None), Case.status.in_(HOLDING)))


def hint(notification: Notification) -> str:
    """The line that tells the member how to answer: "回复 1 接单，回复 1D 已解决"."""
    code = notification.reply_code
    if not code:
        return ""
    if notification.purpose in (Purpose.ALERT, Purpose.STUCK):
        return f"回复 {code} 接单，回复 {code}D 已解决"
    return f"回复 {code}D 已解决"


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
            case = escalation.accept(case_id, member_id, now)
            if case.accepted_by_id != member_id:
                return f"【邻里】{what}已由他人接单，谢谢！"
            return f"【邻里】您已接单：{what}。处理完毕请回复 {code}D。"
        escalation.resolve(case_id, member_id, "短信回复：已解决", now)
        return f"【邻里】已记录解决：{what}。谢谢您！"
    except escalation.ActionRefused as refused:
        return f"【邻里】{what}：{refused}"


def describe(case: Case) -> str:
    """A case in a few words for an SMS: "电梯故障 1栋 1单元 · 1号电梯"."""
    found = settings.category(case.community, case.category)
    return f"{found.name if found else case.category} {case.place.label}"


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
