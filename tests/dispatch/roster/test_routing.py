"""Routing: place × category × rung → the people to ask, nearest and first in line first."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from dispatch.community import import_data, tables_to_data
from dispatch.db import db
from dispatch.models import (
    Member,
    MemberKind,
    Place,
    PlaceKind,
    Responsibility,
    Role,
    Rung,
)
from dispatch.roster.routing import rank, responders, top_rung
from tests import factories

_ids = iter(range(1, 1000))


def create_place(code: str, kind: PlaceKind, parent: Place | None = None) -> Place:
    return Place(id=next(_ids), code=code, kind=kind, name=code, parent=parent)


def create_member(code: str) -> Member:
    return Member(id=next(_ids), code=code, name=code, kind=MemberKind.PARTY_MEMBER)


def responsibility(member: Member, role: Role, place: Place | None, position: int = 0,
                   categories: list[str] | None = None) -> Responsibility:
    return Responsibility(member=member, role=role, place=place, position=position,
                          rung=Rung.BUILDING, categories=categories or [])


def test_the_nearest_place_goes_first_then_the_order_in_the_file() -> None:
    grid = create_place("G", PlaceKind.GRID)
    building = create_place("B", PlaceKind.BUILDING, grid)
    unit = create_place("U", PlaceKind.UNIT, building)
    lift = create_place("E", PlaceKind.ELEVATOR, unit)
    leader, backup, unit_lead, desk = (create_member(c) for c in ("LEAD", "BACK", "UNIT", "DESK"))
    rows = [
        responsibility(backup, Role.BACKUP, building, position=1),
        responsibility(desk, Role.LEADER, None),  # the whole community: after every place
        responsibility(leader, Role.LEADER, building, position=0),
        responsibility(unit_lead, Role.BACKUP, unit, position=5),
    ]
    ranked = rank(lift.lineage(), "repair", [Role.LEADER, Role.BACKUP], rows)
    assert [r.member.code for r in ranked] == ["UNIT", "LEAD", "BACK", "DESK"]


def test_places_outside_the_lineage_roles_not_asked_and_other_categories_do_not_count() -> None:
    grid = create_place("G", PlaceKind.GRID)
    here = create_place("B1", PlaceKind.BUILDING, grid)
    there = create_place("B2", PlaceKind.BUILDING, grid)
    members = {c: create_member(c) for c in ("HERE", "THERE", "SEC", "LIFT", "GAS")}
    rows = [
        responsibility(members["HERE"], Role.LEADER, here),
        responsibility(members["THERE"], Role.LEADER, there),
        responsibility(members["SEC"], Role.SECRETARY, grid),
        responsibility(members["LIFT"], Role.ELEVATOR, None, categories=["elevator"]),
        responsibility(members["GAS"], Role.ELEVATOR, None, categories=["safety"]),
    ]
    ranked = rank(here.lineage(), "elevator", [Role.ELEVATOR, Role.LEADER], rows)
    assert [r.member.code for r in ranked] == ["HERE", "LIFT"]


def test_a_member_with_two_matching_responsibilities_is_asked_once_at_the_nearest() -> None:
    grid = create_place("G", PlaceKind.GRID)
    building = create_place("B", PlaceKind.BUILDING, grid)
    both = create_member("BOTH")
    rows = [responsibility(both, Role.GRID_MEMBER, grid),
            responsibility(both, Role.SECRETARY, building)]
    [only] = rank(building.lineage(), "noise", [Role.SECRETARY, Role.GRID_MEMBER], rows)
    assert (only.role, only.place) == (Role.SECRETARY, building)


def _import(app: Flask) -> None:
    data = factories.small_community()
    data["members"].append({"code": "P1", "name": "赵物业", "kind": "property",
                            "phones": ["13800138009"]})
    data["responsibilities"].append({"member": "P1", "role": "property",
                                     "categories": ["repair"]})
    import_data(tables_to_data(data, "small"))


def _place(code: str) -> Place:
    return db.session.scalar(sa.select(Place).where(Place.code == code))


def test_the_community_file_rules_choose_who_is_asked_at_each_rung(app: Flask) -> None:
    with app.app_context():
        _import(app)
        lift = _place("TS-B1-U1-E1")

        def codes(category: str, rung: int) -> list[str]:
            return [r.member.code for r in responders(lift, category, rung)]

        assert codes("noise", Rung.BUILDING) == ["L1", "B1"]  # leader, then backup
        assert codes("elevator", Rung.BUILDING) == ["L1", "E1"]  # the building, then maintainer
        assert codes("repair", Rung.BUILDING) == ["P1"]  # the property service desk
        assert codes("noise", Rung.GRID) == ["S1"]
        assert codes("noise", Rung.COMMUNITY) == ["D1"]  # the property desk answers repairs only
        assert codes("noise", Rung.DISTRICT) == ["X1"]
        assert [r.member.code for r in responders(_place("TS-B2-U1"), "noise",
                                                  Rung.BUILDING)] == []
        assert top_rung(lift, "noise") == Rung.DISTRICT
