"""The names people read for the service's codes, in Chinese and English, in one place.

Every page, message, export and timeline line that shows a rung, a status, a role, a channel
or a weekday takes its words from here, so a status is called the same on the board, in the
monthly Excel and on the member's phone. Times are formatted by `dispatch.clock`
(`format_local`), which is the one owner of zones.

Each table maps a code to its Chinese name; `*_EN` tables hold English for the pages that
switch language (the resident pages; staff and members work in Chinese).
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatch.models import (
    CaseStatus,
    Channel,
    MemberKind,
    Resolution,
    Role,
    Rung,
    Urgency,
)

RUNG_NAMES: Mapping[int, str] = {Rung.BUILDING: "楼栋", Rung.GRID: "网格",
                                 Rung.COMMUNITY: "社区", Rung.DISTRICT: "街道/区"}
RUNG_NAMES_EN: Mapping[int, str] = {Rung.BUILDING: "building", Rung.GRID: "grid",
                                    Rung.COMMUNITY: "community",
                                    Rung.DISTRICT: "street and district"}

#: Where a case stands, as staff and members read it.
STATUS_NAMES: Mapping[str, str] = {
    CaseStatus.OPEN: "待接单", CaseStatus.ACCEPTED: "已接单", CaseStatus.ON_SITE: "已到场",
    CaseStatus.RESOLVED: "已解决，待回访", CaseStatus.CLOSED: "已办结"}
RESOLUTION_NAMES: Mapping[str, str] = {Resolution.FIXED: "已解决",
                                       Resolution.NOT_FIXED: "未解决",
                                       Resolution.DUPLICATE: "重复",
                                       Resolution.REFERRED: "已转办"}
URGENCY_NAMES: Mapping[str, str] = {Urgency.URGENT: "紧急", Urgency.NORMAL: "一般",
                                    Urgency.LOW: "较低"}

ROLE_NAMES: Mapping[str, str] = {
    Role.LEADER: "楼栋长", Role.BACKUP: "楼栋党小组成员", Role.SECRETARY: "网格支部书记",
    Role.GRID_MEMBER: "网格员", Role.DUTY_DESK: "社区值班", Role.PROPERTY: "物业服务中心",
    Role.OWNERS: "业主委员会", Role.POLICE: "社区民警", Role.DOCTOR: "家庭医生",
    Role.ELEVATOR: "电梯维保", Role.DEPARTMENT: "街道/区部门",
}
#: How residents are told who was asked: organisations and roles, never people (zh, en).
PUBLIC_ROLE_NAMES: Mapping[str, tuple[str, str]] = {
    Role.LEADER: ("楼栋党小组", "the building's party group"),
    Role.BACKUP: ("楼栋党小组", "the building's party group"),
    Role.SECRETARY: ("网格党支部", "the grid's party branch"),
    Role.GRID_MEMBER: ("网格党支部", "the grid's party branch"),
    Role.DUTY_DESK: ("社区值班人员", "the community duty desk"),
    Role.PROPERTY: ("物业服务中心", "the property service desk"),
    Role.OWNERS: ("业主委员会", "the owners' committee"),
    Role.POLICE: ("社区民警", "the community police officer"),
    Role.DOCTOR: ("家庭医生", "the family doctor"),
    Role.ELEVATOR: ("电梯维保单位", "the elevator maintainer"),
    Role.DEPARTMENT: ("街道/区相关部门", "the street and district departments"),
}
MEMBER_KIND_NAMES: Mapping[str, str] = {
    MemberKind.PARTY_MEMBER: "党员", MemberKind.VOLUNTEER: "志愿者",
    MemberKind.STAFF: "社区工作者", MemberKind.PROPERTY: "物业", MemberKind.POLICE: "民警",
    MemberKind.DOCTOR: "家庭医生", MemberKind.ELEVATOR: "电梯维保",
    MemberKind.DEPARTMENT: "街道/区部门"}

CHANNEL_NAMES: Mapping[str, str] = {Channel.SMS: "短信", Channel.VOICE: "电话",
                                    Channel.PUSH: "推送", Channel.WECOM: "企业微信",
                                    Channel.ROBOT: "群机器人",
                                    Channel.CONSOLE: "控制台消息"}

#: Monday first, as `date.weekday()` counts: 周一 … 周日.
WEEKDAYS = "一二三四五六日"
WEEKDAY_NAMES = tuple(f"周{day}" for day in WEEKDAYS)


def rung(value: int | None) -> str:
    """A rung's name, or its number when it is not one of the four."""
    return RUNG_NAMES.get(value, str(value)) if value is not None else ""


def channel(value: str, default: str = "消息") -> str:
    return CHANNEL_NAMES.get(value, default)


def public_role(role: str, org: str | None, language: str = "zh") -> str:
    """Who was asked, for a resident: the place's own organisation in Chinese (3栋党小组), else
    the role's public name."""
    zh, en = PUBLIC_ROLE_NAMES.get(role, ("值守人员", "the responders"))
    if language == "en":
        return en
    return org if org and role in (Role.LEADER, Role.BACKUP, Role.SECRETARY,
                                   Role.GRID_MEMBER) else zh
