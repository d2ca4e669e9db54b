"""The community and its cases, as SQLAlchemy 2.x typed models.

Vocabulary (see the README glossary): 社区 community; 网格 grid, each with a party branch (支部);
楼栋 building, each with a party group (党小组); 单元 unit (a stairwell entrance); 电梯 elevator;
a shared area (gate, garage, square) hangs under a grid. A *case* is one problem at one place;
each resident scan or call about it is a *report*. 回访 is the callback to the resident after a
case is resolved.

No column has a default time: the code that writes a row gives it the time of its decision,
taken from the one clock (`dispatch/clock.py`), so a row and its decision never disagree.
"""

from __future__ import annotations

import enum
import secrets
from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dispatch.db import Model


class PlaceKind(enum.StrEnum):
    GRID = "grid"
    BUILDING = "building"
    UNIT = "unit"
    ELEVATOR = "elevator"
    AREA = "area"


#: Which kind of place may sit under which: the shape of a community.
PLACE_PARENTS: dict[PlaceKind, PlaceKind | None] = {
    PlaceKind.GRID: None,
    PlaceKind.BUILDING: PlaceKind.GRID,
    PlaceKind.UNIT: PlaceKind.BUILDING,
    PlaceKind.ELEVATOR: PlaceKind.UNIT,
    PlaceKind.AREA: PlaceKind.GRID,
}


class MemberKind(enum.StrEnum):
    """Who a person is; what they answer for is a `Responsibility`."""

    PARTY_MEMBER = "party_member"
    VOLUNTEER = "volunteer"
    STAFF = "staff"  # community workers (社区工作者)
    PROPERTY = "property"  # property management / 智能管家 service desk
    POLICE = "police"  # 一居一警 community officer
    DOCTOR = "doctor"  # 家庭医生 family doctor
    ELEVATOR = "elevator"  # elevator maintenance company
    DEPARTMENT = "department"  # street office or district department


class Rung(enum.IntEnum):
    """The escalation ladder: 小事不出楼栋、难事不出网格、大事不出社区."""

    BUILDING = 1
    GRID = 2
    COMMUNITY = 3
    DISTRICT = 4


class Role(enum.StrEnum):
    """What a person does at a rung; routing rules name roles."""

    LEADER = "leader"  # 党小组长 / 楼栋长
    BACKUP = "backup"
    SECRETARY = "secretary"  # 网格支部书记 / 网格长
    GRID_MEMBER = "grid_member"
    DUTY_DESK = "duty_desk"  # 社区值班: the party committee, residents' committee, workstation
    PROPERTY = "property"
    OWNERS = "owners"  # 业主委员会, one of the "5" of "5+1"
    POLICE = "police"
    DOCTOR = "doctor"
    ELEVATOR = "elevator"
    DEPARTMENT = "department"  # the "1" of "5+1": city and district departments


#: The rung a role answers at unless a responsibility says otherwise.
ROLE_RUNGS: dict[Role, Rung] = {
    Role.LEADER: Rung.BUILDING,
    Role.BACKUP: Rung.BUILDING,
    Role.SECRETARY: Rung.GRID,
    Role.GRID_MEMBER: Rung.GRID,
    Role.DUTY_DESK: Rung.COMMUNITY,
    Role.PROPERTY: Rung.COMMUNITY,
    Role.OWNERS: Rung.COMMUNITY,
    Role.POLICE: Rung.COMMUNITY,
    Role.DOCTOR: Rung.COMMUNITY,
    Role.ELEVATOR: Rung.COMMUNITY,
    Role.DEPARTMENT: Rung.DISTRICT,
}


class Channel(enum.StrEnum):
    SMS = "sms"
    VOICE = "voice"
    PUSH = "push"
    WECOM = "wecom"  # a WeCom (企业微信) application message; the address is the userid
    ROBOT = "robot"  # a work group's robot; the address names the group's place (robot:TS-G1)
    CONSOLE = "console"


class ContactStatus(enum.StrEnum):
    OK = "ok"
    BROKEN = "broken"  # the provider said the number is invalid
    STOPPED = "stopped"  # the person replied STOP
    PENDING = "pending"  # a push subscription waiting for the code sent to the member's phone


class OverrideKind(enum.StrEnum):
    LEAVE = "leave"  # not on duty in the window, whatever the shifts say
    ON_DUTY = "on_duty"  # on duty in the window, whatever the shifts say (a swap's other half)


class StickerStatus(enum.StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"  # replaced by a reissued sticker and taken out of use by staff
    REVOKED = "revoked"  # abused: scanning it reaches no member


class Urgency(enum.StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"
    LOW = "low"


class CaseStatus(enum.StrEnum):
    OPEN = "open"  # climbing the ladder, nobody has accepted
    ACCEPTED = "accepted"
    ON_SITE = "on_site"
    RESOLVED = "resolved"  # the responder says it is done; awaiting 回访
    CLOSED = "closed"


OPEN_STATUSES = (CaseStatus.OPEN, CaseStatus.ACCEPTED, CaseStatus.ON_SITE)


class Resolution(enum.StrEnum):
    FIXED = "fixed"
    NOT_FIXED = "not_fixed"  # closed, but honestly not fixed
    DUPLICATE = "duplicate"
    REFERRED = "referred"  # handed to a street/district department


class ReportKind(enum.StrEnum):
    MESSAGE = "message"
    CALL = "call"
    ME_TOO = "me_too"  # 我也遇到了
    PHONE = "phone"  # a resident's call to the desk, logged by staff (/staff/intake)


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"  # the provider took it and returned its id
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"  # no longer needed (the case was accepted meanwhile)


class Solved(enum.StrEnum):
    YES = "yes"
    PARTLY = "partly"
    NO = "no"


class StaffRole(enum.StrEnum):
    ADMIN = "admin"
    GRID_SECRETARY = "grid_secretary"
    VIEWER = "viewer"


class Community(Model):
    """A residential community (社区) with its own time zone, hotline and dispatch settings.

    `settings` holds the community file's categories, escalation policies and routing rules
    (see `dispatch.community.settings`).
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    timezone: Mapped[str] = mapped_column(sa.String(64), default="Asia/Shanghai")
    hotline: Mapped[str] = mapped_column(sa.String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]

    places: Mapped[list[Place]] = relationship(back_populates="community")
    members: Mapped[list[Member]] = relationship(back_populates="community")

    def __repr__(self) -> str:
        return f"<Community {self.code} {self.name}>"


class Place(Model):
    """A grid, building, unit, elevator or shared area; codes are stable keys for files."""

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(sa.ForeignKey("community.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("place.id"), index=True)
    kind: Mapped[PlaceKind]
    code: Mapped[str] = mapped_column(sa.String(48), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    #: The party organisation here: the grid's branch (支部) or the building's group (党小组).
    org_name: Mapped[str | None] = mapped_column(sa.String(100))
    floors: Mapped[int | None]
    households: Mapped[int | None]
    notes: Mapped[str | None] = mapped_column(sa.Text)
    position: Mapped[int] = mapped_column(default=0)

    community: Mapped[Community] = relationship(back_populates="places")
    parent: Mapped[Place | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Place]] = relationship(back_populates="parent")

    def lineage(self) -> list[Place]:
        """This place and its ancestors, nearest first (elevator → unit → building → grid)."""
        chain: list[Place] = []
        place: Place | None = self
        while place is not None:
            chain.append(place)
            place = place.parent
        return chain

    def ancestor(self, kind: PlaceKind) -> Place | None:
        """The nearest place of `kind` in this place's lineage, itself included."""
        return next((p for p in self.lineage() if p.kind == kind), None)

    @property
    def label(self) -> str:
        """The place without the community, unique within it: 3栋 2单元 · 1号电梯.

        The one name of a place everywhere: the printed sticker, the page it opens, messages
        and the console. Units and elevators carry their building; a shared area hanging off
        a grid carries the grid's name (第一网格 · 南门), since every grid may have its own 南门.
        """
        if self.kind == PlaceKind.AREA and self.parent is not None \
                and self.parent.kind == PlaceKind.GRID:
            return f"{self.parent.name} · {self.name}"
        names = [p.name for p in reversed(self.lineage()) if p.kind != PlaceKind.GRID]
        if self.kind == PlaceKind.ELEVATOR and len(names) > 1:
            return " ".join(names[:-1]) + " · " + names[-1]
        return " ".join(names) or self.name

    @property
    def full_name(self) -> str:
        """The place as printed on a sticker: 东湖花园 3栋 2单元 · 1号电梯."""
        return f"{self.community.name} {self.label}"

    def __repr__(self) -> str:
        return f"<Place {self.code} {self.kind.value}>"


class Member(Model):
    """A person who may be asked to respond: party member, volunteer, staff or outside party."""

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(sa.ForeignKey("community.id"), index=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    #: How residents see this person on public pages (李师傅); never a phone number.
    public_name: Mapped[str | None] = mapped_column(sa.String(50))
    kind: Mapped[MemberKind]
    organisation: Mapped[str | None] = mapped_column(sa.String(100))
    is_party_member: Mapped[bool] = mapped_column(default=False)
    grid_id: Mapped[int | None] = mapped_column(sa.ForeignKey("place.id"))
    #: Do-not-disturb hours in the community's local time; may wrap past midnight.
    dnd_start: Mapped[time | None]
    dnd_end: Mapped[time | None]
    #: Preferred channels, most preferred first, e.g. ["push", "sms", "voice"].
    channel_order: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(default=True)
    notes: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime]

    community: Mapped[Community] = relationship(back_populates="members")
    grid: Mapped[Place | None] = relationship()
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="member", cascade="all, delete-orphan", order_by="Contact.priority"
    )
    responsibilities: Mapped[list[Responsibility]] = relationship(
        back_populates="member", cascade="all, delete-orphan"
    )
    shifts: Mapped[list[Shift]] = relationship(
        back_populates="member", cascade="all, delete-orphan"
    )
    overrides: Mapped[list[DutyOverride]] = relationship(
        back_populates="member", cascade="all, delete-orphan", foreign_keys="DutyOverride.member_id"
    )

    @property
    def display_name(self) -> str:
        """Surname and a courtesy title, the only name shown to residents."""
        return self.public_name or f"{self.name[:1]}师傅"

    def __repr__(self) -> str:
        return f"<Member {self.code} {self.name}>"


class Contact(Model):
    """One way to reach a member: a phone for SMS/voice, or a push subscription."""

    __table_args__ = (sa.UniqueConstraint("member_id", "channel", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("member.id"), index=True)
    channel: Mapped[Channel]
    address: Mapped[str] = mapped_column(sa.String(500))
    status: Mapped[ContactStatus] = mapped_column(default=ContactStatus.OK)
    priority: Mapped[int] = mapped_column(default=0)
    #: A push subscription's keys ({"p256dh": …, "auth": …}); its endpoint is the address.
    push_keys: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]
    #: A pending push subscription: the hash of the code texted to the member, until when it
    #: works, and how many wrong codes were tried (`dispatch.channels.push`).
    confirm_hash: Mapped[str | None] = mapped_column(sa.String(64))
    confirm_until: Mapped[datetime | None]
    confirm_tries: Mapped[int] = mapped_column(default=0, server_default="0")

    member: Mapped[Member] = relationship(back_populates="contacts")


class Responsibility(Model):
    """A member answers for a place (and everything under it) at a rung, in a role."""

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("member.id"), index=True)
    #: None means the whole community (duty desk, police officer, property service desk…).
    place_id: Mapped[int | None] = mapped_column(sa.ForeignKey("place.id"), index=True)
    rung: Mapped[int]
    role: Mapped[Role]
    #: Lower goes first: the leader before the backups.
    position: Mapped[int] = mapped_column(default=0)
    #: Category codes this applies to; empty means every category.
    categories: Mapped[list[Any]] = mapped_column(default=list)

    member: Mapped[Member] = relationship(back_populates="responsibilities")
    place: Mapped[Place | None] = relationship()


class Shift(Model):
    """A weekly duty window in local time; `ends` at or before `starts` runs past midnight.

    A member with no shifts at all is treated as available at any hour (outside
    do-not-disturb), which is how most building volunteers work.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("member.id"), index=True)
    weekday: Mapped[int]  # 0 = Monday, as `date.weekday()`
    starts: Mapped[time]
    ends: Mapped[time]

    member: Mapped[Member] = relationship(back_populates="shifts")


class DutyOverride(Model):
    """A dated exception to the shifts: leave, or on duty for someone else (a swap)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("member.id"), index=True)
    kind: Mapped[OverrideKind]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    #: For a swap: who covers while this member is away.
    stand_in_id: Mapped[int | None] = mapped_column(sa.ForeignKey("member.id"))
    note: Mapped[str | None] = mapped_column(sa.String(200))

    member: Mapped[Member] = relationship(back_populates="overrides", foreign_keys=[member_id])
    stand_in: Mapped[Member | None] = relationship(foreign_keys=[stand_in_id])


class Sticker(Model):
    """A printed QR code tied to a place; the code is the unguessable part of its URL."""

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(16), unique=True)
    place_id: Mapped[int] = mapped_column(sa.ForeignKey("place.id"), index=True)
    status: Mapped[StickerStatus] = mapped_column(default=StickerStatus.ACTIVE)
    #: The sticker this one was reissued to replace, if any.
    replaces_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sticker.id"))
    note: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    place: Mapped[Place] = relationship()


class Scan(Model):
    """One visit to a sticker URL, kept even when the code is unknown or revoked."""

    id: Mapped[int] = mapped_column(primary_key=True)
    sticker_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sticker.id"))
    code_seen: Mapped[str] = mapped_column(sa.String(64))
    action: Mapped[str] = mapped_column(sa.String(16))  # view, call, revoked, unknown
    at: Mapped[datetime]


class Case(Model):
    """One problem at one place, climbing the ladder until someone accepts and resolves it.

    The row is the source of truth for the escalation timer: `rung`, `step`, `next_step_at`
    and the fencing `token`. A step job acts only if the token it carries still matches;
    anything that changes the case's course (accept, escalate now, close) bumps the token so
    stale jobs die by themselves. `open_key` is set to "place:category" while the case is open
    and cleared when it closes: the unique index on it makes concurrent reports of the same
    problem land on one case.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(sa.ForeignKey("community.id"), index=True)
    place_id: Mapped[int] = mapped_column(sa.ForeignKey("place.id"), index=True)
    category: Mapped[str] = mapped_column(sa.String(32))
    urgency: Mapped[Urgency]
    status: Mapped[CaseStatus] = mapped_column(default=CaseStatus.OPEN, index=True)
    resolution: Mapped[Resolution | None]
    open_key: Mapped[str | None] = mapped_column(sa.String(80), unique=True)
    #: The secret in the resident's private status link.
    public_token: Mapped[str] = mapped_column(
        sa.String(32), unique=True, default=lambda: secrets.token_urlsafe(16)
    )
    summary: Mapped[str | None] = mapped_column(sa.Text)
    report_count: Mapped[int] = mapped_column(default=0)

    # The escalation policy copied from the community file when the case opened.
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rung: Mapped[int] = mapped_column(default=Rung.BUILDING)
    step: Mapped[int] = mapped_column(default=0)
    token: Mapped[int] = mapped_column(default=0)
    next_step_at: Mapped[datetime | None] = mapped_column(index=True)

    accepted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("member.id"))
    accepted_rung: Mapped[int | None]
    #: Staff's assignment (指派): who they asked, and who decided. It is not an acceptance:
    #: `accepted_at` waits for the member's own 接单. `dispatched_to_id` is cleared when the
    #: assignment lapses and the ladder takes over again.
    dispatched_to_id: Mapped[int | None] = mapped_column(sa.ForeignKey("member.id"))
    dispatched_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff_user.id"))
    closed_rung: Mapped[int | None]
    merged_into_id: Mapped[int | None] = mapped_column(sa.ForeignKey("case.id"))
    referral_due_at: Mapped[datetime | None]

    # Milestones: what the response-time figures are computed from.
    reported_at: Mapped[datetime] = mapped_column(index=True)
    first_notified_at: Mapped[datetime | None]
    first_delivered_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]  # the first staff assignment
    accepted_at: Mapped[datetime | None]
    on_site_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    stuck_at: Mapped[datetime | None]
    referred_at: Mapped[datetime | None]
    callback_at: Mapped[datetime | None]
    reopen_count: Mapped[int] = mapped_column(default=0)

    # Kept by PostgreSQL's triggers (migration 0016_daily) for the district's figures
    # (`dispatch.metrics.daily`), never written by the application; NULL on SQLite. The latest
    # answered callback's answer, the durations (seconds from the report), and when the case's
    # figures stop depending on the clock (its accept deadline while nobody accepted, its
    # on-site deadline while nobody is there).
    answer_solved: Mapped[str | None] = mapped_column(sa.String(24), deferred=True)
    answer_satisfaction: Mapped[int | None] = mapped_column(deferred=True)
    accept_s: Mapped[float | None] = mapped_column(deferred=True)
    on_site_s: Mapped[float | None] = mapped_column(deferred=True)
    resolve_s: Mapped[float | None] = mapped_column(deferred=True)
    settles_at: Mapped[datetime | None] = mapped_column(deferred=True)

    community: Mapped[Community] = relationship()
    place: Mapped[Place] = relationship()
    accepted_by: Mapped[Member | None] = relationship(foreign_keys=[accepted_by_id])
    dispatched_to: Mapped[Member | None] = relationship(foreign_keys=[dispatched_to_id])
    reports: Mapped[list[Report]] = relationship(
        back_populates="case", order_by="Report.id", foreign_keys="Report.case_id"
    )
    events: Mapped[list[CaseEvent]] = relationship(back_populates="case", order_by="CaseEvent.id")

    @property
    def number(self) -> str:
        """The case number residents and staff quote: community code and a serial."""
        return f"{self.community.code}-{self.id:06d}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def __repr__(self) -> str:
        return f"<Case {self.id} {self.category} {self.status.value} rung={self.rung}>"


class Report(Model):
    """One resident's submission or call about a case; every report is kept."""

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case.id"), index=True)
    place_id: Mapped[int] = mapped_column(sa.ForeignKey("place.id"))
    sticker_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sticker.id"))
    kind: Mapped[ReportKind]
    category: Mapped[str] = mapped_column(sa.String(32))
    text: Mapped[str | None] = mapped_column(sa.Text)
    #: Only for staff and the responder who calls back; never shown on a public page.
    callback_phone: Mapped[str | None] = mapped_column(sa.String(20))
    anonymous: Mapped[bool] = mapped_column(default=False)
    #: A keyed hash of the client address, for rate limiting and abuse review.
    client_hash: Mapped[str | None] = mapped_column(sa.String(64))
    #: For calls: who answered and after how long, as the voice channel reports it.
    call_outcome: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]
    #: The secret in this reporter's own status link, when the report joined a case someone
    #: else opened (the opener's link is the case's `public_token`). NULL for older rows.
    public_token: Mapped[str | None] = mapped_column(
        sa.String(32), unique=True, default=lambda: secrets.token_urlsafe(16))

    case: Mapped[Case] = relationship(back_populates="reports", foreign_keys=[case_id])
    photos: Mapped[list[Photo]] = relationship(back_populates="report")
    voice_notes: Mapped[list[VoiceNote]] = relationship(back_populates="report",
                                                        order_by="VoiceNote.id")


class Photo(Model):
    """A re-encoded photo (metadata stripped): a resident's, attached to a report, or the
    responder's after-photo (办理后), attached to the case it resolved (`case_id`)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int | None] = mapped_column(sa.ForeignKey("report.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("case.id"), index=True)
    content_type: Mapped[str] = mapped_column(sa.String(32))
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
    width: Mapped[int]
    height: Mapped[int]
    #: A small JPEG for the case page (a few KB against the photo's hundreds): made at upload,
    #: or on first view for photos stored before thumbnails existed.
    thumbnail: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)

    report: Mapped[Report | None] = relationship(back_populates="photos")
    after_case: Mapped[Case | None] = relationship(foreign_keys=[case_id])

    @property
    def of_case(self) -> Case:
        """The case the photo belongs to, as a report's or as an after-photo."""
        case = self.report.case if self.report is not None else self.after_case
        assert case is not None, "a photo belongs to a report or a case"
        return case


class PhotoDraft(Model):
    """A re-encoded photo sent with a message form that came back with an error: kept, tied to
    that browser's form token, so the resident need not choose it again (no JavaScript).

    Short-lived: taken into the report when the form is sent again, dropped after
    `dispatch.resident.drafts.LIFETIME` by the sweeper or on the next read.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    #: A keyed hash of the form token the photo came with: only that browser can use it.
    owner: Mapped[str] = mapped_column(sa.String(64), index=True)
    content_type: Mapped[str] = mapped_column(sa.String(32))
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
    width: Mapped[int]
    height: Mapped[int]
    thumbnail: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(index=True)


class VoiceNote(Model):
    """A resident's recording (按住说话) sent with a message, stored as the browser made it
    (`dispatch.resident.voice`: its type is read from its bytes).

    Kept across a form error it is a draft, like a `PhotoDraft`: `report_id` NULL, `owner` the
    keyed hash of the browser's form token; taken into the report when the form is sent again,
    dropped after `dispatch.resident.drafts.LIFETIME`.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int | None] = mapped_column(sa.ForeignKey("report.id"), index=True)
    owner: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    content_type: Mapped[str] = mapped_column(sa.String(32))
    data: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    size: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(index=True)

    report: Mapped[Report | None] = relationship(back_populates="voice_notes")


class CaseEvent(Model):
    """An append-only line of a case's timeline, with the reason in plain words."""

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case.id"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(sa.String(32))
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("member.id"))
    staff_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff_user.id"))
    message: Mapped[str] = mapped_column(sa.Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    case: Mapped[Case] = relationship(back_populates="events")
    member: Mapped[Member | None] = relationship()


class Notification(Model):
    """The outbox: one message to one contact, written in the transaction that decided it.

    `dedupe_key` names the decision (case, rung, step, member, purpose) so deciding twice
    cannot queue two messages. Once `provider_id` is set the provider has the message, and
    it is never sent again.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("case.id"), index=True)
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("member.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(sa.ForeignKey("contact.id"))
    channel: Mapped[Channel]
    to_address: Mapped[str] = mapped_column(sa.String(500))
    purpose: Mapped[str] = mapped_column(sa.String(24))  # alert, taken, reminder, staff…
    body: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[NotificationStatus] = mapped_column(
        default=NotificationStatus.PENDING, index=True
    )
    dedupe_key: Mapped[str] = mapped_column(sa.String(160), unique=True)
    provider_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    reply_code: Mapped[str | None] = mapped_column(sa.String(8))
    rung: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    error_code: Mapped[str | None] = mapped_column(sa.String(16))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    #: The exact text handed to the provider on the first attempt. Retries send it unchanged,
    #: so after a timeout the provider's own list can show whether it already has the message.
    sent_text: Mapped[str | None] = mapped_column(sa.Text)
    #: What the provider handed back for acting on the message later: WeCom's
    #: `response_code`, which updates a sent card ("已由 王师傅 接单").
    follow_up: Mapped[str | None] = mapped_column(sa.String(255))
    #: Sent as part of this other row's message (several cases bundled into one SMS).
    bundled_into_id: Mapped[int | None] = mapped_column(sa.ForeignKey("notification.id"),
                                                        index=True)

    case: Mapped[Case | None] = relationship()
    member: Mapped[Member | None] = relationship()
    contact: Mapped[Contact | None] = relationship()


class EarlyReceipt(Model):
    """A delivery receipt that came before any outbox row had its provider id.

    The provider took a message but its sender never heard so (the answer was a 5xx or
    timed out, or the process died); the row adopts the id later, when its retry looks the
    message up. Kept until then (`dispatch.outbox.receipts.apply_early_receipts`), so the row ends
    delivered or undelivered rather than "sent" for good.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    status: Mapped[NotificationStatus]
    error_code: Mapped[str | None] = mapped_column(sa.String(16))
    received_at: Mapped[datetime] = mapped_column(index=True)


class Notice(Model):
    """A notice staff post for a place, shown on its resident pages (维修中，预计18:00恢复)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    place_id: Mapped[int] = mapped_column(sa.ForeignKey("place.id"), index=True)
    text: Mapped[str] = mapped_column(sa.String(500))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    place: Mapped[Place] = relationship()


class BlockedPhone(Model):
    """A call-back number staff have blocked for abuse."""

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(sa.String(20), unique=True)
    reason: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime]


class Callback(Model):
    """The 回访: the resident's answer after the case was resolved."""

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case.id"), index=True)
    contacted: Mapped[bool | None]
    solved: Mapped[Solved]
    satisfaction: Mapped[int | None]  # 1–5; 4 and 5 count as satisfied for 满意率
    comment: Mapped[str | None] = mapped_column(sa.Text)
    at: Mapped[datetime]

    case: Mapped[Case] = relationship()


class Tally(Model):
    """A running count behind `/metrics`: cases by community and state, acceptances by
    time-to-accept bucket, messages by channel and outcome. Folded from `TallyChange` rows
    (`dispatch.metrics.totals`), so a scrape never counts the whole history."""

    __table_args__ = (sa.UniqueConstraint("metric", "community_id", "channel", "status",
                                          "bucket"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(sa.String(16))  # cases, accept, notifications
    community_id: Mapped[int]  # 0 where the metric is not per community
    channel: Mapped[str] = mapped_column(sa.String(16))  # "" where not per channel
    status: Mapped[str] = mapped_column(sa.String(16))  # "" where not per state
    bucket: Mapped[int]  # index into ACCEPT_EDGES_MINUTES (then "more"); -1 elsewhere
    n: Mapped[int] = mapped_column(sa.BigInteger)
    total: Mapped[float]  # seconds to accept, summed (the histogram's _sum)


class TallyChange(Model):
    """One change to a `Tally`, written by a PostgreSQL trigger in the transaction that
    changed the case or message (+1 for the new state, -1 for the old one), so the counts
    are exact at every snapshot; inserts only, so concurrent writers never wait on a counter.
    `seconds` is an acceptance's time to accept, bucketed when the change is folded."""

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                    primary_key=True)
    metric: Mapped[str] = mapped_column(sa.String(16))
    community_id: Mapped[int]
    channel: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16))
    seconds: Mapped[float | None]
    n: Mapped[int] = mapped_column(sa.BigInteger)
    total: Mapped[float]


class DailyFigure(Model):
    """The figures' counters for the cases reported on one UTC day with one urgency, as they
    stand once every deadline has passed (`dispatch.metrics.daily`). Folded from `DailyChange`
    rows; PostgreSQL only (SQLite computes the figures from the cases)."""

    day: Mapped[date] = mapped_column(primary_key=True)
    urgency: Mapped[str] = mapped_column(sa.String(24), primary_key=True)
    cases: Mapped[int] = mapped_column(sa.BigInteger)
    open: Mapped[int] = mapped_column(sa.BigInteger)
    accepted: Mapped[int] = mapped_column(sa.BigInteger)
    due: Mapped[int] = mapped_column(sa.BigInteger)
    on_time: Mapped[int] = mapped_column(sa.BigInteger)
    site_due: Mapped[int] = mapped_column(sa.BigInteger)
    site_late: Mapped[int] = mapped_column(sa.BigInteger)
    callbacks_due: Mapped[int] = mapped_column(sa.BigInteger)
    answered: Mapped[int] = mapped_column(sa.BigInteger)
    solved: Mapped[int] = mapped_column(sa.BigInteger)
    partly: Mapped[int] = mapped_column(sa.BigInteger)
    not_solved: Mapped[int] = mapped_column(sa.BigInteger)
    satisfied: Mapped[int] = mapped_column(sa.BigInteger)
    closed: Mapped[int] = mapped_column(sa.BigInteger)
    ladder_building: Mapped[int] = mapped_column(sa.BigInteger)
    ladder_grid: Mapped[int] = mapped_column(sa.BigInteger)
    ladder_community: Mapped[int] = mapped_column(sa.BigInteger)
    ladder_referred: Mapped[int] = mapped_column(sa.BigInteger)
    on_site_n: Mapped[int] = mapped_column(sa.BigInteger)
    resolve_n: Mapped[int] = mapped_column(sa.BigInteger)


class DailyDuration(Model):
    """How many cases reported on one UTC day took a duration in one histogram bucket
    (metric 1 accept, 2 on site, 3 resolve; buckets in `linli_daily_bounds()`): where a
    percentile's rank falls, before its value is looked up among the cases."""

    day: Mapped[date] = mapped_column(primary_key=True)
    metric: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[int] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(sa.BigInteger)


class DailyChange(Model):
    """A case's part in the day figures, taken away (-1) or added (+1) by a PostgreSQL trigger
    in the transaction that changed the case or its callbacks; inserts only, like
    `TallyChange`, and folded into `DailyFigure` and `DailyDuration`."""

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                    primary_key=True)
    day: Mapped[date] = mapped_column(index=True)
    urgency: Mapped[str] = mapped_column(sa.String(24))
    n: Mapped[int]
    open: Mapped[int]
    accepted: Mapped[int]
    due: Mapped[int]
    on_time: Mapped[int]
    site_due: Mapped[int]
    site_late: Mapped[int]
    callbacks_due: Mapped[int]
    answered: Mapped[int]
    solved: Mapped[int]
    partly: Mapped[int]
    not_solved: Mapped[int]
    satisfied: Mapped[int]
    closed: Mapped[int]
    ladder_building: Mapped[int]
    ladder_grid: Mapped[int]
    ladder_community: Mapped[int]
    ladder_referred: Mapped[int]
    on_site_n: Mapped[int]
    resolve_n: Mapped[int]
    accept_b: Mapped[int | None]
    on_site_b: Mapped[int | None]
    resolve_b: Mapped[int | None]


class StaffUser(Model):
    """A community staff login for the console; grid secretaries see only their grid."""

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(sa.ForeignKey("community.id"))
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[StaffRole]
    grid_id: Mapped[int | None] = mapped_column(sa.ForeignKey("place.id"))
    active: Mapped[bool] = mapped_column(default=True)
    #: Counted up at each logout: a session cookie names the generation it was made in, so a
    #: copy of the cookie taken before the logout no longer works.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")


class AuditLog(Model):
    """Every staff action, who did it and when."""

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff_user.id"))
    action: Mapped[str] = mapped_column(sa.String(64))
    target: Mapped[str | None] = mapped_column(sa.String(100))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime]


sa.Index(
    "ix_notification_due",
    Notification.status,
    Notification.next_attempt_at,
)
sa.Index("ix_case_due", Case.status, Case.next_step_at)
# The live board: a community's open cases, longest waiting first, however many are closed.
# State, urgency and place are key columns too, so a filter on any of them (a grid is a list
# of places) is checked on the index entry before the table is visited, and the count of the
# matching open cases is read from the index.
_OPEN = Case.status.in_([str(s) for s in OPEN_STATUSES])
sa.Index("ix_case_open", Case.community_id, Case.reported_at, Case.id, Case.status,
         Case.urgency, Case.place_id, postgresql_where=_OPEN, sqlite_where=_OPEN)
# The cases merged into one (the case page lists them): few cases are ever merged.
_MERGED = Case.merged_into_id.is_not(None)
sa.Index("ix_case_merged_into", Case.merged_into_id, postgresql_where=_MERGED,
         sqlite_where=_MERGED)
# Pacing, bundling and reply codes look up a phone's messages on every send
# (`dispatch.outbox.pacing`, `dispatch.outbox.replies`). Without these each send read the whole
# outbox several times over, which grows by every message ever sent.
# A phone's rows in flight or waiting, oldest first (pacing's in-flight count, bundling):
sa.Index("ix_notification_phone", Notification.to_address, Notification.status, Notification.id)
# … and what it was last sent (the gap since the last message, the alert quota's window):
sa.Index("ix_notification_phone_sent", Notification.to_address, Notification.sent_at)
# The contacts with a phone number: locked per send, looked up per reply.
sa.Index("ix_contact_address", Contact.address)
# Response figures (dispatch.metrics). A community's cases in a period, with every column the
# figures read carried in the index, so PostgreSQL answers from the index alone instead of
# visiting one heap page per case (a community's cases are spread over the whole table).
FIGURE_COLUMNS = ["id", "place_id", "status", "resolution", "urgency", "category",
                  "accepted_by_id", "accepted_rung", "closed_rung", "accepted_at", "on_site_at",
                  "resolved_at", "closed_at", "policy"]
sa.Index("ix_case_figures", Case.community_id, Case.reported_at,
         postgresql_include=FIGURE_COLUMNS)
# The acceptances /metrics adds to its histogram since the last scrape.
sa.Index("ix_case_accepted_at", Case.accepted_at)
# A sticker's scans: their count and the last one from the index alone (the staff sticker
# pages), and whether any came since a moment (stickers nobody scans, `qr.usage`).
sa.Index("ix_scan_sticker_at", Scan.sticker_id, Scan.at)
# The district's percentiles (`dispatch.metrics.daily`): the values in one histogram bucket,
# in order, among the period's cases, from the index alone; and the cases whose figures still
# depend on the clock.
_NOT_DUPLICATE = "(resolution IS NULL OR resolution <> 'duplicate')"
for _name in ("accept_s", "on_site_s", "resolve_s"):
    _where = sa.text(f"{_name} IS NOT NULL AND {_NOT_DUPLICATE}")
    sa.Index(f"ix_case_{_name}", getattr(Case, _name), Case.reported_at,
             postgresql_where=_where, sqlite_where=_where)
_SETTLING = Case.settles_at.is_not(None)
sa.Index("ix_case_settles_at", Case.settles_at, postgresql_where=_SETTLING,
         sqlite_where=_SETTLING)
# A case's latest answered callback, from the index alone.
sa.Index("ix_callback_answer", Callback.case_id, Callback.id,
         postgresql_include=["contacted", "solved", "satisfaction"])
