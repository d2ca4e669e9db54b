"""The sweeper re-drives from the database whatever a lost job missed."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import sweeper
from dispatch.cases import file_report
from dispatch.db import db
from dispatch.models import Case, CaseEvent, Notification, NotificationStatus
from tests import factories
from tests.factories import place

MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
SEC = timedelta(seconds=1)


def notified(case_id: int) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(CaseEvent).where(
        CaseEvent.case_id == case_id, CaseEvent.kind == "notified"))


def test_a_step_whose_job_was_lost_is_taken_by_the_sweep_after_the_grace(any_app: Flask) -> None:
    with any_app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        case = file_report(place("TS-B1-U1-E1"), "elevator", now=MONDAY).case
        # The step job sits in the embedded runner and is never run: as if Redis lost it.
        assert sweeper.sweep(MONDAY + SEC) == 0  # still within the grace: the fast path's turn
        assert sweeper.sweep(MONDAY + sweeper.GRACE) == 3  # the step and its two messages
        assert notified(case.id) == 1
        statuses = db.session.scalars(sa.select(Notification.status)).all()
        assert statuses == [NotificationStatus.SENT, NotificationStatus.SENT]
        assert sweeper.sweep(MONDAY + 2 * sweeper.GRACE) == 0  # nothing left to do


@pytest.mark.postgres
def test_a_case_a_worker_holds_is_skipped_not_waited_for(pg_app: Flask) -> None:
    with pg_app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        case = file_report(place("TS-B1-U1-E1"), "elevator", now=MONDAY).case
        with db.engine.connect() as worker:
            worker.execute(sa.select(Case).where(Case.id == case.id).with_for_update())
            started = time.monotonic()
            assert sweeper.sweep_steps(MONDAY + timedelta(minutes=1)) == 0
            assert time.monotonic() - started < 1
            worker.rollback()
        assert sweeper.sweep_steps(MONDAY + timedelta(minutes=1)) == 1
        assert notified(case.id) == 1
