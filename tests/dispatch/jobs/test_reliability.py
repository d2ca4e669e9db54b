"""Fault tests with real processes: forking `rq` workers on PostgreSQL and Redis, and the
embedded runner in its own process on SQLite.

The workers and sweepers are the documented commands (`flask --app app worker`, `… sweeper`)
started as subprocesses. Escalation policies are written onto the community in fractions of a
minute (see `factories.set_policy`) so a whole ladder climbs in seconds. A "provider" that takes
a message and then hangs (`slow_console_app`) lets a test kill a worker in the middle of a send.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import rq
import sqlalchemy as sa
from flask import Flask
from redis import Redis

from app import create_app
from dispatch import clock, jobs
from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.case.timeline import EventKind
from dispatch.channels.base import OutgoingMessage
from dispatch.channels.console import ConsoleSender
from dispatch.db import db
from dispatch.jobs import sweeper
from dispatch.models import Case, CaseEvent, Notification, NotificationStatus
from dispatch.outbox import delivery
from tests import factories
from tests.conftest import PG_URL
from tests.factories import csrf_token, member, place

ROOT = Path(__file__).resolve().parents[3]
FLASK = str(Path(sys.executable).with_name("flask"))
SECRET_KEY = "test-secret-key-not-for-production"
#: A second per rung, and the district referral's deadline a second too.
FAST = {"rung_minutes": 1 / 60, "referral_hours": 1 / 3600, "repeat_last": 1}

pytestmark = [pytest.mark.slow]


class SlowConsole(ConsoleSender):
    """A provider that takes each message at once, then keeps the line open for a minute."""

    def send(self, message: OutgoingMessage) -> Any:
        result = super().send(message)
        time.sleep(60)
        return result


def slow_console_app() -> Flask:
    """The app, with the slow provider: `flask --app "tests.dispatch.jobs.test_reliability:…"`."""
    app = create_app()
    app.extensions["linli.sender"] = SlowConsole()
    return app


class Processes:
    """Subprocesses with their output in files; everything they started is killed at the end."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "SECRET_KEY": SECRET_KEY,
                    "PUBLIC_BASE_URL": "http://linli.test", "SMS_BACKEND": "console",
                    "SWEEP_SECONDS": "1", **env}
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: str, app: str = "app") -> subprocess.Popen[bytes]:
        with open(self.tmp_path / f"{name}.log", "wb") as log:
            process = subprocess.Popen([FLASK, "--app", app, command], cwd=ROOT, env=self.env,
                                       stdout=log, stderr=subprocess.STDOUT)
        self.started[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str) -> None:
        """SIGKILL the process and everything it forked: a machine that lost power."""
        process = self.started[name]
        for pid in [*descendants(process.pid), process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for name, process in self.started.items():
            if process.poll() is None:
                self.kill(name)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (the worker's work horse and scheduler)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll `check` (inside the app context, on fresh data) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def notified(case_id: int) -> list[CaseEvent]:
    return list(db.session.scalars(sa.select(CaseEvent).where(
        CaseEvent.case_id == case_id, CaseEvent.kind == EventKind.NOTIFIED)
        .order_by(CaseEvent.id)))


def messages(case_id: int, purpose: str | None = None) -> list[Notification]:
    query = sa.select(Notification).where(Notification.case_id == case_id)
    if purpose:
        query = query.where(Notification.purpose == purpose)
    return list(db.session.scalars(query.order_by(Notification.id)))


def lateness(event: CaseEvent) -> float:
    """Seconds between when the step was due and when it fired."""
    return (event.at - datetime.fromisoformat(event.data["due"])).total_seconds()


def provider_received(log: str, notification_id: int) -> int:
    """How many times the console "provider" of a subprocess logged taking this message."""
    return len(re.findall(rf"console \w+ notification={notification_id} ", log))


def times_sent(app: Flask, logs: str, notification_id: int) -> int:
    """How many times any provider took the message: in the subprocesses or in this one."""
    here = [m for m in getattr(app.extensions.get("linli.sender"), "sent", [])
            if m.notification_id == notification_id]
    return provider_received(logs, notification_id) + len(here)


# ---------------------------------------------------------------------------------------------
# PostgreSQL, Redis and forking RQ workers.


@pytest.fixture
def processes(pg_schema: str, redis_url: str, tmp_path: Path) -> Iterator[Processes]:
    database = f"{PG_URL}?options=-csearch_path%3D{pg_schema}"
    started = Processes(tmp_path, {"DATABASE_URL": database, "REDIS_URL": redis_url})
    yield started
    started.stop_all()


def start_worker(processes: Processes, rq_app: Flask, name: str = "worker",
                 app: str = "app") -> None:
    """A forking worker with the scheduler, started and ready to take jobs."""
    redis = jobs.runner(rq_app).redis
    before = {w.name for w in rq.Worker.all(connection=redis)}
    processes.start(name, "worker", app)
    wait_for(f"{name} to register", lambda: {w.name for w in rq.Worker.all(
        connection=redis)} - before, timeout=20)
    wait_for("the RQ scheduler", lambda: redis.exists(f"rq:scheduler-lock:{jobs.QUEUE_NAME}"))


def open_case(category: str = "elevator", code: str = "TS-B1-U1-E1") -> int:
    return file_report(place(code), category, text="电梯困人").case.id


@pytest.mark.postgres
@pytest.mark.redis
def test_a_case_climbs_every_rung_on_time_with_real_workers(rq_app: Flask,
                                                            processes: Processes) -> None:
    factories.set_policy(factories.import_community(factories.dispatch_community()),
                         "urgent", **FAST)
    start_worker(processes, rq_app)
    case_id = open_case()
    wait_for("the case to be stuck", lambda: db.session.get(Case, case_id).stuck_at, 60)
    steps = notified(case_id)
    assert [e.data["rung"] for e in steps] == [1, 2, 3, 4, 4]
    late = [lateness(e) for e in steps]
    assert all(0 <= s < 2.5 for s in late), late  # RQ's scheduler works in whole seconds
    alerts = messages(case_id, "alert")
    assert [(n.rung, n.member.code) for n in alerts] == [
        (1, "L1"), (1, "E1"), (2, "S1"), (3, "D1"), (4, "X1"), (4, "X1")]
    wait_for("every message to be sent", lambda: {n.status for n in messages(case_id)} == {
        NotificationStatus.SENT})
    assert [n.member.code for n in messages(case_id, "stuck")] == ["D1"]


@pytest.mark.postgres
@pytest.mark.redis
def test_accepting_at_the_grid_rung_stops_the_climb_and_tells_the_others(
        rq_app: Flask, processes: Processes) -> None:
    factories.set_policy(factories.import_community(factories.dispatch_community()),
                         "urgent", **{**FAST, "rung_minutes": 2 / 60})
    start_worker(processes, rq_app)
    case_id = open_case()
    wait_for("the grid rung", lambda: len(notified(case_id)) == 2)
    body = messages(case_id, "alert")[-1].body
    path = re.search(r"http://linli\.test(/m/accept/\S+)", body)[1]
    client = rq_app.test_client()
    assert client.post(path, data={"csrf_token": csrf_token(client, path)}).status_code == 303
    wait_for("the others to be told", lambda: [n.status for n in messages(case_id, "taken")] == [
        NotificationStatus.SENT] * 2)
    taken = messages(case_id, "taken")
    assert sorted(n.member.code for n in taken) == ["E1", "L1"]
    time.sleep(4)  # past the community rung's due time
    db.session.rollback()
    case = db.session.get(Case, case_id)
    assert (case.status, case.accepted_by.code, case.accepted_rung) == ("accepted", "S1", 2)
    assert [e.data["rung"] for e in notified(case_id)] == [1, 2]


@pytest.mark.postgres
@pytest.mark.redis
def test_a_duplicated_early_or_late_step_job_does_nothing(rq_app: Flask,
                                                          processes: Processes) -> None:
    factories.import_community(factories.dispatch_community())
    start_worker(processes, rq_app)
    case_id = open_case()
    wait_for("the first step", lambda: {n.status for n in messages(case_id)} == {
        NotificationStatus.SENT})
    case = db.session.get(Case, case_id)
    first, current = 0, case.token
    queue = rq.Queue(jobs.QUEUE_NAME, connection=jobs.runner(rq_app).redis)
    doomed = [queue.enqueue(jobs.run, jobs.Job.STEP, case_id, first),  # the first step's job again
              queue.enqueue(jobs.run, jobs.Job.STEP, case_id, first),
              queue.enqueue(jobs.run, jobs.Job.STEP, case_id, current)]  # the next step, too early
    lifecycle.accept(case_id, member("L1").id)
    doomed.append(queue.enqueue(jobs.run, jobs.Job.STEP, case_id, current))  # late: after accepting
    wait_for("the jobs to run", lambda: all(
        j.get_status() == rq.job.JobStatus.FINISHED for j in doomed))
    assert [j.return_value() for j in doomed] == [False, False, False, False]
    assert [e.data["rung"] for e in notified(case_id)] == [1]
    assert len(messages(case_id, "alert")) == 2


@pytest.mark.postgres
@pytest.mark.redis
def test_redis_flushed_mid_escalation_the_sweeper_finishes_with_nothing_lost(
        rq_app: Flask, processes: Processes) -> None:
    factories.set_policy(factories.import_community(factories.dispatch_community()),
                         "urgent", **FAST)
    start_worker(processes, rq_app)
    processes.start("sweeper", "sweeper")
    case_id = open_case()
    wait_for("the building rung", lambda: notified(case_id))
    redis: Redis = jobs.runner(rq_app).redis
    wait_for("the grid rung's job to be scheduled", lambda: redis.zcard(
        f"rq:scheduled:{jobs.STEPS_QUEUE_NAME}"))
    lock = redis.get("linli:test-session")
    redis.flushdb()  # the scheduled step for the grid rung is gone
    redis.set("linli:test-session", lock, ex=3600)
    wait_for("the case to be stuck", lambda: db.session.get(Case, case_id).stuck_at, 60)
    assert [e.data["rung"] for e in notified(case_id)] == [1, 2, 3, 4, 4]
    wait_for("every message to be sent", lambda: {n.status for n in messages(case_id)} == {
        NotificationStatus.SENT})
    keys = [(n.member_id, n.rung, n.purpose) for n in messages(case_id)]
    assert len(keys) == 7 and len(set(keys)) == 6  # X1 twice at the district: asked, repeated
    # Redis forgot the workers with the jobs: until the worker registers again with its next
    # beat the sweeper takes the step itself, after that it queues it for the worker.
    log = processes.log("sweeper")
    assert "was not taken by a job; taking it now" in log or "no job was left to run it" in log


@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_killed_mid_send_the_message_is_sent_at_most_twice_and_the_timeline_says_so(
        rq_app: Flask, processes: Processes) -> None:
    factories.import_community(factories.dispatch_community())
    start_worker(processes, rq_app, "doomed", app=f"{__name__}:slow_console_app()")
    case_id = open_case()
    hung = wait_for("a send to hang", lambda: next(
        (n for n in messages(case_id) if n.status == NotificationStatus.SENDING
         and provider_received(processes.log("doomed"), n.id)), None))
    processes.kill("doomed")
    # The step job was sending its messages itself: the one it had not reached is still
    # pending in the database, for the sweeper, like a message whose job was lost. Two
    # minutes on, the sweeper also finds the send that died (this sweep runs two minutes ahead).
    assert [n.status for n in messages(case_id) if n.id != hung.id] == [
        NotificationStatus.PENDING]
    after_timeout = clock.now() + delivery.SENDING_TIMEOUT + timedelta(seconds=1)
    sweeper.sweep(after_timeout)
    # The sweeper queues both for the workers; the killed one was the only one: this process
    # stands in for its replacement.
    jobs.work(rq_app, burst=True, worker_class="simple")
    wait_for("every message to be sent", lambda: {n.status for n in messages(case_id)} == {
        NotificationStatus.SENT})
    logs = processes.log("doomed")
    _assert_sent_at_most_twice(rq_app, hung.id, logs)
    assert [times_sent(rq_app, logs, n.id) for n in messages(case_id) if n.id != hung.id] == [1]


def _assert_sent_at_most_twice(app: Flask, notification_id: int, worker_logs: str) -> None:
    sweeper_sent = [m for m in app.extensions["linli.sender"].sent
                    if m.notification_id == notification_id]
    assert provider_received(worker_logs, notification_id) == 1  # the provider took it…
    assert len(sweeper_sent) == 1  # …and took it again after the crash: one duplicate
    row = db.session.get(Notification, notification_id)
    assert row.status == NotificationStatus.SENT
    assert row.provider_id == sweeper_sent[0].provider_id and row.attempts == 2
    [resent] = [e for e in row.case.events if e.kind == EventKind.RESENT]
    assert resent.data["notification"] == notification_id
    assert "对方可能收到两条" in resent.message


# ---------------------------------------------------------------------------------------------
# The same crash on the embedded runner: one process, no Redis; on SQLite (the embedded
# default) and on PostgreSQL.


def database_url(app: Flask) -> str:
    """`app`'s database as a DATABASE_URL for another process, its test schema included."""
    url = str(app.config["SQLALCHEMY_DATABASE_URI"])
    options = app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}).get("connect_args", {}).get(
        "options")
    return f"{url}?options={quote(options)}" if options else url


def test_the_embedded_runner_killed_mid_send_recovers_the_same_way(
        any_app: Flask, tmp_path: Path) -> None:
    app = any_app
    processes = Processes(tmp_path, {"DATABASE_URL": database_url(app), "SWEEP_SECONDS": "0.5"})
    processes.env.pop("REDIS_URL", None)
    try:
        with app.app_context():
            factories.import_community(factories.dispatch_community())
            # The report's step job waits in this process's runner and is never run here;
            # the other process's sweeper takes the step, then hangs in the first send.
            case_id = open_case()
            processes.start("embedded", "sweeper", f"{__name__}:slow_console_app()")
            hung = wait_for("a send to hang", lambda: next(
                (n for n in messages(case_id) if n.status == NotificationStatus.SENDING
                 and provider_received(processes.log("embedded"), n.id)), None))
            processes.kill("embedded")
            sweeper.sweep(clock.now() + delivery.SENDING_TIMEOUT + timedelta(seconds=1))
            db.session.rollback()
            assert {n.status for n in messages(case_id)} == {NotificationStatus.SENT}
            logs = processes.log("embedded")
            _assert_sent_at_most_twice(app, hung.id, logs)
            assert [times_sent(app, logs, n.id) for n in messages(case_id)
                    if n.id != hung.id] == [1]
            assert [e.data["rung"] for e in notified(case_id)] == [1]
    finally:
        processes.stop_all()
