"""What each channel is handed for an outbox row, composed here so the channels stay leaves.

The row's `body` is the message as decided; a channel gets it in its own form: SMS text with
its reply line, or a list when pacing bundled several rows into one SMS; an Alibaba Cloud
template's parameters; a push payload with the member's action links; a WeCom card (an alert
with 接单 / 转交 / 查看 buttons), or, for "someone else took it", the update of the card the
member already has.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dispatch import links, words
from dispatch.channels import robots
from dispatch.channels.base import UNCERTAIN, OutgoingMessage, Sender
from dispatch.community import settings
from dispatch.db import db
from dispatch.models import Notification
from dispatch.outbox import Purpose, groups, pacing
from dispatch.outbox.replies import describe, hint

#: What a mainland SMS template says the member should do, by purpose.
ACTIONS = {Purpose.ALERT: "请接单", Purpose.TAKEN: "已有人接单，无需前往",
           Purpose.REMINDER: "请尽快到场", Purpose.HANDOVER: "转交给您",
           Purpose.STUCK: "请安排处理"}
#: The same, for the two messages a resident gets.
RESIDENT_ACTIONS = {Purpose.RECEIPT: "已受理，查看进度", Purpose.CALLBACK: "已处理，请回访"}
#: Template variables are limited in length by the carriers' rules.
PARAM_MAX = 35
#: Purposes someone must act on now.
URGENT = (Purpose.ALERT, Purpose.STUCK, Purpose.CALL)


def message_for(notification: Notification, sender: Sender) -> OutgoingMessage:
    """The row as `sender` gets it. The first attempt's text is kept on the row
    (`sent_text`): a bundle's list and its signed link would otherwise differ on a retry, and
    a sender that looks up an uncertain send could not recognise the first message."""
    form = getattr(sender, "form", "text")
    update_of = card_to_update(notification) if form == "card" else None
    text = notification.sent_text
    if text is None:
        if form == "robot":
            text = robots.combine([row.body for row in [notification,
                                                        *pacing.bundled(notification)]])
        elif update_of:
            text = card_update_text(notification)
        else:
            text = sms_text(notification, two_way=bool(getattr(sender, "two_way", False)))
        notification.sent_text = text
    return OutgoingMessage(
        id=notification.id, channel=str(notification.channel), to=notification.to_address,
        text=text, created_at=notification.created_at,
        uncertain=notification.error_code in UNCERTAIN,
        urgent=notification.purpose in URGENT,
        template_params=template_params(notification) if form == "template" else {},
        push_keys=notification.contact.push_keys if notification.contact else None,
        push_payload=push_payload(notification) if form == "push" else {},
        card=card(notification) if form == "card" and not update_of else {},
        update_of=update_of,
        robot=(groups.robot_for(notification.case, notification.to_address)
               if form == "robot" and notification.case is not None else {}))


def sms_text(notification: Notification, *, two_way: bool) -> str:
    """The SMS text: the row's body with its reply line, or the list of a bundle."""
    rows, cases = [], set()
    for row in [notification, *pacing.bundled(notification)]:
        if row.case_id not in cases:  # two alerts about one case are listed once
            cases.add(row.case_id)
            rows.append(row)
    if len(rows) == 1:
        line = hint(notification) if two_way else ""
        return notification.body + (f"\n{line}" if line else "")
    lines = [f"【邻里】您有 {len(rows)} 件待接单："]
    for row in rows:
        if row.case is None:
            continue
        code = f"{row.reply_code} " if two_way and row.reply_code else ""
        lines.append(f"{code}{describe(row.case)}（{row.case.number}）")
    if two_way:
        first = next((r.reply_code for r in rows if r.reply_code), "1")
        lines.append(f"回复编号接单，编号加D表示已解决（如 {first} 或 {first}D）")
    if notification.member_id is not None:
        lines.append(f"查看全部：{links.url(links.Purpose.MEMBER, notification.member_id)}")
    return "\n".join(lines)


def template_params(notification: Notification) -> dict[str, str]:
    """A mainland SMS template's variables for this row (a bundle lists how many cases wait).

    The template registered under `ALIYUN_SMS_TEMPLATE_CODE` uses them, for example:
    ``${place}${what}（${number}）${action}，详情 ${link}``.
    """
    case, member_id = notification.case, notification.member_id
    cases = {row.case_id for row in [notification, *pacing.bundled(notification)]}
    if case is not None and notification.purpose in RESIDENT_ACTIONS:
        # To a resident (`outbox.residents`): the body ends with their own status link.
        return {"place": case.place.label[:PARAM_MAX], "what": describe(case).split(" ")[0],
                "number": case.number, "action": RESIDENT_ACTIONS[notification.purpose],
                "link": notification.body.rsplit("：", 1)[-1]}
    if case is None or member_id is None:
        return {"place": "", "what": notification.body[:PARAM_MAX], "number": "",
                "action": "", "link": ""}
    if len(cases) > 1:
        return {"place": f"{case.place.label[:PARAM_MAX - 2]}等", "what": f"{len(cases)}件事项",
                "number": case.number, "action": "请接单",
                "link": links.url(links.Purpose.MEMBER, member_id)}
    return {"place": case.place.label[:PARAM_MAX], "what": describe(case).split(" ")[0],
            "number": case.number, "action": ACTIONS.get(notification.purpose, "请查看"),
            "link": links.url(links.Purpose.CASE, member_id, case.id)}


def push_payload(notification: Notification) -> dict[str, Any]:
    """What the service worker shows: a title, the text, and the member's action links."""
    case, member_id = notification.case, notification.member_id
    data: dict[str, Any] = {"title": "邻里", "body": notification.body,
                            "tag": f"linli-{notification.id}", "actions": []}
    if case is None or member_id is None:
        return data
    data["title"] = f"邻里：{describe(case)}"
    data["tag"] = f"linli-case-{case.id}"
    data["url"] = links.url(links.Purpose.CASE, member_id, case.id)
    if notification.purpose in (Purpose.ALERT, Purpose.STUCK, Purpose.HANDOVER):
        data["actions"].append({"action": "accept", "title": "接单",
                                "url": links.url(links.Purpose.ACCEPT, member_id, case.id)})
    if notification.purpose != Purpose.TAKEN:
        data["actions"].append({"action": "resolve", "title": "已解决",
                                "url": links.url(links.Purpose.RESOLVE, member_id, case.id)})
    return data


#: What a card's title says, by purpose.
CARD_TITLES = {Purpose.ALERT: "请接单", Purpose.REMINDER: "请尽快到场", Purpose.TAKEN: "已有人接单",
               Purpose.HANDOVER: "转交给您", Purpose.STUCK: "无人接单，请安排处理"}


def card(notification: Notification) -> dict[str, Any]:
    """A WeCom card's fields: the place, the category, its urgency and how many residents
    reported it, named `linli-<row id>` so a click names the row it answers."""
    case, member_id = notification.case, notification.member_id
    if case is None or member_id is None:
        return {"task_id": f"linli-{notification.id}", "title": "邻里",
                "place": notification.body[:44], "category": "", "urgency": "", "reports": 0}
    found = settings.category(case.community, case.category)
    return {"task_id": f"linli-{notification.id}",
            "title": f"{CARD_TITLES.get(notification.purpose, '请查看')}：{case.number}",
            "place": case.place.label, "category": found.name if found else case.category,
            "urgency": words.URGENCY_NAMES.get(case.urgency, str(case.urgency)),
            "reports": case.report_count,
            "view_url": links.url(links.Purpose.CASE, member_id, case.id)}


def card_to_update(notification: Notification) -> str | None:
    """For "someone else took it" on WeCom: the `follow_up` code of the card the member has
    about this case (their newest one), so it is updated instead of a second message sent."""
    if notification.purpose != Purpose.TAKEN or notification.case_id is None:
        return None
    return db.session.scalar(
        sa.select(Notification.follow_up)
        .where(Notification.case_id == notification.case_id,
               Notification.member_id == notification.member_id,
               Notification.channel == notification.channel,
               Notification.follow_up.is_not(None))
        .order_by(Notification.id.desc()).limit(1))


def card_update_text(notification: Notification) -> str:
    """What the updated card's button reads: "已由王建国接单" (WeCom allows 20 characters)."""
    acceptor = notification.case.accepted_by if notification.case is not None else None
    return (f"已由{acceptor.name}接单" if acceptor is not None else "已有人接单")[:20]
