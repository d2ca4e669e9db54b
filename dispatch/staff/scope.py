"""What the logged-in staff member may see, as SQL filters and as metric scopes.

`auth.may_see(place)` is the rule for one place; these apply the same rule to lists and
figures: a grid secretary's every query is narrowed to their grid, whatever the request asks.
Anything outside it answers 404, so another grid's case numbers cannot even be probed.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import abort, g

from dispatch import clock, security
from dispatch.case import lifecycle
from dispatch.db import db
from dispatch.metrics import Scope, place_levels
from dispatch.models import Case, Community, Member, Place, PlaceKind, StaffRole
from dispatch.staff.auth import may_see


def community() -> Community:
    """The staff member's community (cached for the request)."""
    if "staff_community" not in g:
        g.staff_community = db.session.get_one(Community, g.staff.community_id)
    found: Community = g.staff_community
    return found


def zone() -> ZoneInfo:
    """The community's time zone: every time in the console is shown in it."""
    return clock.zone(community().timezone)


def own_grid() -> int | None:
    """The grid a grid secretary is limited to; None for admins and viewers."""
    staff = g.staff
    return staff.grid_id if staff.role == StaffRole.GRID_SECRETARY else None


def visible_places() -> sa.Select[int]:
    """SELECT the ids of the places the staff member may see."""
    levels = place_levels(g.staff.community_id)
    query = sa.select(levels.c.place_id)
    if own_grid() is not None:
        query = query.where(levels.c.grid_id == own_grid())
    return query


def places_under(grid_id: int | None = None, building_id: int | None = None) -> list[int]:
    """The ids of the places in a grid or building of the staff member's community (all of
    them if neither is given), itself included.

    Cases are narrowed by this list rather than by a join to the place tree: the planner
    cannot tell how many places a grid holds from the tree's join, guesses one, and then reads
    the community's cases once per place. Kept for the request.
    """
    known: dict[tuple[int | None, int | None], list[int]] = g.setdefault("places_under", {})
    if (grid_id, building_id) not in known:
        levels = place_levels(g.staff.community_id)
        query = sa.select(levels.c.place_id)
        if grid_id is not None:
            query = query.where(levels.c.grid_id == grid_id)
        if building_id is not None:
            query = query.where(levels.c.building_id == building_id)
        known[(grid_id, building_id)] = list(db.session.scalars(query))
    return known[(grid_id, building_id)]


def visible_cases(query: sa.Select[Any]) -> sa.Select[Any]:
    """Narrow a query over `Case` to the cases the staff member may see."""
    query = query.where(Case.community_id == g.staff.community_id)
    if own_grid() is not None:
        query = query.where(Case.place_id.in_(places_under(own_grid())))
    return query


def case_or_404(case_id: int, *, lock: bool = False) -> Case:
    """The case, if it exists and the staff member may see it."""
    query = sa.select(Case).where(Case.id == case_id)
    if lock:
        query = lifecycle.locking(query)
    case = db.session.scalar(query)
    if case is None or not may_see(case.place):
        abort(404)
    return case


def place_or_404(place_id: int | str | None, *kinds: PlaceKind) -> Place:
    """A place of one of `kinds` (by id or code) that the staff member may see."""
    number = security.number(place_id)
    where = Place.id == number if number is not None else Place.code == str(place_id)
    place = db.session.scalar(sa.select(Place).where(where)) if place_id else None
    if place is None or (kinds and place.kind not in kinds) or not may_see(place):
        abort(404)
    return place


def grids() -> list[Place]:
    """The grids the staff member may see, in file order."""
    query = sa.select(Place).where(Place.community_id == g.staff.community_id,
                                   Place.kind == PlaceKind.GRID)
    if own_grid() is not None:
        query = query.where(Place.id == own_grid())
    return list(db.session.scalars(query.order_by(Place.position, Place.id)))


def may_see_member(member: Member) -> bool:
    """Admins and viewers see everyone; a grid secretary, members of or answering in their grid."""
    if member.community_id != g.staff.community_id:
        return False
    grid = own_grid()
    if grid is None or member.grid_id == grid:
        return True
    return any(r.place is not None and may_see(r.place) for r in member.responsibilities)


def metrics_scope(args: Any) -> Scope:
    """The metric scope a request asks for, narrowed to what the staff member may see.

    `args` may name grid, building (ids or codes), member (id), category and rung; a grid or
    building the staff member may not see answers 404.
    """
    grid_id = own_grid()
    if args.get("grid"):
        grid_id = place_or_404(args["grid"], PlaceKind.GRID).id
    building_id = None
    if args.get("building"):
        building_id = place_or_404(args["building"], PlaceKind.BUILDING).id
    member_id = None
    if args.get("member"):
        member = db.session.get(Member, _int(args["member"]))
        if member is None or not may_see_member(member):
            abort(404)
        member_id = member.id
    return Scope(community_id=g.staff.community_id, grid_id=grid_id, building_id=building_id,
                 member_id=member_id, category=args.get("category") or None,
                 rung=_int(args["rung"]) if args.get("rung") else None)


def _int(value: Any) -> int:
    number = security.number(value)
    if number is None:
        abort(400)
    return number
