"""Roster and duty editing: members, their contacts, responsibilities, shifts and overrides.

The page warns about members nobody can reach and rungs nobody covers in the coming week
(`coverage`). A grid secretary sees and edits the members of their grid, and adds
responsibilities only for places in it; community-wide duties are the admin's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import selectinload

from dispatch import clock, phones, security
from dispatch.community.days import parse_days
from dispatch.db import db
from dispatch.models import (
    ROLE_RUNGS,
    Channel,
    Contact,
    ContactStatus,
    DutyOverride,
    Member,
    MemberKind,
    OverrideKind,
    Place,
    PlaceKind,
    Responsibility,
    Role,
    Rung,
    Shift,
)
from dispatch.staff import audit, coverage, scope
from dispatch.staff.auth import login_required, may_see
from dispatch.words import MEMBER_KIND_NAMES as KIND_NAMES
from dispatch.words import WEEKDAYS

bp = Blueprint("roster", __name__, url_prefix="/staff/roster")



class RosterError(ValueError):
    """A form value that cannot be used; the message is shown to staff."""


def _loaded() -> Any:
    return (selectinload(Member.contacts), selectinload(Member.shifts),
            selectinload(Member.overrides).selectinload(DutyOverride.stand_in),
            selectinload(Member.responsibilities).selectinload(Responsibility.place)
            .selectinload(Place.parent).selectinload(Place.parent),
            selectinload(Member.grid))


def _members() -> list[Member]:
    """Every member the staff member may see, active first."""
    query = (sa.select(Member).where(Member.community_id == g.staff.community_id)
             .options(*_loaded()).order_by(Member.active.desc(), Member.code))
    return [m for m in db.session.scalars(query) if scope.may_see_member(m)]


#: How the roster page may group its members.
GROUPINGS = {"building": "按楼栋", "grid": "按网格"}


def group_of(member: Member, by: str) -> tuple[int, str]:
    """The (sort key, heading) a member is listed under: the grid or building of the first
    place they answer for, else their own grid, else the whole community (the duty desk,
    outside services)."""
    kind = PlaceKind.GRID if by == "grid" else PlaceKind.BUILDING
    for held in sorted(member.responsibilities, key=lambda r: (r.rung, r.position)):
        if held.place is not None:
            found = held.place.ancestor(kind) or held.place.ancestor(PlaceKind.GRID)
            if found is not None:
                return (found.position * 10_000 + found.id, found.label)
    if member.grid is not None:
        return (member.grid.position * 10_000 + member.grid.id, member.grid.name)
    return (10**9, "全社区（社区值班、物业、民警、外部单位等）")


def matches(member: Member, wanted: str) -> bool:
    """Whether the search text is in the member's name, code, organisation or places."""
    places = " ".join(r.place.label for r in member.responsibilities if r.place is not None)
    return wanted.lower() in f"{member.name} {member.code} {member.organisation or ''} " \
                             f"{places}".lower()


@bp.get("/")
@login_required
def index() -> Any:
    """Members with their duties, grouped by building or grid and searchable, and warnings."""
    everyone = _members()
    wanted = request.args.get("q", "").strip()[:40]
    by = str(request.args.get("group", "building"))
    by = by if by in GROUPINGS else "building"
    members = [m for m in everyone if matches(m, wanted)] if wanted else everyone
    grouped: dict[tuple[int, str], list[Member]] = {}
    for member in members:
        grouped.setdefault(group_of(member, by), []).append(member)
    groups = [(heading, grouped[(key, heading)]) for key, heading in sorted(grouped)]
    places = list(db.session.scalars(
        sa.select(Place).where(Place.community_id == g.staff.community_id)
        .options(selectinload(Place.parent)).order_by(Place.position, Place.id)))
    visible = [p for p in places if may_see(p)]
    responsibilities = list(db.session.scalars(
        sa.select(Responsibility).join(Responsibility.member)
        .where(Member.community_id == g.staff.community_id)
        .options(selectinload(Responsibility.member).options(*_loaded()))))
    gaps = coverage.gaps(scope.community(), visible, responsibilities, clock.now())
    if scope.own_grid() is not None:
        gaps = [gap for gap in gaps if gap.place is not None]
    return render_template("staff/roster.html", members=members,
                           unreachable=coverage.unreachable(
                               m for m in everyone if m.responsibilities),
                           gaps=gaps, kinds=KIND_NAMES, groups=groups, wanted=wanted,
                           by=by, groupings=GROUPINGS, total=len(everyone),
                           found=len(members))


def _member_or_404(code: str) -> Member:
    member = db.session.scalar(sa.select(Member).where(
        Member.code == code, Member.community_id == g.staff.community_id).options(*_loaded()))
    if member is None or not scope.may_see_member(member):
        abort(404)
    return member


@bp.get("/members/<code>")
@login_required
def member(code: str) -> Any:
    """One member: details, contacts, responsibilities, shifts and overrides."""
    found = _member_or_404(code)
    places = [p for p in db.session.scalars(
        sa.select(Place).where(Place.community_id == g.staff.community_id,
                               Place.kind.in_((PlaceKind.GRID, PlaceKind.BUILDING,
                                               PlaceKind.AREA)))
        .order_by(Place.position, Place.id)) if may_see(p)]
    colleagues = [m for m in _members() if m.id != found.id and m.active]
    return render_template("staff/member.html", member=found, places=places, roles=list(Role),
                           kinds=KIND_NAMES, weekdays=WEEKDAYS, colleagues=colleagues,
                           override_kinds=list(OverrideKind), grids=scope.grids(),
                           unreachable=bool(coverage.unreachable([found])))


@bp.route("/members/new", methods=["GET", "POST"])
@login_required(write=True)
def new_member() -> Any:
    """Add a member (a grid secretary's new members belong to their grid)."""
    if request.method == "GET":
        return render_template("staff/member_new.html", kinds=KIND_NAMES, grids=scope.grids())
    code = request.form.get("code", "").strip()
    try:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", code):
            raise RosterError("编号只能包含字母、数字、- 和 _ / Codes are letters and digits")
        if db.session.scalar(sa.select(Member.id).where(Member.code == code)):
            raise RosterError(f"编号 {code} 已存在 / Code already taken")
        now = clock.now()
        found = Member(community_id=g.staff.community_id, code=code,
                       kind=MemberKind.VOLUNTEER, name="", created_at=now)
        _apply_details(found, request.form)
        db.session.add(found)
        db.session.flush()
        phone = request.form.get("phone", "").strip()
        if phone:
            found.contacts.append(Contact(channel=Channel.SMS, address=_phone(phone),
                                          created_at=now))
    except RosterError as exc:
        db.session.rollback()
        flash(str(exc))
        return render_template("staff/member_new.html", kinds=KIND_NAMES, grids=scope.grids()), 400
    audit.log("roster.member.add", code, name=found.name)
    db.session.commit()
    flash(f"已添加 {found.name}")
    return redirect(url_for(".member", code=code))


@bp.post("/members/<code>")
@login_required(write=True)
def update_member(code: str) -> Any:
    """Change a member's details, or deactivate them (their history stays)."""
    found = _member_or_404(code)
    return _change(found, "roster.member.update", lambda: _apply_details(found, request.form))


@bp.post("/members/<code>/contacts")
@login_required(write=True)
def add_contact(code: str) -> Any:
    """Add a phone number for SMS or voice."""
    found = _member_or_404(code)

    def add() -> None:
        channel = request.form.get("channel", "sms")
        if channel not in (Channel.SMS, Channel.VOICE):
            raise RosterError("只能添加短信或电话号码 / Only SMS or voice numbers")
        address = _phone(request.form.get("phone", ""))
        if any(c.channel == channel and c.address == address for c in found.contacts):
            raise RosterError("该号码已存在 / Already there")
        found.contacts.append(Contact(channel=Channel(channel), address=address,
                                      priority=len(found.contacts), created_at=clock.now()))

    return _change(found, "roster.contact.add", add, channel=request.form.get("channel"))


@bp.post("/members/<code>/contacts/<int:contact_id>/<any(ok, delete):action>")
@login_required(write=True)
def contact(code: str, contact_id: int, action: str) -> Any:
    """Mark a contact as working again (the number was checked), or remove it."""
    found = _member_or_404(code)
    target = next((c for c in found.contacts if c.id == contact_id), None) or abort(404)

    def apply() -> None:
        if action == "ok":
            if target.status == ContactStatus.PENDING:
                # Only the code texted to the member confirms a push subscription.
                abort(400)
            target.status = ContactStatus.OK
        else:
            found.contacts.remove(target)

    return _change(found, f"roster.contact.{action}", apply, contact=contact_id)


@bp.post("/members/<code>/responsibilities")
@login_required(write=True)
def add_responsibility(code: str) -> Any:
    """Make the member answer for a place (or, admins only, the whole community) in a role."""
    found = _member_or_404(code)

    def add() -> None:
        role = _choice(Role, request.form.get("role"))
        place = None
        if request.form.get("place"):
            place = scope.place_or_404(request.form["place"])
        elif scope.own_grid() is not None:
            raise RosterError("网格书记只能设置本网格内的职责 / Pick a place in your grid")
        categories = [c.strip() for c in re.split(r"[,，、\s]+", request.form.get(
            "categories", "")) if c.strip()]
        rung = security.number(request.form.get("rung") or ROLE_RUNGS[role])
        if rung not in tuple(Rung):
            raise RosterError("层级不正确 / Unknown rung")
        found.responsibilities.append(Responsibility(
            place=place, role=role, rung=rung, categories=categories,
            position=security.number(request.form.get("position") or 0, 0)))

    return _change(found, "roster.responsibility.add", add, role=request.form.get("role"),
                   place=request.form.get("place"))


@bp.post("/members/<code>/responsibilities/<int:item_id>/delete")
@login_required(write=True)
def delete_responsibility(code: str, item_id: int) -> Any:
    """Remove a responsibility."""
    found = _member_or_404(code)
    item = next((r for r in found.responsibilities if r.id == item_id), None) or abort(404)
    if (item.place is None and scope.own_grid() is not None) or (
            item.place is not None and not may_see(item.place)):
        abort(404)
    return _change(found, "roster.responsibility.delete",
                   lambda: found.responsibilities.remove(item), responsibility=item_id)


@bp.post("/members/<code>/shifts")
@login_required(write=True)
def add_shift(code: str) -> Any:
    """Add weekly shifts: days (Mon-Fri, Sat,Sun, daily) and a local start and end time."""
    found = _member_or_404(code)

    def add() -> None:
        try:
            days = parse_days(request.form.get("days", ""))
        except ValueError:
            raise RosterError("日期格式如 Mon-Fri 或 Sat,Sun / Days like Mon-Fri") from None
        starts, ends = _clock(request.form.get("starts")), _clock(request.form.get("ends"))
        for day in days:
            found.shifts.append(Shift(weekday=day, starts=starts, ends=ends))

    return _change(found, "roster.shift.add", add, days=request.form.get("days"),
                   starts=request.form.get("starts"), ends=request.form.get("ends"))


@bp.post("/members/<code>/shifts/<int:item_id>/delete")
@login_required(write=True)
def delete_shift(code: str, item_id: int) -> Any:
    """Remove a weekly shift."""
    found = _member_or_404(code)
    item = next((s for s in found.shifts if s.id == item_id), None) or abort(404)
    return _change(found, "roster.shift.delete", lambda: found.shifts.remove(item), shift=item_id)


@bp.post("/members/<code>/overrides")
@login_required(write=True)
def add_override(code: str) -> Any:
    """Add leave (optionally with a stand-in) or an extra duty window, in local time."""
    found = _member_or_404(code)

    def add() -> None:
        kind = _choice(OverrideKind, request.form.get("kind"))
        starts, ends = _moment(request.form.get("starts_at")), _moment(request.form.get("ends_at"))
        if ends <= starts:
            raise RosterError("结束时间须晚于开始时间 / The end must come after the start")
        stand_in = None
        if request.form.get("stand_in"):
            stand_in = _member_or_404(request.form["stand_in"])
            if stand_in.id == found.id:
                raise RosterError("代班人不能是本人 / A stand-in must be someone else")
        note = request.form.get("note", "").strip()[:200] or None
        found.overrides.append(DutyOverride(kind=kind, starts_at=starts, ends_at=ends,
                                            stand_in=stand_in, note=note))

    return _change(found, "roster.override.add", add, kind=request.form.get("kind"),
                   starts=request.form.get("starts_at"), ends=request.form.get("ends_at"))


@bp.post("/members/<code>/overrides/<int:item_id>/delete")
@login_required(write=True)
def delete_override(code: str, item_id: int) -> Any:
    """Remove a leave or extra duty window."""
    found = _member_or_404(code)
    item = next((o for o in found.overrides if o.id == item_id), None) or abort(404)
    return _change(found, "roster.override.delete", lambda: found.overrides.remove(item),
                   override=item_id)


def _change(found: Member, action: str, apply: Any, **data: object) -> Any:
    """Apply a roster edit with its audit entry in one transaction, then show the member."""
    try:
        apply()
        db.session.flush()
    except RosterError as exc:
        db.session.rollback()
        flash(str(exc))
        return redirect(url_for(".member", code=found.code))
    audit.log(action, found.code, **{k: v for k, v in data.items() if v is not None})
    db.session.commit()
    flash("已保存 / Saved")
    return redirect(url_for(".member", code=found.code))


def _apply_details(found: Member, form: Any) -> None:
    name = form.get("name", "").strip()
    if not name:
        raise RosterError("姓名不能为空 / A name is required")
    found.name = name[:100]
    found.public_name = form.get("public_name", "").strip()[:50] or None
    found.kind = _choice(MemberKind, form.get("kind"))
    found.organisation = form.get("organisation", "").strip()[:100] or None
    found.is_party_member = form.get("is_party_member") == "1"
    found.notes = form.get("notes", "").strip() or None
    grid = form.get("grid")
    if scope.own_grid() is not None:  # a secretary's new members join their grid
        found.grid_id = found.grid_id or scope.own_grid()
    elif "grid" in form:
        found.grid_id = scope.place_or_404(grid, PlaceKind.GRID).id if grid else None
    dnd = form.get("dnd", "").strip()
    if dnd:
        parts = re.split(r"\s*[-–~至]\s*", dnd)
        if len(parts) != 2:
            raise RosterError("免打扰时段格式如 22:00-07:00 / Quiet hours like 22:00-07:00")
        found.dnd_start, found.dnd_end = _clock(parts[0]), _clock(parts[1])
    else:
        found.dnd_start = found.dnd_end = None
    if "active" in form or form.get("present") == "1":
        found.active = form.get("active") == "1"


def _choice(kind: Any, value: str | None) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise RosterError(f"无效的选项 {value!r} / Not a valid choice") from None


def _phone(value: str) -> str:
    """A phone number in E.164, read as a Chinese number unless it says otherwise."""
    try:
        return phones.e164(value)
    except phones.PhoneError:
        raise RosterError(f"号码无效：{value} / Not a valid phone number") from None


def _clock(value: str | None) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", (value or "").strip())
    if not match or int(match[1]) > 24 or int(match[2]) > 59 or (
            int(match[1]) == 24 and int(match[2])):
        raise RosterError(f"时间格式如 08:30：{value} / Times like 08:30")
    return time(int(match[1]) % 24, int(match[2]))


def _moment(value: str | None) -> datetime:
    """A local date and time from a form (datetime-local input), as aware UTC."""
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            local = datetime.strptime((value or "").strip(), fmt)
        except ValueError:
            continue
        if not 2000 <= local.year <= 2100:  # year 1 in Shanghai is before year 1 in UTC
            raise RosterError(f"日期超出范围：{value} / Date out of range")
        return local.replace(tzinfo=scope.zone()).astimezone(UTC)
    raise RosterError(f"日期时间格式如 2026-12-01 08:00：{value} / Dates like 2026-12-01 08:00")
