"""Routing: place × category × rung → the people to ask, in order.

The community file's routing rules (`settings.routing_roles`) name the roles asked at each rung
for a category; the responsibilities say who holds those roles for a place. A responsibility
counts when its place is the case's place or one of its ancestors (a building leader answers
for its units and elevators), or when it has no place (the whole community), and when its
categories are empty or include the case's. The nearest place goes first, then the file's
order (`position`: the leader before the backups), then the rule's order of roles.

`Responsibility.rung` records where a role normally sits (for rosters and exports); it does
not filter here: the routing rule decides who is asked at which rung, so "elevator faults go
to the maintainer at the building rung" needs no second entry in the responsibilities.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import contains_eager

from dispatch.community import settings
from dispatch.db import db
from dispatch.models import Community, Member, Place, Responsibility, Role, Rung
from dispatch.roster import kept as kept_rosters


@dataclass(frozen=True, slots=True)
class Responder:
    """A member asked at a rung, with the role and place that put them there."""

    member: Member
    role: Role
    #: Where the responsibility sits; None is the whole community.
    place: Place | None

    def __repr__(self) -> str:
        where = self.place.code if self.place else "*"
        return f"<Responder {self.member.code} {self.role} @ {where}>"


def responders(place: Place, category: str, rung: int, *, kept: bool = False
               ) -> list[Responder]:
    """The people asked about `category` at `place` on `rung`, nearest and first in line first.

    `kept`: from this process's kept copy of the community's roster when it can vouch for it
    (`dispatch.roster.kept`, the ladder step's way), else from the database.
    """
    roles = settings.routing_roles(place.community, category, rung)
    if not roles:
        return []
    lineage = place.lineage()
    held = kept_rosters.responsibilities(place.community_id) if kept else None
    if held is None:
        return rank(lineage, category, roles, _responsibilities(place, roles))
    ranked = rank(lineage, category, roles, held)
    members = kept_rosters.attach([r.member for r in ranked])
    return [Responder(member, r.role, r.place) for member, r in zip(members, ranked, strict=True)]


def answering_for(place: Place, category: str) -> list[Responder]:
    """Everyone responsible for `place` in any role (whom a case there can be handed to)."""
    roles = list(Role)
    return rank(place.lineage(), category, roles, _responsibilities(place, roles))


def _responsibilities(place: Place, roles: Sequence[Role]) -> list[Responsibility]:
    """Responsibilities in `roles` for the place, its ancestors, or the whole community."""
    return list(db.session.scalars(_holding(), {
        "community": place.community_id, "roles": list(roles),
        "places": [p.id for p in place.lineage()]}))


@functools.cache
def _holding() -> sa.Select[Responsibility]:
    """`_responsibilities`' statement, with what `duty.on_duty` reads of each member; built
    once per process, as every ladder step runs it."""
    return (sa.select(Responsibility)
            .join(Responsibility.member)
            .where(Member.community_id == sa.bindparam("community"),
                   Responsibility.role.in_(sa.bindparam("roles", expanding=True)),
                   sa.or_(Responsibility.place_id.is_(None),
                          Responsibility.place_id.in_(sa.bindparam("places", expanding=True))))
            .options(contains_eager(Responsibility.member).selectinload(Member.shifts),
                     contains_eager(Responsibility.member).selectinload(Member.overrides),
                     contains_eager(Responsibility.member).selectinload(Member.contacts)))


def rank(lineage: Sequence[Place], category: str, roles: Sequence[Role],
         responsibilities: Iterable[Responsibility]) -> list[Responder]:
    """Order the matching responsibilities; each member appears once, at their best position.

    `lineage` is the case's place and its ancestors, nearest first (`Place.lineage()`); a
    responder's place is the lineage's own object, so responsibilities read elsewhere (a kept
    roster's, detached) rank alike and name the caller's places.
    """
    responsibilities = list(responsibilities)
    places = {_key(p): p for p in lineage}
    distance = {_key(p): index for index, p in enumerate(lineage)}
    where = {id(r): _where(r) for r in responsibilities}
    matching = [
        r for r in responsibilities
        if r.role in roles
        and (where[id(r)] is None or where[id(r)] in distance)
        and (not r.categories or category in r.categories)
    ]
    matching.sort(key=lambda r: (
        len(lineage) if where[id(r)] is None else distance[where[id(r)]],
        r.position or 0,
        roles.index(r.role),
        r.member.id or 0,
    ))
    seen: set[int] = set()
    ranked: list[Responder] = []
    for r in matching:
        if id(r.member) in seen:
            continue
        seen.add(id(r.member))
        at = where[id(r)]
        ranked.append(Responder(r.member, Role(r.role), places[at] if at is not None else None))
    return ranked


def _key(place: Place) -> object:
    """A place as `rank` matches it: by id, or, not yet written (no id), by the object."""
    return place.id if place.id is not None else place


def _where(responsibility: Responsibility) -> object:
    """The key of the place a responsibility sits at (None: the whole community), read without
    loading anything: a kept roster's rows are detached (`dispatch.roster.kept`)."""
    if responsibility.place_id is not None:
        return responsibility.place_id
    place = sa.inspect(responsibility).dict.get("place")
    return None if place is None else _key(place)


def asked_roles(community: Community, rungs: Iterable[int]) -> set[Role]:
    """The roles the routing rules ask at any of `rungs`, for any category: whom residents
    may be told answers here (never someone the ladder does not ask)."""
    return {role for category in settings.categories(community) for rung in rungs
            for role in settings.routing_roles(community, category.code, rung)}


def top_rung(place: Place, category: str) -> int:
    """The highest rung the community's routing rules ask anyone at, for this category."""
    asked = [int(r) for r in Rung if settings.routing_roles(place.community, category, r)]
    return max(asked, default=int(Rung.BUILDING))
