"""Jobs: queued only after commit, never early on RQ, and safe in RQ's forked work horses."""

from __future__ import annotations

import math
import time
from datetime import timedelta

import pytest
import rq
import sqlalchemy as sa
from flask import Flask, current_app
from redis import Redis

from dispatch import clock, jobs
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.jobs import sweeper
from dispatch.models import Case, CaseEvent, Notification, NotificationStatus
from tests import factories
from tests.factories import place


def test_a_job_queued_in_a_transaction_runs_only_if_it_commits(app: Flask) -> None:
    runner = jobs.runner(app)
    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))
        jobs.enqueue_after_commit(jobs.Job.SWEEP)
        assert runner.pending() == 0
        db.session.rollback()
        db.session.commit()
        assert runner.pending() == 0  # dropped with the rollback
        db.session.execute(sa.text("SELECT 1"))
        jobs.enqueue_after_commit(jobs.Job.SWEEP)
        assert runner.pending() == 0
        db.session.commit()
        assert runner.pending() == 1


def test_a_job_decided_before_a_savepoint_waits_for_the_transaction_not_the_savepoint(
        app: Flask) -> None:
    """SQLAlchemy reports a savepoint's release as a commit: queued then, a job would reach a
    worker before its rows, or after they were rolled back."""
    runner = jobs.runner(app)
    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))
        jobs.enqueue_after_commit(jobs.Job.SWEEP)
        with db.session.begin_nested():
            db.session.execute(sa.text("SELECT 1"))
        assert runner.pending() == 0
        db.session.rollback()
        db.session.commit()
        assert runner.pending() == 0


def test_the_embedded_runner_takes_a_new_cases_step_and_sends_in_the_background(
        app: Flask) -> None:
    runner = jobs.runner(app)
    with app.app_context():
        factories.import_community(factories.dispatch_community())
        case_id = file_report(place("TS-B1-U1-E1"), "elevator").case.id
    runner.start()
    try:
        deadline = time.monotonic() + 10
        with app.app_context():
            while time.monotonic() < deadline:
                sent = db.session.scalars(sa.select(Notification.status)).all()
                if sent and set(sent) == {NotificationStatus.SENT}:
                    break
                db.session.rollback()
                time.sleep(0.05)
            assert len(sent) == 2 and set(sent) == {NotificationStatus.SENT}
            assert db.session.scalar(sa.select(CaseEvent.kind).where(
                CaseEvent.case_id == case_id).order_by(CaseEvent.id.desc())) == "notified"
    finally:
        runner.stop()
    assert runner.errors == 0


@pytest.mark.redis
@pytest.mark.postgres
def test_a_scheduled_job_is_never_moved_before_its_time_and_queued_once(rq_app: Flask) -> None:
    runner = jobs.runner(rq_app)
    at = clock.now() + timedelta(seconds=30, milliseconds=300)
    with rq_app.app_context():
        for _ in range(2):
            jobs.enqueue(jobs.Job.SWEEP, at=at, job_id="sweep-once")
    scheduled = runner.redis.zrange(f"rq:scheduled:{jobs.QUEUE_NAME}", 0, -1, withscores=True)
    # RQ's scheduler keeps whole seconds: the score is rounded up, never down.
    assert scheduled == [(b"sweep-once", float(math.ceil(at.timestamp())))]


def record_backend_pid(key: str) -> None:
    """A job for the test below: which PostgreSQL backend does the work horse talk to?"""
    pid = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
    Redis.from_url(current_app.config["REDIS_URL"]).rpush(key, pid)


@pytest.mark.redis
@pytest.mark.postgres
def test_a_forked_work_horse_never_talks_over_the_parents_database_connection(
        rq_app: Flask) -> None:
    with rq_app.app_context():
        parent_pid = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
        db.session.commit()  # the connection goes back to the pool, where the horse inherits it
        jobs.register({"test.record_backend_pid": record_backend_pid})
        for n in range(2):
            jobs.enqueue("test.record_backend_pid", "horse-pids", job_id=f"pid-{n}")
    jobs.work(rq_app, burst=True)
    redis = jobs.runner(rq_app).redis
    horse_pids = [int(p) for p in redis.lrange("horse-pids", 0, -1)]
    assert len(horse_pids) == 2 and parent_pid not in horse_pids
    with rq_app.app_context():  # and the parent's pooled connection still works
        assert db.session.scalar(sa.text("SELECT pg_backend_pid()")) == parent_pid


def nothing() -> None:
    """A job for the test below: as short as a job can be."""


@pytest.mark.redis
@pytest.mark.postgres
def test_a_worker_busy_with_short_jobs_beats_twice_a_second_not_three_times_a_job(
        rq_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs.register({"test.nothing": nothing})
    for n in range(60):
        jobs.enqueue("test.nothing", job_id=f"nothing-{n}")
    beats: list[float] = []
    beat = rq.worker.BaseWorker.heartbeat

    def counted(worker: rq.worker.BaseWorker, timeout: int | None = None,
                pipeline: object = None) -> None:
        if pipeline is None:  # a beat with round trips of its own
            beats.append(time.monotonic())
        beat(worker, timeout, pipeline)  # type: ignore[arg-type]

    monkeypatch.setattr(rq.worker.BaseWorker, "heartbeat", counted)
    started = time.monotonic()
    jobs.work(rq_app, burst=True, worker_class="simple")
    took = time.monotonic() - started
    assert jobs.runner(rq_app).queue.count == 0  # all 60 ran
    # RQ's own rhythm is three beats a job (180 here); a beat at most every half second
    # (and the few of starting and stopping) is enough to be seen alive.
    assert len(beats) <= took / jobs.BEAT_AT_MOST_EVERY + 4, (len(beats), took)


# ---------------------------------------------------------------------------------------------
# Follow-ups: what a job queues for right now runs in the same worker, right after it.


def rows_of(case_id: int) -> list[Notification]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Notification).where(
        Notification.case_id == case_id).order_by(Notification.id)))


@pytest.mark.redis
@pytest.mark.postgres
def test_a_step_job_sends_its_messages_itself_and_a_send_job_arriving_too_sends_nothing(
        rq_app: Flask) -> None:
    factories.import_community(factories.dispatch_community())
    case_id = file_report(place("TS-B1-U1-E1"), "elevator").case.id
    runner = jobs.runner(rq_app)
    queue = runner.queue
    assert (runner.steps.count, queue.count) == (1, 0)  # the step job; no message decided yet
    jobs.work(rq_app, burst=True, worker_class="simple")
    rows = rows_of(case_id)
    assert len(rows) == 2 and {r.status for r in rows} == {NotificationStatus.SENT}
    assert queue.count == 0  # no send job of their own was queued
    provider = rq_app.extensions["linli.sender"]
    assert sorted(m.notification_id for m in provider.sent) == [r.id for r in rows]
    # The send jobs of the old fast path, or a sweeper, arriving anyway: nothing goes out twice.
    for row in rows:
        queue.enqueue(jobs.run, jobs.Job.SEND, row.id)
    jobs.work(rq_app, burst=True, worker_class="simple")
    assert len(provider.sent) == 2
    assert all(r.attempts == 1 for r in rows_of(case_id))


@pytest.mark.redis
@pytest.mark.postgres
def test_messages_a_step_job_has_no_time_left_for_go_to_the_queue_as_jobs_of_their_own(
        rq_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    factories.import_community(factories.dispatch_community())
    case = file_report(place("TS-B1-U1-E1"), "elevator").case
    case_id, token = case.id, case.token
    queue = rq.Queue(jobs.QUEUE_NAME, connection=jobs.runner(rq_app).redis)
    queue.empty()
    monkeypatch.setattr(jobs, "FOLLOW_UP_SECONDS", 0.0)
    assert jobs.run(jobs.Job.STEP, case_id, token) is True
    rows = rows_of(case_id)
    assert {r.status for r in rows} == {NotificationStatus.PENDING}
    assert sorted(queue.job_ids) == sorted(f"send-{r.id}-0" for r in rows)
    jobs.work(rq_app, burst=True, worker_class="simple")
    assert {r.status for r in rows_of(case_id)} == {NotificationStatus.SENT}


@pytest.mark.redis
@pytest.mark.postgres
def test_while_another_step_waits_a_step_job_sends_its_first_message_and_queues_the_rest(
        rq_app: Flask) -> None:
    factories.import_community(factories.dispatch_community())
    runner = jobs.runner(rq_app)
    first = file_report(place("TS-B1-U1-E1"), "elevator").case
    first_id, token = first.id, first.token
    runner.steps.empty()
    second_id = file_report(place("TS-B2-U1"), "noise").case.id
    assert runner.steps.job_ids == [f"step-{second_id}-0"]  # a new case waits for a worker
    assert jobs.run(jobs.Job.STEP, first_id, token) is True
    sent, queued = rows_of(first_id)
    assert sent.status == NotificationStatus.SENT  # the first word about the case went out
    assert queued.status == NotificationStatus.PENDING
    assert runner.queue.job_ids == [f"send-{queued.id}-0"]  # behind the waiting step
    jobs.work(rq_app, burst=True, worker_class="simple")
    assert {r.status for r in rows_of(first_id) + rows_of(second_id)} == {
        NotificationStatus.SENT}


FOLLOWED: list[str] = []


def queue_follow_ups(*tags: str) -> None:
    """A job for the test below: one follow-up per tag, for right now, after its commit."""
    db.session.execute(sa.text("SELECT 1"))
    for tag in tags:
        jobs.enqueue_after_commit("test.follow_up", tag)
    db.session.commit()


def follow_up(tag: str) -> None:
    if tag == "fails":
        raise RuntimeError("a follow-up that fails")
    FOLLOWED.append(tag)


def test_follow_ups_run_in_order_and_after_one_fails_the_rest_go_to_the_runner(
        app: Flask) -> None:
    FOLLOWED.clear()
    jobs.register({"test.queue_follow_ups": queue_follow_ups, "test.follow_up": follow_up})
    jobs.run("test.queue_follow_ups", "first", "second", "fails", "fourth")
    assert FOLLOWED == ["first", "second"]
    runner = jobs.runner(app)
    assert runner.pending() == 1  # "fourth", queued as usual
    runner.drain()
    assert FOLLOWED == ["first", "second", "fourth"]


@pytest.mark.redis
@pytest.mark.postgres
def test_while_steps_wait_the_rest_of_a_jobs_follow_ups_go_to_redis_in_one_round_trip(
        rq_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a storm every step leaves most of its party group's messages for later: queued one
    by one they cost two round trips each, and asked whether steps wait before each."""
    FOLLOWED.clear()
    jobs.register({"test.queue_follow_ups": queue_follow_ups, "test.follow_up": follow_up})
    runner = jobs.runner(rq_app)
    runner.steps.enqueue(nothing, job_id="a-step-waiting")
    runner.steps_waiting()  # the connection is open: what follows is the job's own trips
    trips: list[object] = []
    connection = runner.redis.connection_pool.connection_class
    send = connection.send_packed_command

    def counted(self: object, command: object, *args: object, **kwargs: object) -> None:
        trips.append(command)
        send(self, command, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(connection, "send_packed_command", counted)
    jobs.run("test.queue_follow_ups", "first", "second", "third", "fourth")
    assert FOLLOWED == ["first"]  # the first runs here; the others wait behind the step
    assert len(trips) == 2  # were the steps waiting; the other three queued together
    assert [job.args for job in runner.queue.jobs] == [
        ("test.follow_up", tag) for tag in ("second", "third", "fourth")]


# ---------------------------------------------------------------------------------------------
# A step job takes the steps waiting behind it.


def first_notified(case_id: int) -> bool:
    db.session.expire_all()
    return db.session.get(Case, case_id).first_notified_at is not None


@pytest.mark.redis
@pytest.mark.postgres
def test_a_step_job_takes_the_steps_waiting_behind_it_without_a_job_each(
        rq_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """A storm's steps wait in line; the worker that has one goes on with the next ones itself,
    each its own transaction with its first message sent, instead of paying RQ's ~70 Redis
    commands a job for each."""
    factories.import_community(factories.dispatch_community())
    runner = jobs.runner(rq_app)
    cases = [file_report(place(code), "noise").case for code in ("TS-B1", "TS-B1-U1", "TS-B2")]
    ids = [(case.id, case.token) for case in cases]
    assert runner.steps.job_ids == [jobs.step_job_id(*step) for step in ids]
    assert runner.steps.pop_job_id() == jobs.step_job_id(*ids[0])  # what RQ does first
    assert jobs.run(jobs.Job.STEP, *ids[0]) is True
    assert all(first_notified(case_id) for case_id, _ in ids)
    assert runner.steps.job_ids == []
    assert not any(rq.job.Job.exists(jobs.step_job_id(*step), connection=runner.redis)
                   for step in ids[1:])  # taken: the sweeper must not think them waiting
    assert "WARNING" not in caplog.text  # an empty queue is the end, not a problem


@pytest.mark.redis
@pytest.mark.postgres
def test_a_job_in_the_steps_queue_that_is_not_a_step_is_left_to_the_workers(
        rq_app: Flask) -> None:
    factories.import_community(factories.dispatch_community())
    runner = jobs.runner(rq_app)
    case = file_report(place("TS-B1"), "noise").case
    runner.steps.empty()
    runner.steps.enqueue(nothing, job_id="not-a-step")
    waiting = file_report(place("TS-B2"), "noise").case.id
    assert jobs.run(jobs.Job.STEP, case.id, case.token) is True
    assert runner.steps.job_ids == ["not-a-step", jobs.step_job_id(waiting, 0)]
    assert not first_notified(waiting)


@pytest.mark.redis
@pytest.mark.postgres
def test_a_step_taken_off_the_queue_by_a_worker_that_died_is_taken_by_the_sweeper(
        rq_app: Flask) -> None:
    factories.import_community(factories.dispatch_community())
    runner = jobs.runner(rq_app)
    case_id = file_report(place("TS-B1"), "noise").case.id
    taken = runner.take_waiting(sends=True)
    assert taken == (jobs.Job.STEP, (case_id, 0))  # … and the worker dies before the step
    assert runner.steps.job_ids == [] and runner.take_waiting(sends=True) is None
    sweeper.sweep(clock.now() + sweeper.GRACE + timedelta(seconds=1))
    assert first_notified(case_id)  # no worker listens: the sweeper took it itself


@pytest.mark.redis
@pytest.mark.postgres
def test_a_send_job_takes_the_steps_then_the_messages_waiting_behind_it(
        rq_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    factories.import_community(factories.dispatch_community())
    runner = jobs.runner(rq_app)
    first = file_report(place("TS-B1-U1-E1"), "elevator").case
    runner.steps.empty()
    monkeypatch.setattr(jobs, "FOLLOW_UP_SECONDS", 0.0)
    assert jobs.run(jobs.Job.STEP, first.id, first.token) is True  # its messages all queued
    monkeypatch.undo()
    queued = [row.id for row in rows_of(first.id)]
    assert runner.queue.job_ids == [jobs.send_job_id(row, 0) for row in queued]
    waiting = file_report(place("TS-B2"), "noise").case.id  # a step comes in meanwhile
    assert runner.queue.pop_job_id() == jobs.send_job_id(queued[0], 0)  # what RQ does
    jobs.run(jobs.Job.SEND, queued[0])
    assert (runner.steps.job_ids, runner.queue.job_ids) == ([], [])
    provider = rq_app.extensions["linli.sender"]
    sent = [m.notification_id for m in provider.sent]
    others = [row.id for row in rows_of(waiting)]
    assert sent == [queued[0], *others, *queued[1:]]  # the step before the other messages


@pytest.mark.redis
@pytest.mark.postgres
def test_a_step_taken_off_the_queue_is_run_even_when_its_record_cannot_be_deleted(
        rq_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis going away between taking a job and deleting its record must not drop the job:
    a record left "queued" would keep the sweeper from queueing its work again."""
    factories.import_community(factories.dispatch_community())
    runner = jobs.runner(rq_app)
    case_id = file_report(place("TS-B1"), "noise").case.id

    def away(*keys: object) -> None:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(runner.redis, "delete", away)
    assert runner.take_waiting(sends=False) == (jobs.Job.STEP, (case_id, 0))


def test_every_id_a_step_or_send_is_queued_under_says_what_it_runs() -> None:
    """A worker takes waiting jobs by their ids (`take_waiting`): an id format changed in one
    place and not the other would leave those jobs to RQ's slower path without a word."""
    at = clock.now()
    steps = [jobs.step_job_id(12, 3), jobs.step_job_id(12, 3, at_once=True),
             sweeper.job_id_for("step", 12, 3, at=at)]
    sends = [jobs.send_job_id(45, 0), jobs.send_job_id(45, 2),
             jobs.held_job_id(45, at + timedelta(minutes=1)), sweeper.job_id_for("send", 45, at=at)]
    assert [jobs.STEP_JOB_ID.fullmatch(i).groups() for i in steps] == [("12", "3")] * 3
    assert [jobs.SEND_JOB_ID.fullmatch(i).groups() for i in sends] == [("45",)] * 4
    assert not any(jobs.STEP_JOB_ID.fullmatch(i) for i in sends)
    assert not any(jobs.SEND_JOB_ID.fullmatch(i) for i in steps)
