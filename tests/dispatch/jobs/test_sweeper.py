"""The sweeper re-drives from the database whatever a lost job missed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import rq
import sqlalchemy as sa
from flask import Flask
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dispatch import clock, jobs
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.jobs import sweeper
from dispatch.models import Case, CaseEvent, Notification, NotificationStatus
from tests import factories
from tests.factories import place
from tests.ops.deployment import free_port

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
        taken = MONDAY + sweeper.GRACE
        assert sweeper.sweep(taken) == 1  # the step; its messages are the fast path's again
        assert notified(case.id) == 1
        assert sweeper.sweep(taken + SEC) == 0
        # Their send jobs are lost too: the messages are re-driven a grace after the step.
        assert sweeper.sweep(taken + sweeper.GRACE) == 2
        statuses = db.session.scalars(sa.select(Notification.status)).all()
        assert statuses == [NotificationStatus.SENT, NotificationStatus.SENT]
        assert sweeper.sweep(taken + 2 * sweeper.GRACE) == 0  # nothing left to do


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


@pytest.fixture
def listening(rq_app: Flask) -> Iterator[rq.Worker]:
    """The dispatch community, and an RQ worker registered for the queues (a worker is there
    to take what the sweeper queues); the test runs its jobs itself."""
    factories.import_community(factories.dispatch_community())
    runner = jobs.runner(rq_app)
    worker = rq.Worker(runner.queues, connection=runner.redis)
    worker.register_birth()
    # Alive means beating (`jobs.WORKER_GONE_AFTER`): beat as a real idle worker does.
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(jobs.HEARTBEAT_SECONDS):
            worker.heartbeat()

    beating = threading.Thread(target=beat, daemon=True)
    beating.start()
    yield worker
    stop.set()
    beating.join()
    worker.register_death()


@pytest.mark.redis
@pytest.mark.postgres
def test_on_rq_the_sweeper_queues_lost_work_for_the_workers_once_instead_of_doing_it(
        rq_app: Flask, listening: rq.Worker) -> None:
    runner = jobs.runner(rq_app)
    case_id = file_report(place("TS-B1-U1-E1"), "elevator").case.id
    later = clock.now() + sweeper.GRACE + SEC
    # Its step job is still waiting (workers are busy): late, not lost, so not queued twice.
    sweeper.sweep(later)
    assert runner.steps.job_ids == [f"step-{case_id}-0"]
    runner.steps.empty()  # now the step job is lost
    job_id = sweeper.job_id_for("step", case_id, 0, at=later)
    assert sweeper.sweep(later) == 1
    assert notified(case_id) == 0  # not taken here: queued, first in line for the workers
    assert runner.steps.job_ids == [job_id]
    assert sweeper.sweep(later) == 1
    assert runner.steps.job_ids == [job_id]  # queued once, seen twice
    # A sweeper job that failed (say the database was down) is replaced by the next sweep.
    failed = runner.steps.fetch_job(job_id)
    runner.steps.remove(failed)
    failed.set_status(rq.job.JobStatus.FAILED)
    assert sweeper.sweep(later) == 1
    assert runner.steps.job_ids == [job_id]
    # A minute on, an item still waiting gets one more job (which will find nothing to do).
    a_minute_on = later + timedelta(minutes=1)
    assert sweeper.sweep(a_minute_on) == 1
    assert runner.steps.job_ids == [job_id, sweeper.job_id_for("step", case_id, 0, at=a_minute_on)]
    jobs.work(rq_app, burst=True, worker_class="simple")
    assert notified(case_id) == 1
    assert set(db.session.scalars(sa.select(Notification.status))) == {NotificationStatus.SENT}
    # With no worker registered (Redis restarted and forgot them), the sweeper works itself.
    listening.register_death()
    assert not jobs.workers_listening()
    second = file_report(place("TS-B2-U1"), "safety").case.id
    runner.steps.empty()
    assert sweeper.sweep(clock.now() + sweeper.GRACE + SEC) >= 1
    assert notified(second) == 1 and not runner.steps.job_ids


def test_a_sweeper_job_is_named_whole_in_the_logs(
        app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """Row 523's job ended in a run of digits that reads as a Taizhou number (0523): the
    log masking hid the id, and the line looked as if a phone number had been in it."""
    at = datetime(2026, 12, 7, 7, 16, 47, tzinfo=ZoneInfo("UTC"))
    job_id = sweeper.job_id_for("send", 523, at=at)
    logging.getLogger("dispatch.jobs").warning("send(523,) was overdue: queued %s", job_id)
    assert f"queued {job_id}" in caplog.text and "[电话]" not in caplog.text
    assert jobs.SEND_JOB_ID.fullmatch(job_id).groups() == ("523",)


@pytest.mark.redis
@pytest.mark.postgres
def test_an_overdue_step_whose_job_is_still_only_scheduled_is_queued_anyway(
        rq_app: Flask, listening: rq.Worker) -> None:
    runner = jobs.runner(rq_app)
    case_id = file_report(place("TS-B1-U1-E1"), "elevator").case.id
    # The job sits in the scheduler's registry: the worker holding the scheduler lock died.
    job = runner.steps.fetch_job(f"step-{case_id}-0")
    runner.steps.remove(job)
    runner.steps.schedule_job(job, clock.now() - timedelta(seconds=10))
    later = clock.now() + sweeper.GRACE + SEC
    sweeper.sweep(later)
    assert runner.steps.job_ids == [sweeper.job_id_for("step", case_id, 0, at=later)]


@pytest.mark.redis
@pytest.mark.postgres
def test_when_redis_is_down_the_sweeper_does_the_work_itself(
        rq_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    factories.import_community(factories.dispatch_community())
    runner = jobs.runner(rq_app)
    case_id = file_report(place("TS-B1-U1-E1"), "elevator").case.id
    # Nothing listens there; no retries, so the test does not wait out redis-py's backoff.
    down = Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(runner, "redis", down)
    monkeypatch.setattr(runner, "steps", rq.Queue(jobs.STEPS_QUEUE_NAME, connection=down))
    monkeypatch.setattr(runner, "queue", rq.Queue(jobs.QUEUE_NAME, connection=down))
    # With no worker to wait for, the sweep sends the messages its own step wrote, at once.
    assert sweeper.sweep(clock.now() + sweeper.GRACE + SEC) == 3  # the step, its two messages
    assert notified(case_id) == 1
    assert len(rq_app.extensions["linli.sender"].sent) == 2


@pytest.mark.redis
@pytest.mark.postgres
def test_a_registered_worker_that_stopped_beating_is_gone_and_the_sweeper_works_at_once(
        rq_app: Flask) -> None:
    """A SIGKILLed worker stays registered for minutes; its silence says it is gone. The
    sweeper forgets it and takes the step itself, with no grace for a fast path that no
    longer exists."""
    factories.import_community(factories.dispatch_community())
    runner = jobs.runner(rq_app)
    dead = rq.Worker(runner.queues, connection=runner.redis)
    dead.register_birth()
    silent_since = clock.now() - jobs.WORKER_GONE_AFTER - SEC
    runner.redis.hset(dead.key, "last_heartbeat", rq.utils.utcformat(silent_since))
    case_id = file_report(place("TS-B1-U1-E1"), "elevator").case.id
    assert not jobs.workers_listening()
    assert rq.Worker.count(connection=runner.redis, queue=runner.steps) == 0
    assert sweeper.sweep() >= 1
    assert notified(case_id) == 1
    assert set(db.session.scalars(sa.select(Notification.status))) == {NotificationStatus.SENT}
