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
    ContactStatus,
    MemberKind,
    NotificationStatus,
    OverrideKind,
    ReportKind,
    Resolution,
    Role,
    Rung,
    Solved,
    StaffRole,
    StickerStatus,
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

#: How a report came in.
REPORT_KIND_NAMES: Mapping[str, str] = {
    ReportKind.MESSAGE: "扫码留言", ReportKind.CALL: "扫码呼叫", ReportKind.ME_TOO: "我也遇到了",
    ReportKind.PHONE: "来电登记"}

#: The staff console's names of timeline lines (`dispatch.case.timeline.EventKind`), kind → 中文.
EVENT_KIND_NAMES: Mapping[str, str] = {
    "reported": "反映", "joined": "又有反映", "notified": "通知", "delivered": "送达",
    "send_failed": "发送失败", "resent": "重发", "retried": "换渠道重发",
    "contact_problem": "号码问题", "called": "来电", "skipped": "跳过", "escalated": "升级",
    "accepted": "接单", "on_site": "到场", "resolved": "解决", "handed_over": "转交",
    "reminded": "提醒", "stuck": "无人接单", "referred": "转办", "callback": "回访",
    "reopened": "重新派单", "closed": "办结", "note": "备注", "merged": "合并",
    "dispatched": "指派", "reclassified": "改类"}

#: Why a message was sent (`dispatch.outbox.Purpose`).
PURPOSE_NAMES: Mapping[str, str] = {
    "alert": "派单通知", "taken": "已有人接单", "reminder": "到场提醒", "handover": "转交",
    "stuck": "无人接单告警", "push_code": "推送验证码", "assigned": "工作人员指派"}
NOTIFICATION_STATUS_NAMES: Mapping[str, str] = {
    NotificationStatus.PENDING: "待发送", NotificationStatus.SENDING: "发送中",
    NotificationStatus.SENT: "已发出", NotificationStatus.DELIVERED: "已送达",
    NotificationStatus.UNDELIVERED: "未送达", NotificationStatus.FAILED: "发送失败",
    NotificationStatus.CANCELLED: "已取消"}
SOLVED_NAMES: Mapping[str, str] = {Solved.YES: "已解决", Solved.PARTLY: "部分解决",
                                   Solved.NO: "未解决"}
STAFF_ROLE_NAMES: Mapping[str, str] = {StaffRole.ADMIN: "管理员",
                                       StaffRole.GRID_SECRETARY: "网格书记",
                                       StaffRole.VIEWER: "只读"}
STICKER_STATUS_NAMES: Mapping[str, str] = {StickerStatus.ACTIVE: "使用中",
                                           StickerStatus.RETIRED: "已停用",
                                           StickerStatus.REVOKED: "已作废"}
CONTACT_STATUS_NAMES: Mapping[str, str] = {ContactStatus.OK: "正常",
                                           ContactStatus.BROKEN: "号码无效",
                                           ContactStatus.STOPPED: "已退订",
                                           ContactStatus.PENDING: "待验证"}
OVERRIDE_KIND_NAMES: Mapping[str, str] = {OverrideKind.LEAVE: "请假",
                                          OverrideKind.ON_DUTY: "顶班"}


#: The console's audit log: what each recorded staff action was.
AUDIT_ACTION_NAMES: Mapping[str, str] = {
    "case.note": "添加备注", "case.close": "办结", "case.merge": "合并重复案件",
    "case.callback": "记录电话回访", "case.reassign": "指派/改派", "case.refer": "上报上一级",
    "case.reclassify": "改类", "case.intake": "来电登记",
    "roster.member.add": "添加成员", "roster.member.update": "修改成员",
    "roster.contact.add": "添加号码", "roster.contact.ok": "号码已核对",
    "roster.contact.delete": "删除号码", "roster.responsibility.add": "添加职责",
    "roster.responsibility.delete": "删除职责", "roster.shift.add": "添加班次",
    "roster.shift.delete": "删除班次", "roster.override.add": "添加请假/顶班",
    "roster.override.delete": "删除请假/顶班", "notice.post": "发布公告", "notice.end": "结束公告",
    "blocklist.add": "加入黑名单", "blocklist.remove": "移出黑名单",
    "stickers.sheet": "打印贴纸", "stickers.reissue": "补发贴纸", "stickers.retire": "停用贴纸",
    "stickers.revoke": "作废贴纸", "auth.login": "登录", "auth.logout": "退出"}


def yes_no(value: bool | None) -> str:
    """是 / 否, or — when nobody said."""
    return "—" if value is None else ("是" if value else "否")


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
