"""The two SMS a resident who left a call-back number gets: the receipt, and the 回访 request.

A resident loses a case that only lives on a receipt page; 12345 texts the case number. Both
messages go to the number the resident typed (no member, no contact: `Draft.to_resident`),
through the outbox like every other message, so they are paced per phone, retried, and
receipted. Each carries the resident's *own* status link: the report's token, never another
reporter's. They are decided where their case changes (`dispatch.case.lifecycle`: a report
filed from the sticker form, a case resolved) and written in that transaction.

The number itself is never logged, and never shown on a page.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from dispatch import outbox
from dispatch.db import db
from dispatch.models import Case, Report, ReportKind
from dispatch.outbox import Draft, Purpose


def status_url(token: str) -> str:
    """The absolute status link for a report's (or an older case's) token."""
    return f"{str(current_app.config['PUBLIC_BASE_URL']).rstrip('/')}/c/{token}"


def link_token(case: Case, report: Report) -> str:
    """The token of this reporter's own status link."""
    return report.public_token or case.public_token


def receipt_body(case: Case, report: Report) -> str:
    return (f"【邻里】已收到您的反映，案件编号 {case.number}。"
            f"查看处理进度：{status_url(link_token(case, report))}")


def callback_body(case: Case, report: Report) -> str:
    return (f"【邻里】您反映的问题（{case.number}）已处理完毕。问题解决了吗？"
            f"请告诉我们：{status_url(link_token(case, report))}")


def texted(report: Report) -> bool:
    """A report filed from the sticker form with a call-back number: its resident gets SMS."""
    return bool(report.callback_phone) and report.kind == ReportKind.MESSAGE \
        and report.sticker_id is not None


def receipt(case: Case, report: Report, now: datetime) -> None:
    """Queue the receipt SMS for a report filed from the sticker form with a call-back number."""
    if not texted(report) or report.callback_phone is None:
        return
    db.session.flush()  # the report's id names the decision
    outbox.add_all(case, [Draft.to_resident(
        report.callback_phone, Purpose.RECEIPT, receipt_body(case, report),
        dedupe_key=f"report{report.id}:receipt")], now=now)


def ask_for_callback(case: Case, now: datetime) -> None:
    """The case is resolved: ask each resident who left a number, once per phone and per
    resolution (the case's fencing token names the resolution), on their own link."""
    drafts: list[Draft] = []
    seen: set[str] = set()
    for report in sorted(case.reports, key=lambda r: r.id):
        phone = report.callback_phone
        if phone is None or not texted(report) or phone in seen:
            continue
        seen.add(phone)
        drafts.append(Draft.to_resident(
            phone, Purpose.CALLBACK, callback_body(case, report),
            dedupe_key=f"c{case.id}:t{case.token}:callback:report{report.id}"))
    outbox.add_all(case, drafts, now=now)
