"""Operations: `/metrics` in the Prometheus text format, and the worker heartbeat in /healthz."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from dispatch import clock
from dispatch.db import db
from dispatch.metrics import prometheus
from dispatch.models import Case, CaseStatus, Channel, Notification, NotificationStatus
from tests.conftest import base_config
from tests.dispatch.staff.history import march, two_grid_community

LINE = re.compile(r'^(?P<name>[a-z_]+)(\{(?P<labels>[^}]*)\})? (?P<value>[-0-9.e+]+)$')


def scrape(app: Flask) -> dict[tuple[str, str], float]:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    samples: dict[tuple[str, str], float] = {}
    for line in response.get_data(as_text=True).splitlines():
        if line.startswith("#"):
            continue
        match = LINE.match(line)
        assert match, line
        samples[(match["name"], match["labels"] or "")] = float(match["value"])
    return samples


def test_metrics_count_cases_accept_times_backlog_lag_and_outcomes(any_app: Flask) -> None:
    now = clock.now()
    with any_app.app_context():
        two_grid_community()
        cases = march()
        waiting = db.session.get(Case, cases["F"].id)
        waiting.next_step_at = now - timedelta(seconds=90)
        for n, (channel, status, due) in enumerate((
                (Channel.SMS, NotificationStatus.PENDING, now - timedelta(seconds=40)),
                (Channel.SMS, NotificationStatus.DELIVERED, None),
                (Channel.VOICE, NotificationStatus.FAILED, None),
                (Channel.SMS, NotificationStatus.PENDING, now + timedelta(minutes=5)))):
            db.session.add(Notification(case_id=waiting.id, channel=channel, to_address="x",
                                        purpose="alert", body="…", dedupe_key=f"k{n}",
                                        status=status, next_attempt_at=due, created_at=now))
        db.session.commit()
    samples = scrape(any_app)
    assert samples[("linli_cases", 'community="TS",status="open"')] == 1
    assert samples[("linli_cases", 'community="TS",status="accepted"')] == 2  # J and February's
    assert samples[("linli_cases", 'community="TS",status="closed"')] == 7
    buckets = {labels: value for (name, labels), value in samples.items()
               if name == "linli_case_time_to_accept_seconds_bucket"}
    # accepted after 3, 5 (February), 10, 20, 45 minutes and 2 hours
    assert buckets['le="300"'] == 2 and buckets['le="600"'] == 3 and buckets['le="1800"'] == 4
    assert buckets['le="3600"'] == 5 and buckets['le="7200"'] == 6 and buckets['le="+Inf"'] == 6
    assert samples[("linli_case_time_to_accept_seconds_count", "")] == 6
    assert samples[("linli_case_time_to_accept_seconds_sum", "")] == pytest.approx(12180)
    assert samples[("linli_outbox_backlog", 'channel="sms"')] == 2
    assert samples[("linli_sweeper_lag_seconds", 'kind="step"')] == pytest.approx(90, abs=5)
    assert samples[("linli_sweeper_lag_seconds", 'kind="outbox"')] == pytest.approx(40, abs=5)
    assert samples[("linli_notifications", 'channel="voice",status="failed"')] == 1
    assert samples[("linli_notifications", 'channel="sms",status="pending"')] == 2


def test_nothing_due_means_no_lag(app: Flask) -> None:
    samples = scrape(app)
    assert samples[("linli_sweeper_lag_seconds", 'kind="step"')] == 0
    assert samples[("linli_case_time_to_accept_seconds_count", "")] == 0


def test_metrics_speak_openmetrics_to_a_scraper_that_asks_for_it(app: Flask) -> None:
    response = app.test_client().get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.content_type.startswith("application/openmetrics-text")
    body = response.get_data(as_text=True)
    assert "# TYPE linli_case_time_to_accept_seconds histogram" in body
    assert 'linli_sweeper_lag_seconds{kind="step"} 0.0' in body
    assert body.endswith("# EOF\n")


def test_counts_by_state_are_kept_for_30_seconds_on_sqlite_while_backlog_is_read_fresh(
        sqlite_app: Flask) -> None:
    app = sqlite_app

    def add_pending(key: str) -> None:
        with app.app_context():
            db.session.add(Notification(channel=Channel.SMS, to_address="x", purpose="alert",
                                        body="…", dedupe_key=key,
                                        status=NotificationStatus.PENDING,
                                        created_at=clock.now()))
            db.session.commit()

    add_pending("first")
    assert scrape(app)[("linli_notifications", 'channel="sms",status="pending"')] == 1
    add_pending("second")
    samples = scrape(app)
    assert samples[("linli_notifications", 'channel="sms",status="pending"')] == 1  # cached
    assert samples[("linli_outbox_backlog", 'channel="sms"')] == 2


def counted(app: Flask) -> dict[tuple[str, str], float]:
    """The cases and messages by state, counted from the tables now."""
    with app.app_context():
        rows = [*(("linli_cases", f'community="{s["community"]}",status="{s["status"]}"', n)
                  for s, n in prometheus.cases_by_status()),
                *(("linli_notifications", f'channel="{s["channel"]}",status="{s["status"]}"', n)
                  for s, n in prometheus.notifications_by_outcome())]
        db.session.rollback()
    return {(name, labels): n for name, labels, n in rows}


def kept_counts(samples: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    return {key: value for key, value in samples.items()
            if key[0] in ("linli_cases", "linli_notifications")}


@pytest.mark.postgres
def test_on_postgresql_every_count_follows_each_change_exactly_at_the_next_scrape(
        app: Flask) -> None:
    """The database keeps the whole-history counts as they change (`metrics.totals`): a
    reopened case, a late acceptance, a message's outcome show at the next scrape, folded or
    not, in every process; a rolled-back change never counts; a case reopened and accepted
    again is observed again, so the histogram never goes down."""
    with app.app_context():
        two_grid_community()
        cases = {letter: case.id for letter, case in march().items()}
        notification = Notification(case_id=cases["J"], channel=Channel.SMS, to_address="x",
                                    purpose="alert", body="…", dedupe_key="k",
                                    status=NotificationStatus.PENDING, created_at=clock.now())
        db.session.add(notification)
        db.session.commit()
        notification_id = notification.id
    before = scrape(app)
    assert kept_counts(before) == counted(app)
    with app.app_context():
        case = db.session.get_one(Case, cases["J"])
        assert case.status == CaseStatus.ACCEPTED and case.accepted_at is not None
        case.status, case.accepted_at = CaseStatus.OPEN, None  # reopened
        db.session.commit()
        case.status = CaseStatus.ACCEPTED  # and accepted again, 50 minutes after the report
        case.accepted_at = case.reported_at + timedelta(minutes=50)
        db.session.get_one(Notification, notification_id).status = NotificationStatus.DELIVERED
        db.session.commit()
        other = db.session.get_one(Case, cases["F"])
        other.status, other.accepted_at = CaseStatus.CLOSED, clock.now()
        db.session.flush()
        db.session.rollback()  # never happened
    after = scrape(app)
    assert kept_counts(after) == counted(app)
    assert after[("linli_notifications", 'channel="sms",status="delivered"')] == 1
    assert after[("linli_case_time_to_accept_seconds_count", "")] == (
        before[("linli_case_time_to_accept_seconds_count", "")] + 1)
    assert after[("linli_case_time_to_accept_seconds_sum", "")] == pytest.approx(
        before[("linli_case_time_to_accept_seconds_sum", "")] + 50 * 60)
    assert after[("linli_case_time_to_accept_seconds_bucket", 'le="3600"')] == (
        before[("linli_case_time_to_accept_seconds_bucket", 'le="3600"')] + 1)
    # A new process (nothing cached anywhere) answers the same.
    fresh = create_app(base_config(SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
                                   SQLALCHEMY_ENGINE_OPTIONS=app.config[
                                       "SQLALCHEMY_ENGINE_OPTIONS"]))
    assert scrape(fresh) == scrape(app)
    with fresh.app_context():
        db.engine.dispose()


@pytest.mark.postgres
def test_a_corrected_acceptance_time_replaces_its_observation(app: Flask) -> None:
    with app.app_context():
        two_grid_community()
        accepted = march()["J"].id
    before = scrape(app)
    with app.app_context():
        case = db.session.get_one(Case, accepted)
        was = (case.accepted_at - case.reported_at).total_seconds()
        case.accepted_at = case.reported_at + timedelta(seconds=was + 100)
        db.session.commit()
    after = scrape(app)
    assert after[("linli_case_time_to_accept_seconds_count", "")] == (
        before[("linli_case_time_to_accept_seconds_count", "")])
    assert after[("linli_case_time_to_accept_seconds_sum", "")] == pytest.approx(
        before[("linli_case_time_to_accept_seconds_sum", "")] + 100)


@pytest.mark.redis
def test_healthz_reports_the_freshest_worker_heartbeat(sqlite_template: Path,
                                                        redis_url: str) -> None:
    from redis import Redis
    from rq import Queue, Worker

    from dispatch import jobs

    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=f"sqlite:///{sqlite_template}",
                                 REDIS_URL=redis_url))
    connection = Redis.from_url(redis_url)
    worker = Worker([Queue(jobs.QUEUE_NAME, connection=connection)], connection=connection)
    worker.register_birth()
    try:
        checks = app.test_client().get("/healthz").get_json()["checks"]
        assert checks["jobs"]["ok"] is True and checks["jobs"]["workers"] == 1
        assert checks["jobs"]["heartbeat_age_s"] < 5
        connection.hset(worker.key, "last_heartbeat", "2026-01-01T00:00:00.000000Z")
        body = app.test_client().get("/healthz")
        assert body.status_code == 503
        assert body.get_json()["checks"]["jobs"]["ok"] is False  # hung: no beat for months
    finally:
        worker.register_death()
