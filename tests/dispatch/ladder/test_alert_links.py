"""A resident's words quoted in a member's alert carry no links (defect 12 of issue 15)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Notification
from tests import factories
from tests.factories import place

MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.mark.postgres
def test_links_typed_by_a_resident_are_not_sent_in_member_sms_on_postgresql(
        pg_app: Flask) -> None:
    with pg_app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        filed = file_report(place("TS-B1-U1-E1"), "elevator", now=MONDAY,
                            text="困人！详见http://evil.example/x 或 evil.example/y")
        lifecycle.run_step(filed.case.id, filed.case.token, now=MONDAY)
        bodies = db.session.scalars(sa.select(Notification.body)).all()
    assert bodies
    for body in bodies:
        assert "evil.example" not in body
        assert "困人！详见[链接]" in body
        assert "http://linli.test/m/accept/" in body  # the service's own links stay


def test_an_alert_fits_two_sms_segments_with_one_short_link(app: Flask) -> None:
    with app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        words = "电梯在五楼停住了，门打不开，里面好像有老人和小孩，按了警铃没有人回应，" * 3
        filed = file_report(place("TS-B1-U1-E1"), "elevator", now=MONDAY, text=words)
        file_report(place("TS-B1-U1-E1"), "elevator", now=MONDAY, text="我也被困过")
        lifecycle.run_step(filed.case.id, filed.case.token, now=MONDAY)
        bodies = db.session.scalars(sa.select(Notification.body).where(
            Notification.purpose == "alert")).all()
    assert bodies
    for body in bodies:
        assert len(body) <= 134  # two UCS-2 segments of 67
        assert body.count("http://") == 1 and "/m/accept/" in body
        assert body.startswith("【邻里】电梯故障：测试花园 1栋 1单元 · 1号电梯，2人反映\n"
                               "“电梯在五楼停住了")
        assert "…”" in body  # the resident's words, cut to fit
