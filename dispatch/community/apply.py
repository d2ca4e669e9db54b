"""Applying a checked community file: upsert by code in one transaction, recording each change.

Re-importing an edited file updates rows in place and reports what changed; nothing is
duplicated. Members missing from a re-imported file are deactivated (their history stays);
places missing from it are kept and reported, because deleting a place is a staff decision, not
a side effect of an edited spreadsheet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dispatch import clock
from dispatch.community.check import FILE_CHANNELS, CommunityFileError, MemberSpec, Plan, validate
from dispatch.community.days import WEEKDAYS
from dispatch.community.files import CommunityData
from dispatch.models import (
    Channel,
    Community,
    Contact,
    DutyOverride,
    Member,
    Place,
    Responsibility,
    Role,
    Shift,
)
from qr.codes import STICKER_KINDS

# ---------------------------------------------------------------------------------------------
# Applying a plan: upsert by code inside the caller's transaction, recording each change.


@dataclass(slots=True)
class Changes:
    """What an import did, table by table, for the summary staff read after importing."""

    added: dict[str, list[str]] = field(default_factory=dict)
    updated: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)
    #: Things that import fine but staff should fix, e.g. two stickers with the same name.
    warnings: list[str] = field(default_factory=list)

    def note(self, kind: str, table: str, what: str) -> None:
        getattr(self, kind).setdefault(table, []).append(what)

    @property
    def empty(self) -> bool:
        return not (self.added or self.updated or self.removed)

    def lines(self, limit: int = 20) -> list[str]:
        out: list[str] = []
        for kind in ("added", "updated", "removed", "kept"):
            for table, items in getattr(self, kind).items():
                shown = "; ".join(items[:limit]) + (f"; … {len(items) - limit} more"
                                                      if len(items) > limit else "")
                label = "not in file, kept" if kind == "kept" else kind
                out.append(f"{table}: {len(items)} {label}: {shown}")
        out += [f"warning: {warning}" for warning in self.warnings]
        return out or ["no changes"]


def import_community(session: Session, data: CommunityData) -> tuple[Community, Changes]:
    """Validate `data` and apply it; the caller commits, or rolls back on any exception."""
    plan = validate(data)
    changes = Changes()
    now = clock.now()
    community = session.scalar(sa.select(Community).where(Community.code == plan.community["code"]))
    if community is None:
        community = Community(**plan.community, settings=plan.settings, created_at=now)
        session.add(community)
        changes.note("added", "community", plan.community["code"])
    else:
        _assign(community, {**plan.community, "settings": plan.settings}, changes, "community",
                community.code)
    session.flush()
    places = _apply_places(session, community, plan, changes)
    members = _apply_members(session, community, plan, places, changes, now)
    _apply_children(session, plan, places, members, changes)
    session.flush()
    return community, changes


def _assign(obj: Any, values: dict[str, Any], changes: Changes, table: str, key: str) -> None:
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, values[name])
    if changed:
        changes.note("updated", table, f"{key} ({', '.join(changed)})")


def _foreign(session: Session, model: type[Place] | type[Member], codes: list[str],
             community: Community, specs: list[Any]) -> None:
    """Codes are global keys: refuse one that belongs to another community."""
    taken = set(session.scalars(sa.select(model.code).where(
        model.code.in_(codes), model.community_id != community.id)))
    problems = [(s.row.where("code"), f"code {s.code!r} belongs to another community")
                for s in specs if s.code in taken]
    if problems:
        raise CommunityFileError(problems)


def _apply_places(session: Session, community: Community, plan: Plan,
                  changes: Changes) -> dict[str, Place]:
    _foreign(session, Place, [s.code for s in plan.places], community, plan.places)
    existing = {p.code: p for p in session.scalars(
        sa.select(Place).where(Place.community_id == community.id))}
    for spec in plan.places:
        values = {
            "kind": spec.kind, "name": spec.name, "org_name": spec.org_name,
            "floors": spec.floors, "households": spec.households, "notes": spec.notes,
            "position": spec.position,
            "parent": existing[spec.parent] if spec.parent else None,
        }
        place = existing.get(spec.code)
        if place is None:
            place = existing[spec.code] = Place(community=community, code=spec.code, **values)
            session.add(place)
            changes.note("added", "places", spec.code)
        else:
            _assign(place, values, changes, "places", spec.code)
    in_file = {s.code for s in plan.places}
    for code in sorted(set(existing) - in_file):
        changes.note("kept", "places", code)
    session.flush()
    _warn_duplicate_sticker_names(existing.values(), changes)
    return existing


def _warn_duplicate_sticker_names(places: Iterable[Place], changes: Changes) -> None:
    """Warn when two stickered places would print the same name: on the wall they look alike.

    The place code printed in small print still tells them apart, so this is no error.
    """
    by_name: dict[str, list[str]] = {}
    for place in places:
        if place.kind in STICKER_KINDS:
            by_name.setdefault(place.label, []).append(place.code)
    for name, codes in sorted(by_name.items()):
        if len(codes) > 1:
            changes.warnings.append(f"{len(codes)} stickers would print the same name "
                                    f"{name!r}: {', '.join(sorted(codes))}; rename them")


def _apply_members(session: Session, community: Community, plan: Plan, places: dict[str, Place],
                   changes: Changes, now: datetime) -> dict[str, Member]:
    _foreign(session, Member, [s.code for s in plan.members], community, plan.members)
    existing = {m.code: m for m in session.scalars(
        sa.select(Member).where(Member.community_id == community.id))}
    for spec in plan.members:
        values = {
            "name": spec.name, "public_name": spec.public_name, "kind": spec.kind,
            "organisation": spec.organisation, "is_party_member": spec.is_party_member,
            "grid": places[spec.grid] if spec.grid else None,
            "dnd_start": spec.dnd[0] if spec.dnd else None,
            "dnd_end": spec.dnd[1] if spec.dnd else None,
            "channel_order": [str(c) for c in spec.channels], "active": spec.active,
            "notes": spec.notes,
        }
        member = existing.get(spec.code)
        if member is None:
            member = existing[spec.code] = Member(community=community, code=spec.code,
                                                  created_at=now, **values)
            session.add(member)
            changes.note("added", "members", spec.code)
        else:
            _assign(member, values, changes, "members", spec.code)
        _sync_contacts(member, spec, changes, now)
    in_file = {s.code for s in plan.members}
    for code in sorted(set(existing) - in_file):
        if existing[code].active:
            existing[code].active = False
            changes.note("updated", "members", f"{code} (deactivated: not in file)")
    session.flush()
    return existing


def _sync_contacts(member: Member, spec: MemberSpec, changes: Changes, now: datetime) -> None:
    wanted = [(channel, phone) for phone in spec.phones for channel in FILE_CHANNELS
              if channel in spec.channels]
    if spec.wecom:
        wanted.append((Channel.WECOM, spec.wecom))
    current = {(c.channel, c.address): c for c in member.contacts
               if c.channel in FILE_CHANNELS or c.channel == Channel.WECOM}
    for priority, key in enumerate(wanted):
        contact = current.pop(key, None)
        if contact is None:
            member.contacts.append(Contact(channel=key[0], address=key[1], priority=priority,
                                           created_at=now))
            changes.note("added", "contacts", f"{spec.code} {key[0]} {_masked(key[1])}")
        elif contact.priority != priority:
            contact.priority = priority
    for key, contact in current.items():
        member.contacts.remove(contact)
        changes.note("removed", "contacts", f"{spec.code} {key[0]} {_masked(key[1])}")


def _masked(phone: str) -> str:
    """Phone numbers in printed summaries show only their last four digits."""
    return "…" + phone[-4:]


def _apply_children(session: Session, plan: Plan, places: dict[str, Place],
                    members: dict[str, Member], changes: Changes) -> None:
    """Make each member's responsibilities, shifts and overrides match the file exactly."""
    wanted_resp = {(r["member"], r["place"], r["role"]): r for r in plan.responsibilities}
    wanted_shift = {(s["member"], s["weekday"], s["starts"], s["ends"]) for s in plan.shifts}
    wanted_over = {(o["member"], o["kind"], o["starts_at"], o["ends_at"]): o
                   for o in plan.overrides}
    for code, member in members.items():
        for resp in list(member.responsibilities):
            key = (code, resp.place.code if resp.place else None, resp.role)
            spec = wanted_resp.pop(key, None)
            if spec is None:
                member.responsibilities.remove(resp)
                changes.note("removed", "responsibilities", _resp_label(*key))
            else:
                _assign(resp, {"rung": spec["rung"], "position": spec["position"],
                               "categories": spec["categories"]},
                        changes, "responsibilities", _resp_label(*key))
        for shift in list(member.shifts):
            shift_key = (code, shift.weekday, shift.starts, shift.ends)
            if shift_key in wanted_shift:
                wanted_shift.discard(shift_key)
            else:
                member.shifts.remove(shift)
                changes.note("removed", "shifts", _shift_label(*shift_key))
        for override in list(member.overrides):
            over_key = (code, override.kind, override.starts_at, override.ends_at)
            spec = wanted_over.pop(over_key, None)
            if spec is None:
                member.overrides.remove(override)
                changes.note("removed", "overrides", f"{code} {override.kind}")
            else:
                stand_in = members[spec["stand_in"]] if spec["stand_in"] else None
                _assign(override, {"stand_in": stand_in, "note": spec["note"]}, changes,
                        "overrides", f"{code} {override.kind}")
    for key, spec in wanted_resp.items():
        members[key[0]].responsibilities.append(Responsibility(
            place=places[key[1]] if key[1] else None, role=spec["role"], rung=spec["rung"],
            position=spec["position"], categories=spec["categories"]))
        changes.note("added", "responsibilities", _resp_label(*key))
    for code, weekday, starts, ends in sorted(wanted_shift, key=str):
        members[code].shifts.append(Shift(weekday=weekday, starts=starts, ends=ends))
        changes.note("added", "shifts", _shift_label(code, weekday, starts, ends))
    for (code, kind, starts_at, ends_at), spec in wanted_over.items():
        members[code].overrides.append(DutyOverride(
            kind=kind, starts_at=starts_at, ends_at=ends_at, note=spec["note"],
            stand_in=members[spec["stand_in"]] if spec["stand_in"] else None))
        changes.note("added", "overrides", f"{code} {kind}")


def _resp_label(member: str, place: str | None, role: Role) -> str:
    return f"{member} {role} @ {place or 'community'}"


def _shift_label(member: str, weekday: int, starts: time, ends: time) -> str:
    return f"{member} {WEEKDAYS[weekday]} {starts:%H:%M}-{ends:%H:%M}"


