"""Roster and duty editing, its warnings, and the audit log of every console POST."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from dispatch import clock
from dispatch.db import db
from dispatch.models import (
    AuditLog,
    Contact,
    ContactStatus,
    DutyOverride,
    Member,
    OverrideKind,
    Shift,
)
from tests.dispatch.staff.conftest import client_for, post
from tests.factories import csrf_token


def _member(app: Flask, code: str) -> Member:
    with app.app_context():
        member = db.session.scalar(sa.select(Member).where(Member.code == code))
        for relation in (member.contacts, member.responsibilities, member.shifts,
                         member.overrides):
            list(relation)
        db.session.expunge_all()
        return member


def _roster_post(client: Any, path: str, data: dict[str, Any]) -> Any:
    return post(client, path, data, page="/staff/roster/")


def test_the_roster_warns_of_members_nobody_can_reach(app: Flask, console: dict[str, Any]) -> None:
    with app.app_context():
        for contact in db.session.scalars(sa.select(Contact).join(Member).where(
                Member.code == "L1")):
            contact.status = ContactStatus.BROKEN
        db.session.commit()
    page = client_for(app, "admin").get("/staff/roster/").get_data(as_text=True)
    assert "李建国</a> 没有可用的联系方式" in page
    assert "没有可用的联系方式" in client_for(app, "admin").get(
        "/staff/roster/members/L1").get_data(as_text=True)


def test_the_roster_warns_of_rungs_nobody_covers_this_week(app: Flask,
                                                           console: dict[str, Any]) -> None:
    client = client_for(app, "admin")
    page = client.get("/staff/roster/").get_data(as_text=True)
    assert "网格层级 · 第二网格：未来 7 天无人值守" in page  # grid 2 has no secretary
    assert "楼栋层级 · 3栋：未来 7 天无人值守" in page  # nor building 3 a leader
    assert "网格层级 · 第一网格" not in page and "社区层级" not in page
    with app.app_context():
        secretary = db.session.scalar(sa.select(Member).where(Member.code == "S1"))
        db.session.add(DutyOverride(member=secretary, kind=OverrideKind.LEAVE,
                                    starts_at=clock.now() - timedelta(hours=1),
                                    ends_at=clock.now() + timedelta(days=8)))
        db.session.commit()
    page = client.get("/staff/roster/").get_data(as_text=True)
    assert "网格层级 · 第一网格：未来 7 天无人值守（1 人负责" in page


def test_staff_edit_contacts_responsibilities_shifts_and_overrides(
        app: Flask, console: dict[str, Any]) -> None:
    client = client_for(app, "admin")
    base = "/staff/roster/members/B1"
    _roster_post(client, f"{base}/contacts", {"channel": "voice", "phone": "139 0000 2222"})
    _roster_post(client, f"{base}/responsibilities",
                 {"place": "TS-B3", "role": "leader", "categories": "repair, noise"})
    _roster_post(client, f"{base}/shifts", {"days": "Sat,Sun", "starts": "09:00",
                                            "ends": "24:00"})
    _roster_post(client, f"{base}/overrides", {"kind": "leave", "starts_at": "2026-12-24T08:00",
                                               "ends_at": "2026-12-26T20:00",
                                               "stand_in": "L1", "note": "回老家"})
    member = _member(app, "B1")
    assert ("voice", "+8613900002222") in {(str(c.channel), c.address) for c in member.contacts}
    added = next(r for r in member.responsibilities if r.place_id is not None and
                 r.categories == ["repair", "noise"])
    assert added.rung == 1 and str(added.role) == "leader"
    assert sorted((s.weekday, s.starts.hour, s.ends.hour) for s in member.shifts) == [
        (5, 9, 0), (6, 9, 0)]
    leave = member.overrides[0]
    assert leave.starts_at.hour == 0 and leave.stand_in_id is not None  # 08:00 local is 00:00 UTC
    with app.app_context():
        actions = list(db.session.scalars(sa.select(AuditLog.action).order_by(AuditLog.id)))
    assert actions[-4:] == ["roster.contact.add", "roster.responsibility.add",
                            "roster.shift.add", "roster.override.add"]
    for kind, rows in (("shifts", member.shifts), ("overrides", member.overrides),
                       ("responsibilities", [added])):
        for row in rows:
            _roster_post(client, f"{base}/{kind}/{row.id}/delete", {})
    member = _member(app, "B1")
    assert not member.shifts and not member.overrides and len(member.responsibilities) == 1


def test_a_bad_phone_number_is_refused_with_a_message(app: Flask, console: dict[str, Any]) -> None:
    client = client_for(app, "admin")
    response = _roster_post(client, "/staff/roster/members/B1/contacts",
                            {"channel": "sms", "phone": "12345"})
    assert response.status_code == 302
    assert "号码无效" in client.get(response.location).get_data(as_text=True)
    assert len(_member(app, "B1").contacts) == 2


def test_a_new_member_joins_with_a_phone(app: Flask, console: dict[str, Any]) -> None:
    client = client_for(app, "sec2")
    page = "/staff/roster/members/new"
    response = client.post(page, data={"csrf_token": csrf_token(client, page), "code": "V9",
                                       "name": "周敏", "kind": "volunteer",
                                       "phone": "13700137000"})
    assert response.status_code == 302
    member = _member(app, "V9")
    assert member.name == "周敏" and member.active
    assert member.contacts[0].address == "+8613700137000"
    assert member.grid_id == console["grids"]["TS-G2"]  # a secretary's members join their grid


def test_a_secretary_adds_duties_only_inside_their_grid(app: Flask,
                                                        console: dict[str, Any]) -> None:
    client = client_for(app, "sec1")
    base = "/staff/roster/members/B1"
    before = len(_member(app, "B1").responsibilities)
    _roster_post(client, f"{base}/responsibilities", {"place": "", "role": "duty_desk"})
    assert len(_member(app, "B1").responsibilities) == before  # community-wide: refused
    response = _roster_post(client, f"{base}/responsibilities",
                            {"place": "TS-B3", "role": "leader"})
    assert response.status_code == 404
    _roster_post(client, f"{base}/responsibilities", {"place": "TS-B2", "role": "backup"})
    assert len(_member(app, "B1").responsibilities) == before + 1


def test_viewers_cannot_edit_the_roster(app: Flask, console: dict[str, Any]) -> None:
    client = client_for(app, "viewer")
    assert "<form method=\"post\" action=\"/staff/roster" not in client.get(
        "/staff/roster/members/B1").get_data(as_text=True)
    response = _roster_post(client, "/staff/roster/members/B1/shifts",
                            {"days": "Mon", "starts": "08:00", "ends": "09:00"})
    assert response.status_code == 403
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Shift).join(Member).where(
            Member.code == "B1")) == 0
        refused = db.session.scalar(sa.select(AuditLog).order_by(AuditLog.id.desc()))
    assert refused.action == "roster.add_shift" and refused.data["status"] == 403


def test_every_console_post_leaves_an_audit_row(app: Flask, console: dict[str, Any]) -> None:
    client = client_for(app, "admin")
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditLog))
    posts = [
        ("/staff/cases/{F}/note", {"text": "x"}),
        ("/staff/cases/{F}/note", {"text": ""}),  # refused: empty note
        ("/staff/cases/{J}/close", {"fixed": "1"}),
        ("/staff/roster/members/B1", {"name": "王秀英", "kind": "volunteer", "present": "1",
                                      "active": "1"}),
        ("/staff/logout", {}),
    ]
    for path, data in posts:
        post(client, path.format(**console["cases"]), data)
    with app.app_context():
        rows = list(db.session.scalars(sa.select(AuditLog).where(AuditLog.id > before)
                                       .order_by(AuditLog.id)))
    assert [r.action for r in rows] == ["case.note", "board.note", "case.close",
                                        "roster.member.update", "auth.logout"]
    assert all(r.staff_id is not None for r in rows)
