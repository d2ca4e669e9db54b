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


def responders(place: Place, category: str, rung: int) -> list[Responder]:
    """The people asked about `category` at `place` on `rung`, nearest and first in line first."""
    roles = settings.routing_roles(place.community, category, rung)
    if not roles:
        return []
    return rank(place.lineage(), category, roles, _responsibilities(place, roles))


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

    `lineage` is the case's place and its ancestors, nearest first (`Place.lineage()`).
    """
    distance = {id(p): index for index, p in enumerate(lineage)}
    matching = [
        r for r in responsibilities
        if r.role in roles
        and (r.place is None or id(r.place) in distance)
        and (not r.categories or category in r.categories)
    ]
    matching.sort(key=lambda r: (
        len(lineage) if r.place is None else distance[id(r.place)],
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
        ranked.append(Responder(r.member, Role(r.role), r.place))
    return ranked


def asked_roles(community: Community, rungs: Iterable[int]) -> set[Role]:
    """The roles the routing rules ask at any of `rungs`, for any category: whom residents
    may be told answers here (never someone the ladder does not ask)."""
    return {role for category in settings.categories(community) for rung in rungs
            for role in settings.routing_roles(community, category.code, rung)}


def top_rung(place: Place, category: str) -> int:
    """The highest rung the community's routing rules ask anyone at, for this category."""
    asked = [int(r) for r in Rung if settings.routing_roles(place.community, category, r)]
    return max(asked, default=int(Rung.BUILDING))
