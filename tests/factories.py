"""Plain functions that build test data in the community-file form users import."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import Flask

from dispatch.community import import_data, tables_to_data
from dispatch.community.settings import default_settings
from dispatch.db import db
from dispatch.models import Community, Member, Place, Rung, StaffRole
from dispatch.staff.auth import create_user


def small_community(**tables: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A community of one grid and two buildings, with a person for every rung.

    Pass a table by name to replace it.
    """
    settings = default_settings()
    data: dict[str, list[dict[str, Any]]] = {
        "community": [{"code": "TS", "name": "测试花园", "timezone": "Asia/Shanghai",
                       "hotline": "0752-1234567"}],
        "categories": settings["categories"],
        "policies": [{"urgency": u, **p} for u, p in settings["policies"].items()],
        "routing": [{"category": r["category"], "rung": Rung(r["rung"]).name.lower(),
                     "roles": r["roles"]} for r in settings["routing"]],
        "places": [
            {"code": "TS-G1", "kind": "grid", "name": "第一网格", "org_name": "第一网格党支部"},
            {"code": "TS-B1", "kind": "building", "name": "1栋", "parent": "TS-G1",
             "org_name": "1栋党小组", "floors": 18},
            {"code": "TS-B1-U1", "kind": "unit", "name": "1单元", "parent": "TS-B1"},
            {"code": "TS-B1-U1-E1", "kind": "elevator", "name": "1号电梯", "parent": "TS-B1-U1"},
            {"code": "TS-B2", "kind": "building", "name": "2栋", "parent": "TS-G1",
             "org_name": "2栋党小组", "floors": 26},
            {"code": "TS-B2-U1", "kind": "unit", "name": "1单元", "parent": "TS-B2"},
            {"code": "TS-G1-A1", "kind": "area", "name": "北门", "parent": "TS-G1"},
        ],
        "members": [
            {"code": "L1", "name": "李建国", "kind": "party_member", "party_member": "yes",
             "grid": "TS-G1", "phones": ["13800138001"], "channels": ["sms"],
             "dnd": "22:00-07:00"},
            {"code": "B1", "name": "王秀英", "kind": "volunteer", "phones": ["13800138002"],
             "channels": ["sms", "voice"]},
            {"code": "S1", "name": "张伟", "kind": "party_member", "party_member": "yes",
             "phones": ["+8613800138003"]},
            {"code": "D1", "name": "刘芳", "kind": "staff", "organisation": "居委会",
             "phones": ["13800138004"]},
            {"code": "E1", "name": "陈磊", "kind": "elevator", "organisation": "快速电梯维保",
             "phones": ["13800138005"]},
            {"code": "X1", "name": "赵强", "kind": "department", "organisation": "街道办",
             "phones": ["13800138006"]},
        ],
        "responsibilities": [
            {"member": "L1", "place": "TS-B1", "role": "leader", "order": 0},
            {"member": "B1", "place": "TS-B1", "role": "backup", "order": 1},
            {"member": "S1", "place": "TS-G1", "role": "secretary"},
            {"member": "D1", "role": "duty_desk"},
            {"member": "E1", "role": "elevator", "categories": ["elevator"]},
            {"member": "X1", "role": "department", "rung": "district"},
        ],
        "shifts": [
            {"member": "D1", "days": "Mon-Fri", "start": "08:30", "end": "17:30"},
            {"member": "E1", "days": "daily", "start": "00:00", "end": "24:00"},
        ],
        "overrides": [
            {"member": "L1", "kind": "leave", "starts": "2026-12-01 00:00",
             "ends": "2026-12-03 23:59", "stand_in": "B1", "note": "出差"},
        ],
    }
    data.update(tables)
    return data


def add_staff(app: Flask, username: str = "admin", role: StaffRole = StaffRole.ADMIN,
              grid_code: str | None = None, password: str = "correct horse") -> None:
    """A staff login in the app's only community."""
    with app.app_context():
        community = db.session.scalars(sa.select(Community)).one()
        grid = db.session.scalar(sa.select(Place).where(Place.code == grid_code))
        create_user(community, username, "测试员", password, role, grid)
        db.session.commit()


def login(client: Any, username: str = "admin", password: str = "correct horse") -> Any:
    """Log in through the real form, CSRF token included."""
    page = client.get("/staff/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    return client.post("/staff/login", data={"username": username, "password": password,
                                             "csrf_token": token})


def csrf_token(client: Any, path: str) -> str:
    """The CSRF token of the form on the page at `path`."""
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page)[1]


def dispatch_community(**tables: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The small community with someone reachable at every rung at any hour of any day.

    The duty desk works round the clock and nobody is on leave, so tests that run on the real
    clock (real workers) do not depend on the weekday or the hour.
    """
    data = small_community(
        shifts=[{"member": "D1", "days": "daily", "start": "00:00", "end": "24:00"},
                {"member": "E1", "days": "daily", "start": "00:00", "end": "24:00"}],
        overrides=[])
    data.update(tables)
    return data


def import_community(data: dict[str, list[dict[str, Any]]]) -> Community:
    """Import community tables through the ordinary import; returns the community."""
    community, _ = import_data(tables_to_data(data, "test"))
    return community


def set_policy(community: Community, urgency: str, **values: float) -> None:
    """Change a community's escalation policy numbers (commits).

    The file accepts whole minutes only; tests that run on the real clock write fractions of
    a minute here (rung_minutes=0.05 is three seconds). Cases opened afterwards snapshot them.
    """
    policies = {k: dict(v) for k, v in community.settings.get("policies", {}).items()}
    policies.setdefault(urgency, {}).update(values)
    community.settings = {**community.settings, "policies": policies}
    db.session.commit()


def place(code: str) -> Place:
    """The place with `code`."""
    return db.session.scalar(sa.select(Place).where(Place.code == code))


def member(code: str) -> Member:
    """The member with `code`."""
    return db.session.scalar(sa.select(Member).where(Member.code == code))
