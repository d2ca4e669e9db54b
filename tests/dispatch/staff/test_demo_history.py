"""`flask community demo --history N`: past cases made through the lifecycle, so the dashboard
has figures on first look, and nothing of that past is ever sent or stepped again."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Flask

from dispatch import jobs
from dispatch.db import db
from dispatch.metrics import queries
from dispatch.models import (
    OPEN_STATUSES,
    Case,
    CaseEvent,
    Community,
    Notification,
    NotificationStatus,
    Report,
    ReportKind,
)
from tests.clock import START


def test_demo_history_seeds_settled_cases_through_the_lifecycle(app: Flask,
                                                                frozen_clock: None) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["community", "demo", "--history", "21"])
    assert result.exit_code == 0, result.output
    assert "Seeded" in result.output
    with app.app_context():
        community = db.session.scalars(sa.select(Community)).one()
        cases = list(db.session.scalars(sa.select(Case)))
        assert len(cases) > 40  # about four a day
        assert all(START - timedelta(days=22) < c.reported_at < START for c in cases)
        assert not [c for c in cases if c.status in OPEN_STATUSES]  # nothing left to step
        assert all(c.next_step_at is None for c in cases)
        accepted = [c for c in cases if c.accepted_at is not None]
        assert len(accepted) > 0.8 * len(cases)
        acceptances = db.session.scalar(sa.select(sa.func.count(CaseEvent.id)).where(
            CaseEvent.kind == "accepted"))
        assert acceptances >= len(accepted)  # each one decided by the lifecycle
        assert {c.accepted_rung for c in accepted} >= {1, 2}  # some went up to the grid
        assert db.session.scalar(sa.select(sa.func.count(Notification.id)).where(
            Notification.status != NotificationStatus.CANCELLED)) == 0  # never sent
        assert db.session.scalar(sa.select(sa.func.count(Report.id)).where(
            Report.kind == ReportKind.ME_TOO)) > 0
        figures = queries.summary(queries.Scope(community_id=community.id),
                                  queries.Period(START - timedelta(days=30), START))
        assert figures.cases == len(cases) and figures.response_rate is not None
        assert figures.satisfaction_rate is not None
    assert jobs.runner(app).drain() == 0  # nothing of the past was queued
    again = runner.invoke(args=["community", "demo", "--history", "21"])
    assert again.exit_code == 0 and "no history seeded" in again.output
