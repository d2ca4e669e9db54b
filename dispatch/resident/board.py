"""What a sticker's page tells the resident: who answers here, notices, problems already reported.

Everything here is public, so it is built from public fields only: places, organisation
names and `Member.display_name` (李师傅) — never a member's full name or phone number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import orm

from dispatch.db import db
from dispatch.models import (
    OPEN_STATUSES,
    Case,
    Community,
    Member,
    Notice,
    Place,
    PlaceKind,
    Responsibility,
    Role,
    Rung,
    Sticker,
)
from dispatch.roster import routing
from qr import codes

#: The roles of the building's party group and the grid's branch: the groups the page names.
PARTY_ROLES = {Role.LEADER, Role.BACKUP, Role.SECRETARY, Role.GRID_MEMBER}
#: How many names to show per group: enough to recognise, short enough for a small screen.
NAMES_SHOWN = 3
EMERGENCY_LIFT_LINE = "96333"


@dataclass(frozen=True, slots=True)
class Responders:
    """A group that answers here (3栋党小组) and its members' display names (李师傅)."""

    group: str
    names: tuple[str, ...]


def sticker_for_page(seen: str) -> Sticker | None:
    """The sticker a code names (as `codes.find`), with everything of its place the page
    shows loaded in the same query: the place, its community and its ancestors (a lift's
    unit, building and grid: three levels up at most). One query, not one per step up."""
    code = codes.normalise(seen)
    if code is None:
        return None
    place = orm.joinedload(Sticker.place)
    up = place.joinedload(Place.parent, innerjoin=False)
    return db.session.scalar(
        sa.select(Sticker).where(Sticker.code == code)
        .options(place.joinedload(Place.community),
                 up.joinedload(Place.parent).joinedload(Place.parent)))


def responders(place: Place) -> list[Responders]:
    """The building's party group and the grid's branch for this place, nearest first: the
    members the ladder asks there (`routing.asked_roles`) in those roles, by display name."""
    lineage = {p.id: p for p in place.lineage()}
    roles = routing.asked_roles(place.community, (Rung.BUILDING, Rung.GRID)) & PARTY_ROLES
    rows = db.session.execute(
        sa.select(Responsibility.place_id, Member)
        .join(Member, Member.id == Responsibility.member_id)
        .where(Responsibility.place_id.in_(list(lineage)),
               Responsibility.role.in_(list(roles)),
               Member.active.is_(True))
        .order_by(Responsibility.position, Member.id)).all()
    groups: dict[int, list[str]] = {}
    for place_id, member in rows:
        assert place_id is not None  # the WHERE names the places
        names = groups.setdefault(place_id, [])
        if member.display_name not in names:
            names.append(member.display_name)
    nearest = list(lineage)
    return [Responders(_group_name(lineage[place_id]), tuple(names[:NAMES_SHOWN]))
            for place_id, names in sorted(groups.items(), key=lambda g: nearest.index(g[0]))]


def _group_name(place: Place) -> str:
    if place.org_name:
        return place.org_name
    if place.kind == PlaceKind.GRID:
        return _("%(name)s党支部", name=place.name)
    if place.kind == PlaceKind.BUILDING:
        return _("%(name)s党小组", name=place.name)
    return place.name


def notices_and_next_change(place: Place, now: datetime) -> tuple[list[Notice], datetime]:
    """Notices in force for this place or any place above it (a building's reach its lifts),
    newest first; and the next moment one of them starts or ends (`datetime.max` in UTC if
    none will), when a kept page of this place stops being true."""
    lineage = [p.id for p in place.lineage()]
    rows = list(db.session.scalars(
        sa.select(Notice)
        .where(Notice.place_id.in_(lineage), sa.or_(Notice.ends_at.is_(None), Notice.ends_at > now))
        .order_by(Notice.starts_at.desc())))
    in_force = [n for n in rows if n.starts_at <= now]
    changes = [n.starts_at for n in rows if n.starts_at > now]
    changes += [n.ends_at for n in in_force if n.ends_at is not None]
    return in_force, min(changes, default=datetime.max.replace(tzinfo=UTC))


def open_cases(place: Place) -> list[Case]:
    """Problems at exactly this place that are still being handled, oldest first."""
    return list(db.session.scalars(
        sa.select(Case).where(Case.place_id == place.id, Case.status.in_(OPEN_STATUSES))
        .order_by(Case.reported_at)))


def tel_url(community: Community, sticker: Sticker) -> str:
    """The `tel:` link of the one-tap call.

    With Twilio voice configured, the service's number, a pause, then the sticker's digits
    and # so the call knows the place (the voice channel routes it to whoever is on duty);
    otherwise the community's duty hotline.
    """
    voice = current_app.config.get("TWILIO_VOICE_NUMBER")
    if voice:
        return f"tel:{_dialable(voice)},,{codes.dial_digits(sticker.code)}%23"
    return hotline_tel(community.hotline)


def hotline_tel(hotline: str) -> str:
    """The `tel:` link of a phone number as printed (0752-2345678)."""
    return f"tel:{_dialable(hotline)}"


def _dialable(number: str) -> str:
    """A number as a tel: URI takes it: digits, + and the visual separator -."""
    return "".join(ch for ch in number if ch.isdigit() or ch in "+-")
