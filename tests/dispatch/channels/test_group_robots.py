"""Work groups hear about their cases: the grid's WeCom robot and the building's DingTalk robot
get a short message when a case opens, goes up and is resolved; at most 20 a minute per
robot, the rest bundled; never a phone number."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask, current_app

from dispatch import jobs
from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.jobs import sweeper
from dispatch.models import Case, Channel, Notification, NotificationStatus
from tests import clock, factories
from tests.clock import MIN
from tests.factories import member, place
from tests.fakes.robot_server import DINGTALK_SECRET, DINGTALK_TOKEN, WECOM_KEY, FakeRobots

START = clock.START
ROBOTS = [{"place": "TS-G1", "kind": "wecom", "key": WECOM_KEY},
          {"place": "TS-B1", "kind": "dingtalk", "key": DINGTALK_TOKEN, "secret": DINGTALK_SECRET}]


@pytest.fixture
def robots(app: Flask, frozen_clock: None) -> Iterator[FakeRobots]:
    with FakeRobots(now_ms=int(START.timestamp() * 1000)) as fake, app.app_context():
        app.config.update(WECOM_API_BASE_URL=fake.url, DINGTALK_API_BASE_URL=fake.url)
        factories.import_community(factories.dispatch_community(robots=ROBOTS))
        yield fake


def tick(at: datetime) -> None:
    clock.move_to(at)
    sweeper.sweep(at, grace=timedelta(0))
    jobs.runner(current_app).drain()
    db.session.expire_all()


def posts(fake: FakeRobots, robot: str) -> list[str]:
    return [m.text for m in fake.messages if m.robot == robot]


def test_a_case_is_posted_to_its_grid_and_building_when_it_opens_goes_up_and_is_resolved(
        robots: FakeRobots) -> None:
    case = file_report(place("TS-B1-U1"), "noise", text="楼上装修，电话13912345678").case
    tick(START)
    [opened] = posts(robots, "wecom")
    assert opened.startswith(f"### 新事项\n1栋 1单元 · 噪音扰民（一般，{case.number}）")
    assert f"/staff/cases/{case.id}" in opened and "13912345678" not in opened
    assert posts(robots, "dingtalk") == [opened]
    tick(START + 31 * MIN)  # nobody took it at the building: up to the grid
    assert posts(robots, "wecom")[-1].startswith("### 已上报网格")
    lifecycle.resolve(case.id, member("S1").id, "已协调，来电13800138000", now=START + 40 * MIN)
    tick(START + 40 * MIN)
    resolved = posts(robots, "wecom")[-1]
    assert resolved.startswith("### 已解决") and "张伟已处理完毕" in resolved
    assert "13800138000" not in resolved
    assert len(posts(robots, "dingtalk")) == 3
    rows = db.session.scalars(sa.select(Notification).where(
        Notification.channel == Channel.ROBOT)).all()
    assert {r.status for r in rows} == {NotificationStatus.SENT}


def test_a_storm_of_cases_stays_under_twenty_a_minute_per_robot_and_loses_none(
        robots: FakeRobots) -> None:
    categories = ("noise", "repair", "dispute", "other", "sanitation", "help", "safety",
                  "elevator")
    for code in ("TS-B1-U1", "TS-B2-U1", "TS-G1-A1", "TS-B1-U1-E1"):
        for category in categories:
            file_report(place(code), category)
    tick(START)
    numbers = [c.number for c in db.session.scalars(sa.select(Case)).all()]
    assert len(numbers) == 32
    sent = posts(robots, "wecom")
    assert 1 <= len(sent) <= 20 and robots.refused == []
    assert all(number in "".join(sent) for number in numbers)  # bundled, not dropped


def test_the_twenty_first_message_in_a_minute_waits_and_goes_with_the_others(
        robots: FakeRobots) -> None:
    categories = ("noise", "repair", "dispute", "other", "sanitation", "help", "safety")
    numbers = []
    for code in ("TS-B1-U1", "TS-B2-U1", "TS-G1-A1", "TS-B1-U1-E1"):
        for category in categories:
            numbers.append(file_report(place(code), category).case.number)
            tick(START)  # each sent as it comes
    assert len(numbers) == 28
    assert len(posts(robots, "wecom")) == 20  # the robot's limit, not one more
    robots.advance(60)
    tick(START + MIN)
    sent = posts(robots, "wecom")
    assert len(sent) == 21 and sent[-1].splitlines()[0].endswith("条消息**")
    assert robots.refused == []
    assert all(number in "".join(sent) for number in numbers)


@pytest.mark.parametrize("refusal", [{"errcode": 45009}, {"http_status": 429}])
def test_a_robot_saying_too_many_is_tried_again_later_and_nothing_is_lost(
        robots: FakeRobots, refusal: dict[str, int]) -> None:
    robots.answer_next(**refusal)  # the grid's robot refuses the first message
    case = file_report(place("TS-G1-A1"), "noise").case
    tick(START)
    assert posts(robots, "wecom") == []
    query = sa.select(Notification).where(Notification.channel == Channel.ROBOT,
                                          Notification.case_id == case.id)
    assert {r.status for r in db.session.scalars(query)} == {NotificationStatus.PENDING}
    tick(START + 5 * MIN)  # after the back-off
    assert {r.status for r in db.session.scalars(query)} == {NotificationStatus.SENT}
    assert case.number in "".join(posts(robots, "wecom"))
