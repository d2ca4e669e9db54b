"""A case as the resident sees it: its state and timeline in plain words, in local time.

The engine marks the events residents may see (`data["shown"]`) and stores their parameters
(display names only: 李师傅); this module words them in the page's language when the page is
read (Babel, `dispatch/translations`), with names of codes from `dispatch.words`. Reported,
joined, callback and reopened are always shown; staff notes, delivery attempts and skipped
rungs stay internal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_skeleton, format_time
from flask_babel import gettext as _
from flask_babel import ngettext

from dispatch import clock, security, words
from dispatch.case.timeline import EventKind
from dispatch.community import settings
from dispatch.ladder import step
from dispatch.models import Case, CaseEvent, CaseStatus, Resolution
from dispatch.resident import i18n


@dataclass(frozen=True, slots=True)
class Line:
    at: datetime
    when: str  # local time as shown: 10:02, or 11月27日 10:02 on another day
    text: str


def lines(case: Case, now: datetime | None = None) -> list[Line]:
    """The public timeline of a case, oldest first."""
    zone = clock.zone(case.community.timezone)
    shown = []
    for event in case.events:
        text = event_text(event, zone, now)
        if text:
            shown.append(Line(event.at, local_time(event.at, zone, now), text))
    return shown


def event_text(event: CaseEvent, zone: ZoneInfo | None = None,
               now: datetime | None = None) -> str | None:
    """What the resident reads for one event, in the page's language, or None if it is
    internal. Events carry a kind and parameters (`data["shown"]` marks the ones residents
    see); the words are chosen here, when the page is read."""
    kind, data = event.kind, event.data
    if kind == EventKind.REPORTED:
        return _("已收到反映")
    if kind == EventKind.JOINED:
        if data.get("report_kind") == "me_too":
            return _("又有邻居也遇到了这个问题")
        return _("又有邻居反映了这个问题")
    if kind == EventKind.CALLBACK:
        return {"yes": _("居民回访：已解决"), "partly": _("居民回访：部分解决"),
                "no": _("居民回访：未解决")}.get(str(data.get("solved")), _("居民已回访"))
    if kind == EventKind.REOPENED:
        return _("未解决，已重新派单")
    if data.get("shown"):
        return _shown_text(event, zone or clock.zone(event.case.community.timezone), now)
    # Events written before their words were chosen at reading time kept their text.
    public = data.get("public")
    if not public:
        return None
    if i18n.language() == "en" and data.get("public_en"):
        return str(data["public_en"])
    return str(public)


def _shown_text(event: CaseEvent, zone: ZoneInfo, now: datetime | None) -> str | None:
    kind, data = event.kind, event.data
    name = str(data.get("name", ""))
    rung = int(data.get("rung") or 0)
    if kind == EventKind.NOTIFIED:
        language = i18n.language()
        names = [words.public_role(str(who.get("role")), who.get("org"), language)
                 for who in data.get("asked") or []]
        if language == "en":
            whom = (", ".join(dict.fromkeys(names))
                    or f"the {words.RUNG_NAMES_EN.get(rung, '')} responders")
        else:
            whom = "、".join(dict.fromkeys(names)) or f"{words.rung(rung)}负责人"
        return _("已再次通知%(whom)s", whom=whom) if data.get("repeat") else _(
            "已通知%(whom)s", whom=whom)
    if kind == EventKind.ESCALATED:
        if i18n.language() == "en":
            return _("已上报%(rung)s", rung=words.RUNG_NAMES_EN.get(rung, ""))
        return _("已上报%(rung)s", rung=words.rung(rung))
    if kind == EventKind.REFERRED:
        return _("已转交街道/区相关部门办理，时限 %(hours)s 小时",
                 hours=f"{float(data.get('hours', 0)):g}")
    if kind == EventKind.ACCEPTED:
        return _("%(name)s已接单", name=name)
    if kind == EventKind.ON_SITE:
        return _("%(name)s已到场", name=name)
    if kind == EventKind.RESOLVED:
        return _("%(name)s已处理完毕", name=name)
    if kind == EventKind.HANDED_OVER:
        return _("已转交%(name)s处理", name=name)
    if kind == EventKind.DISPATCHED:
        return _("已指派%(name)s处理", name=name)
    if kind == EventKind.RECLASSIFIED:
        found = settings.category(event.case.community, str(data.get("category_to")))
        named = i18n.category_name(found) if found else str(data.get("category_to"))
        return _("问题类型更正为：%(category)s", category=named)
    if kind == EventKind.CLOSED:
        return _("已办结")
    if kind == EventKind.MERGED:
        if data.get("why") == "not_solved":
            return _("问题未解决，已并入正在处理的 %(number)s", number=data.get("number", ""))
        return _("与正在处理的 %(number)s 是同一问题，已合并", number=data.get("number", ""))
    if kind == EventKind.CALLED:
        return _("居民来电已接通") if data.get("answered") else _("已登记来电")
    if kind == EventKind.NOTE and data.get("resume"):
        resume = datetime.fromisoformat(str(data["resume"]))
        return _("已受理，将在工作时间（%(when)s）通知处理",
                 when=local_time(resume, zone, now))
    return None


def status_text(case: Case, now: datetime | None = None) -> str:
    """One sentence for where the case stands, true to the schedule: a low-urgency case that
    waits for working hours says when it will be passed on, not that it is being passed on."""
    if case.status == CaseStatus.OPEN:
        now = now or clock.now()
        waiting = step.waiting_for_hours(case, now)
        if waiting is not None:
            return _("非紧急，将在工作时间 %(when)s 通知负责人",
                     when=weekday_time(waiting, clock.zone(case.community.timezone), now))
        if case.first_notified_at:
            return _("已通知负责人，等待接单")
        return _("已收到，正在通知负责人")
    if case.status == CaseStatus.ACCEPTED:
        if case.accepted_by is not None:
            return _("%(name)s已接单，正在处理", name=case.accepted_by.display_name)
        return _("已有人接单，正在处理")
    if case.status == CaseStatus.ON_SITE:
        return _("处理人员已到场")
    if case.status == CaseStatus.RESOLVED:
        return _("已处理完毕，请您回访")
    if case.resolution == Resolution.REFERRED:
        return _("已转交有关部门办理")
    if case.resolution == Resolution.NOT_FIXED:
        return _("已办结（未解决）")
    return _("已办结")


def result_shown(case: Case) -> bool:
    """Whether the case's 办理结果 is shown: it is resolved, or closed as fixed."""
    return case.status in (CaseStatus.RESOLVED, CaseStatus.CLOSED) \
        and case.resolution == Resolution.FIXED


def result(case: Case) -> str | None:
    """办理结果: what the member who resolved the case wrote, once it is resolved or closed as
    fixed (phone numbers taken out: the status page is public to whoever has the link)."""
    if not result_shown(case):
        return None
    notes = [str(e.data.get("note") or "").strip() for e in case.events
             if e.kind == EventKind.RESOLVED]
    note = notes[-1] if notes else ""
    return security.without_phones(note) if note else None


def weekday_time(at: datetime, zone: ZoneInfo, now: datetime) -> str:
    """A moment within the coming week as its weekday and time (周一 08:30, Mon 08:30); with
    the date when it is further off."""
    local = clock.local(at, zone)
    locale = i18n.language()
    shown = format_datetime(local, "EEE HH:mm", locale=locale)
    if (local.date() - clock.today(zone, now)).days >= 7:
        return f"{format_skeleton('MMMd', local, locale=locale)} {shown}"
    return shown


def category_name(case: Case) -> str:
    found = settings.category(case.community, case.category)
    return i18n.category_name(found) if found else case.category


def respond_within(minutes: int) -> str:
    """The expected response in plain words: 30 分钟内, 24 小时内, 7 天内."""
    if minutes < 60:
        return ngettext("%(num)d 分钟内", "%(num)d 分钟内", minutes)
    if minutes % 60 == 0 and minutes <= 48 * 60:
        hours = minutes // 60
        return ngettext("%(num)d 小时内", "%(num)d 小时内", hours)
    days = max(1, round(minutes / (24 * 60)))
    return ngettext("%(num)d 天内", "%(num)d 天内", days)


def local_time(at: datetime, zone: ZoneInfo, now: datetime | None = None) -> str:
    """A moment in the community's time zone: the time alone today, with the date otherwise."""
    local = clock.local(at, zone)
    locale = i18n.language()
    hour = format_time(local, "HH:mm", locale=locale)
    if local.date() == clock.today(zone, now or clock.now()):
        return hour
    return f"{format_skeleton('MMMd', local, locale=locale)} {hour}"
