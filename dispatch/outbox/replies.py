"""SMS reply codes: a member answers an alert by texting "1" (接单) or "1D" (已解决).

Each notification that can be answered gets the smallest number not held by another open
notification to the same phone (GoAlert's scheme). A number stays held until its case is
closed, so an old SMS can never act on a newer case; one case keeps one number per phone, so
the reminder about a case answers to the same "1" as its alert. Codes are given when the row
is sent, under a row lock on the phone's contacts, so two workers never hand out the same one.

`parse()` reads a reply; `dispatch.hooks.sms` acts on it.
"""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
from dataclasses import dataclass

import sqlalchemy as sa

from dispatch.community import settings
from dispatch.db import db
from dispatch.models import (
    Case,
    CaseStatus,
    Channel,
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
    (`pacing.before_send` takes it), so concurrent senders never hand out the same number.
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


def describe(case: Case) -> str:
    """A case in a few words for an SMS: "电梯故障 1栋 1单元 · 1号电梯"."""
    found = settings.category(case.community, case.category)
    return f"{found.name if found else case.category} {case.place.label}"
