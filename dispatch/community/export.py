"""Exporting a community: the database back into file tables that re-import to the same state."""

from __future__ import annotations

from datetime import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dispatch import clock
from dispatch.community.check import FILE_CHANNELS
from dispatch.community.days import format_days
from dispatch.models import (
    Channel,
    Community,
    Member,
    Place,
    Rung,
)

# ---------------------------------------------------------------------------------------------
# Export: the database back into tables that re-import to the same state.


def export_community(session: Session, community: Community) -> dict[str, list[dict[str, Any]]]:
    """The community as file tables, in a stable order."""
    zone = clock.zone(community.timezone)
    places = list(session.scalars(sa.select(Place).where(Place.community_id == community.id)
                                  .order_by(Place.position, Place.id)))
    members = list(session.scalars(sa.select(Member).where(Member.community_id == community.id)
                                   .order_by(Member.code)))
    stored = community.settings
    tables: dict[str, list[dict[str, Any]]] = {
        "community": [{"code": community.code, "name": community.name,
                       "timezone": community.timezone, "hotline": community.hotline}],
        "categories": [dict(c) for c in stored.get("categories", [])],
        "policies": [{"urgency": u, **p} for u, p in stored.get("policies", {}).items()],
        "routing": [{"category": r["category"], "rung": Rung(int(r["rung"])).name.lower(),
                     "roles": list(r["roles"])} for r in stored.get("routing", [])],
        "urgent_words": [dict(w) for w in stored.get("urgent_words", [])],
        "places": [{
            "code": p.code, "kind": str(p.kind), "name": p.name,
            "parent": p.parent.code if p.parent else None, "org_name": p.org_name,
            "floors": p.floors, "households": p.households, "notes": p.notes,
        } for p in places],
        "members": [], "responsibilities": [], "shifts": [], "overrides": [],
        "robots": [dict(robot) for robot in stored.get("robots", [])],
    }
    for m in members:
        phones = list(dict.fromkeys(c.address for c in m.contacts if c.channel in FILE_CHANNELS))
        tables["members"].append({
            "code": m.code, "name": m.name, "public_name": m.public_name, "kind": str(m.kind),
            "organisation": m.organisation, "party_member": "yes" if m.is_party_member else "no",
            "grid": m.grid.code if m.grid else None, "phones": phones,
            "wecom": next((c.address for c in m.contacts if c.channel == Channel.WECOM), None),
            "channels": list(m.channel_order),
            "dnd": f"{m.dnd_start:%H:%M}-{m.dnd_end:%H:%M}" if m.dnd_start and m.dnd_end else None,
            "active": "yes" if m.active else "no", "notes": m.notes,
        })
        for r in sorted(m.responsibilities, key=lambda r: (r.rung, r.position, r.id or 0)):
            tables["responsibilities"].append({
                "member": m.code, "place": r.place.code if r.place else None,
                "rung": Rung(r.rung).name.lower(), "role": str(r.role), "order": r.position,
                "categories": list(r.categories)})
        by_hours: dict[tuple[time, time], list[int]] = {}
        for s in m.shifts:
            by_hours.setdefault((s.starts, s.ends), []).append(s.weekday)
        for (starts, ends), days in sorted(by_hours.items()):
            tables["shifts"].append({"member": m.code, "days": format_days(days),
                                     "start": f"{starts:%H:%M}", "end": f"{ends:%H:%M}"})
        for o in sorted(m.overrides, key=lambda o: o.starts_at):
            tables["overrides"].append({
                "member": m.code, "kind": str(o.kind),
                "starts": clock.format_local(o.starts_at, zone, "%Y-%m-%d %H:%M"),
                "ends": clock.format_local(o.ends_at, zone, "%Y-%m-%d %H:%M"),
                "stand_in": o.stand_in.code if o.stand_in else None, "note": o.note})
    return tables
