"""Who is on duty: now, for a place (the desk's view while a caller waits), and over a week.

The answer is the ladder's own: `roster.routing` says who answers for a place at each rung and
`roster.duty` whether each can be asked at an instant, so the console shows exactly whom the
next step would ask. The week calendar lays out the weekly shifts and the dated overrides
(leave, swaps) of the members the staff member may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, g, render_template, request
from sqlalchemy.orm import selectinload

from dispatch import clock, security, words
from dispatch.community import settings
from dispatch.db import db
from dispatch.models import DutyOverride, Member, Place, PlaceKind, Rung
from dispatch.roster import duty, routing
from dispatch.staff import scope
from dispatch.staff.auth import login_required

bp = Blueprint("rota", __name__, url_prefix="/staff/duty")


@dataclass(frozen=True, slots=True)
class OnDuty:
    """One person the ladder would ask about a place at a rung, and whether it could now."""

    rung: int
    member: Member
    role: str
    reachable: bool
    reason: str


def on_duty_for(place: Place, category: str, now: datetime) -> list[OnDuty]:
    """Everyone the ladder would ask about `category` at `place`, rung by rung, with whether
    they can be asked at `now` (stand-ins for members on leave included)."""
    rows: list[OnDuty] = []
    for rung in Rung:
        responders = routing.responders(place, category, rung)
        roles = {r.member.id: r.role for r in responders}
        for answer in duty.on_duty([r.member for r in responders], now,
                                   place.community.timezone):
            holder = answer.covering_for or answer.member
            role = words.ROLE_NAMES.get(roles.get(holder.id, ""), "值守人员")
            if answer.covering_for is not None:
                role = f"代{answer.covering_for.name}（{role}）"
            rows.append(OnDuty(int(rung), answer.member, role, answer.reachable, answer.reason))
    return rows


def reachable_now(place: Place, category: str, now: datetime) -> list[int]:
    """Ids of the members the ladder could ask about the place now, nearest rung first."""
    seen: list[int] = []
    for row in on_duty_for(place, category, now):
        if row.reachable and row.member.id not in seen:
            seen.append(row.member.id)
    return seen


@bp.get("/")
@login_required
def index() -> Any:
    """On duty now for a place (chosen from the visible buildings, or by id)."""
    community = scope.community()
    buildings = list(db.session.scalars(
        sa.select(Place).where(Place.community_id == community.id,
                               Place.kind.in_((PlaceKind.BUILDING, PlaceKind.AREA)),
                               Place.id.in_(scope.visible_places()))
        .options(selectinload(Place.parent)).order_by(Place.position, Place.id)))
    categories = settings.categories(community)
    category = request.args.get("category") or (categories[0].code if categories else "")
    if category not in {c.code for c in categories}:
        category = categories[0].code if categories else ""
    chosen = None
    if request.args.get("place"):
        chosen = scope.place_or_404(request.args.get("place"))
    place = chosen or (buildings[0] if buildings else None)
    now = clock.now()
    rows = on_duty_for(place, category, now) if place is not None else []
    return render_template("staff/duty.html", buildings=buildings, place=place,
                           categories=categories, category=category, rows=rows, now=now)


@dataclass(frozen=True, slots=True)
class Slot:
    """One line of a day in the week calendar."""

    member: Member
    starts: str
    ends: str
    kind: str  # "shift", "leave", "on_duty"
    note: str = ""


def week_of(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def week(members: list[Member], monday: date, zone: Any) -> list[tuple[date, list[Slot]]]:
    """Each day of the week from `monday`: the shifts that day, then the overrides touching it."""
    days: list[tuple[date, list[Slot]]] = []
    for offset in range(7):
        day = monday + timedelta(days=offset)
        start = datetime.combine(day, time(0), zone)
        end = start + timedelta(days=1)
        slots: list[Slot] = []
        for member in members:
            for shift in sorted(member.shifts, key=lambda s: s.starts):
                if shift.weekday == day.weekday():
                    slots.append(Slot(member, f"{shift.starts:%H:%M}",
                                      "24:00" if shift.ends == time(0) else f"{shift.ends:%H:%M}",
                                      "shift"))
            for override in member.overrides:
                if override.starts_at < end and override.ends_at > start:
                    name = words.OVERRIDE_KIND_NAMES.get(override.kind, str(override.kind))
                    note = name + (f"，由{override.stand_in.name}代班"
                                   if override.stand_in is not None else "")
                    note += f"（{override.note}）" if override.note else ""
                    slots.append(Slot(member,
                                      clock.format_local(max(override.starts_at, start), zone,
                                                         "%H:%M"),
                                      "24:00" if override.ends_at >= end else
                                      clock.format_local(override.ends_at, zone, "%H:%M"),
                                      str(override.kind), note))
        slots.sort(key=lambda s: (s.starts, s.member.name))
        days.append((day, slots))
    return days


@bp.get("/week")
@login_required
def calendar() -> Any:
    """A week of shifts and overrides of the members this login may see."""
    zone = scope.zone()
    today = clock.local(clock.now(), zone).date()
    try:
        wanted = date.fromisoformat(request.args.get("week", ""))
    except ValueError:
        wanted = today
    monday = week_of(wanted)
    grid = security.number(request.args.get("grid"))
    query = (sa.select(Member).where(Member.community_id == g.staff.community_id, Member.active)
             .where(sa.or_(Member.shifts.any(), Member.overrides.any()))
             .options(selectinload(Member.shifts), selectinload(Member.overrides)
                      .selectinload(DutyOverride.stand_in))
             .order_by(Member.name))
    if grid is not None:
        query = query.where(Member.grid_id == grid)
    members = [m for m in db.session.scalars(query) if scope.may_see_member(m)]
    return render_template("staff/week.html", days=week(members, monday, zone), monday=monday,
                           today=today, grids=scope.grids(), grid=grid,
                           previous=monday - timedelta(days=7),
                           following=monday + timedelta(days=7),
                           weekday_names=words.WEEKDAY_NAMES)
