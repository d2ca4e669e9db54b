"""The issue's "done when", on the Donghu-sized demo community, with a clock the test moves."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask

from dispatch.case.report import file_report
from dispatch.community import load_demo
from dispatch.db import db
from dispatch.jobs import sweeper
from dispatch.models import Case, CaseStatus, Notification, Responsibility, Role
from tests.factories import csrf_token, place

MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def paged(case_id: int, rung: int) -> list[Notification]:
    return list(db.session.scalars(sa.select(Notification).where(
        Notification.case_id == case_id, Notification.rung == rung,
        Notification.purpose == "alert")))


def test_a_message_reaches_the_building_climbs_to_the_community_and_a_link_stops_it(
        app: Flask, client) -> None:
    with app.app_context():
        load_demo()
        building = place("DH-B02")
        leader = db.session.scalar(sa.select(Responsibility).where(
            Responsibility.place_id == building.id, Responsibility.role == Role.LEADER)).member
        case_id = file_report(place("DH-B02-U1"), "noise", text="楼上装修噪音", now=MONDAY
                              ).case.id
        sweeper.sweep(MONDAY, grace=timedelta(0))
        first = paged(case_id, 1)
        assert first[0].member == leader and "东湖花园 2栋 1单元" in first[0].body
        assert {n.status for n in first} == {"sent"}

        sweeper.sweep(MONDAY + timedelta(minutes=29), grace=timedelta(0))
        assert paged(case_id, 2) == []  # normal cases wait 30 minutes per rung
        sweeper.sweep(MONDAY + timedelta(minutes=30), grace=timedelta(0))
        assert paged(case_id, 2)
        sweeper.sweep(MONDAY + timedelta(minutes=60), grace=timedelta(0))
        community = paged(case_id, 3)
        roles = {r.role for n in community for r in n.member.responsibilities}
        assert {Role.DUTY_DESK, Role.PROPERTY, Role.OWNERS} <= roles
        desk = next(n for n in community if any(
            r.role == Role.DUTY_DESK for r in n.member.responsibilities))
        everyone = {n.member_id for n in db.session.scalars(sa.select(Notification))}
        accept = re.search(r"http://linli\.test(/m/accept/\S+)", desk.body)[1]

    answer = client.post(accept, data={"csrf_token": csrf_token(client, accept)})
    assert answer.status_code == 303

    with app.app_context():
        sweeper.sweep(MONDAY + timedelta(minutes=120), grace=timedelta(0))
        case = db.session.get(Case, case_id)
        assert case.status == CaseStatus.ACCEPTED and case.accepted_rung == 3
        assert paged(case_id, 4) == []  # accepting stopped the ladder
        told = {n.member_id for n in db.session.scalars(sa.select(Notification).where(
            Notification.purpose == "taken"))}
        assert told == everyone - {desk.member_id}
