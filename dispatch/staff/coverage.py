"""Roster warnings: members nobody can reach, and rungs nobody covers in the coming week.

Both are decided by the functions the ladder itself uses, so a warning here means the ladder
would really skip: `duty.working_contact` (a contact with status ok), `routing.rank` (who
answers for a place at a rung, by the community's "*" routing rule, counting only people who
answer for every category) and `duty.on_duty` (shifts, leave, stand-ins, do-not-disturb),
sampled every half hour over the next seven days.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatch.community import settings
from dispatch.models import Community, Member, Place, PlaceKind, Responsibility, Rung
from dispatch.roster import duty, routing

HORIZON = timedelta(days=7)
SAMPLE = timedelta(minutes=30)
#: The category used to ask "who covers this place at all": the community's default rule.
ANY_CATEGORY = "*"


@dataclass(frozen=True, slots=True)
class Gap:
    """A rung at a place where nobody can be reached at any time in the coming week."""

    rung: int
    place: Place | None
    responders: int

    @property
    def where(self) -> str:
        return self.place.label if self.place is not None else "全社区"


def unreachable(members: Iterable[Member]) -> list[Member]:
    """Active members without a working contact: the ladder skips them every time."""
    return [m for m in members if m.active and duty.working_contact(m) is None]


def reachable_within(member: Member, start: datetime, zone: str,
                     horizon: timedelta = HORIZON) -> bool:
    """Whether the member (or their stand-in) can be asked at some half hour in the window."""
    at = start
    while at < start + horizon:
        if any(answer.reachable for answer in duty.on_duty([member], at, zone)):
            return True
        at += SAMPLE
    return False


def targets(places: Sequence[Place]) -> list[tuple[int, Place]]:
    """The (rung, place) pairs to check: each building at the building rung, each grid at the
    grid rung, and the community and district rungs once (from the first grid)."""
    grids = [p for p in places if p.kind == PlaceKind.GRID]
    pairs = [(int(Rung.BUILDING), p) for p in places if p.kind == PlaceKind.BUILDING]
    pairs += [(int(Rung.GRID), g) for g in grids]
    if grids:
        pairs += [(int(Rung.COMMUNITY), grids[0]), (int(Rung.DISTRICT), grids[0])]
    return pairs


def gaps(community: Community, places: Sequence[Place],
         responsibilities: Sequence[Responsibility], start: datetime) -> list[Gap]:
    """Every (rung, place) where nobody would be reachable in the coming week.

    Responsibilities must come with their members' shifts, overrides and contacts loaded.
    """
    known: dict[int, bool] = {}

    def covered(member: Member) -> bool:
        if member.id not in known:
            known[member.id] = reachable_within(member, start, community.timezone)
        return known[member.id]

    found: list[Gap] = []
    for rung, place in targets(places):
        roles = settings.routing_roles(community, ANY_CATEGORY, rung)
        if not roles:
            continue
        responders = routing.rank(place.lineage(), ANY_CATEGORY, roles, responsibilities)
        if not any(covered(r.member) for r in responders):
            shown = place if rung <= Rung.GRID else None
            found.append(Gap(rung, shown, len(responders)))
    return found
