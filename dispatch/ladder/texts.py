"""What the ladder says: message bodies and the wording of its timeline lines.

Short, Simplified Chinese, with the place, the category and signed links. SMS bodies are
written here once, when the message is decided; the outbox keeps them (`Notification.body`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from dispatch import clock, links, words
from dispatch.community import settings
from dispatch.db import db
from dispatch.links import Purpose as Link
from dispatch.models import Case, Member, Report, StaffUser
from dispatch.roster import duty, routing


def category_name(case: Case) -> str:
    found = settings.category(case.community, case.category)
    return found.name if found else case.category


def first_text(case: Case) -> str | None:
    """What the first resident who wrote something said (a busy case has hundreds of reports)."""
    return db.session.scalar(
        sa.select(Report.text).where(Report.case_id == case.id, Report.text.is_not(None),
                                     Report.text != "")
        .order_by(Report.id).limit(1))


#: Two concatenated SMS segments of Chinese text (UCS-2: 67 characters each).
SMS_LIMIT = 134


def alert_body(case: Case, member: Member, first: str | None, *, repeat: bool) -> str:
    """The alert: what and where, the first resident's words as far as they fit, and one short
    signed link to the accept page (which links to the case's details), in two segments."""
    head = f"【邻里{'·催办' if repeat else ''}】{category_name(case)}：{case.place.full_name}"
    if case.report_count > 1:
        head += f"，{case.report_count}人反映"
    tail = f"\n接单及详情：{links.short_url(Link.ACCEPT, member.id, case.id)}"
    room = SMS_LIMIT - len(head) - len(tail) - 3  # a line break and the quotes
    if first and room >= 6:
        head += f"\n“{first if len(first) <= room else first[:room - 1] + '…'}”"
    return head + tail


def taken_body(case: Case, acceptor: Member) -> str:
    return (f"【邻里】{category_name(case)}：{case.place.full_name} 已由{acceptor.name}接单，"
            f"您无需前往。谢谢！")


def reminder_body(case: Case, member: Member) -> str:
    return (f"【邻里·提醒】您接单的{category_name(case)}（{case.place.full_name}）尚未到场。\n"
            f"已到场：{links.url(Link.ON_SITE, member.id, case.id)}\n"
            f"详情：{links.url(Link.CASE, member.id, case.id)}")


def handover_body(case: Case, giver: Member, colleague: Member) -> str:
    return (f"【邻里】{giver.name}把{category_name(case)}（{case.place.full_name}）"
            f"转交给您处理。\n"
            f"详情：{links.url(Link.CASE, colleague.id, case.id)}")


def stuck_body(case: Case, member: Member) -> str:
    return (f"【邻里·告警】{category_name(case)}：{case.place.full_name}（{case.number}）"
            f"已逐级通知仍无人接单，请安排处理。\n"
            f"接单：{links.url(Link.ACCEPT, member.id, case.id)}\n"
            f"详情：{links.url(Link.CASE, member.id, case.id)}")




def call_body(case: Case, member: Member) -> str:
    """What the alert call is about (the call itself reads the case: `hooks.voice.alert`)."""
    return (f"【邻里·来电】{category_name(case)}：{case.place.full_name}（{case.number}）"
            f"尚无人接单，请接听。")


def assigned_body(case: Case, staff: StaffUser, member: Member) -> str:
    return (f"【邻里】工作人员{staff.name}把{category_name(case)}（{case.place.full_name}）"
            f"指派给您，请打开链接接单：{links.short_url(Link.CASE, member.id, case.id)}")


# ---------------------------------------------------------------------------------------------
# Small helpers for the wording.


def role_label(answer: duty.Duty, responder: routing.Responder | None) -> str:
    if answer.covering_for is not None:
        return f"代{answer.covering_for.name}"
    return words.ROLE_NAMES.get(responder.role, str(responder.role)) if responder else "值守人员"


def asked_as(responder: routing.Responder) -> dict[str, str | None]:
    """Who was asked, as residents hear it: a role and the place's own organisation (3栋党小组),
    never a person; the reader's page names it (`words.public_role`)."""
    org = responder.place.org_name if responder.place and responder.place.org_name else None
    return {"role": str(responder.role), "org": org}


def duration(wait: timedelta) -> str:
    minutes = wait.total_seconds() / 60
    if minutes >= 120 and minutes % 60 == 0:
        return f"{minutes / 60:g} 小时"
    return f"{minutes:g} 分钟" if minutes >= 1 else f"{wait.total_seconds():g} 秒"


def when(at: datetime, zone: ZoneInfo) -> str:
    """A moment as the ladder's messages say it: 12月7日 周一 08:30."""
    moment = clock.local(at, zone)
    return f"{moment.month}月{moment.day}日 {words.WEEKDAY_NAMES[moment.weekday()]} {moment:%H:%M}"
