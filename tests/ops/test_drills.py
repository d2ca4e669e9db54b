"""Fault drills on a running deployment (`scripts/deploy-local`): Redis restarted under load,
a worker SIGKILLed mid-job, the provider failing for 30 s, PostgreSQL restarted under load.

Each drill files reports over HTTP at a steady rate while the fault happens, lets the ladders
(two seconds per rung) run to the top, then accounts for everything: every report a resident
was told was filed exists, `dispatch.jobs.reconcile` finds nothing lost or duplicated (the
documented at-least-once resend after a crash is the one allowed note), and every message the
database calls sent is at the provider exactly once. Redis and PostgreSQL are private servers
started for the drill (tests/ops/services.py), so the machine's shared ones are never touched.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from app import create_app
from dispatch import clock, jobs
from dispatch.db import db
from dispatch.jobs import reconcile
from dispatch.models import Case, Notification, NotificationStatus, Report
from dispatch.outbox import delivery
from qr import codes
from tests import factories
from tests.conftest import base_config
from tests.dispatch.jobs.test_reliability import FLASK as FLASK_BIN
from tests.fakes.twilio_server import ERRORS, FakeTwilio, Recorded
from tests.ops.deployment import Deployment, Resident, wait_until
from tests.ops.services import private_postgres, private_redis
from tests.ops.test_multiprocess import FAST_LADDER, many_units
from tests.ops.test_storm import twilio_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

STICKERS = 60
#: No pacing: the drills count messages, and every case here pages the same few people.
UNPACED = {"THROTTLE_GAP_SECONDS": 0, "THROTTLE_ALERTS": 1_000_000, "TWILIO_TIMEOUT": 1.0}
FINAL = {NotificationStatus.SENT, NotificationStatus.DELIVERED, NotificationStatus.CANCELLED}


class Trap:
    """The first SMS that `pick` names a sender for: Twilio takes it, then the answer hangs
    until `released`, so a drill can kill its sender in the middle of the send."""

    def __init__(self, pick: Callable[[Recorded], str | None]) -> None:
        self.pick = pick
        self.record: Recorded | None = None
        #: The SID Twilio gave the held message.
        self.sid: str | None = None
        self.sender: str | None = None
        self.holding = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()

    def take(self, record: Recorded) -> bool:
        """Whether `record` is the send to hold (the first one `pick` names a sender for)."""
        if record.method != "POST" or record.resource != "Messages":
            return False
        with self._lock:
            if self.record is not None:
                return False
            self.sender = self.pick(record)
            if self.sender is None:
                return False
            self.record = record
        return True


class DrillTwilio(FakeTwilio):
    """The fake Twilio, slowed down (`delay`) or failing every request until `outage_until`:
    alternately an HTTP 500 and a hang past the client's timeout (every other hang after
    Twilio took the message: the case that could send it twice); or holding one send (`trap`)."""

    delay = 0.0
    outage_until = 0.0
    failed = 0
    trap: Trap | None = None

    def handle(self, record: Recorded) -> tuple[int, dict[str, Any]]:
        if self.trap is not None and self.trap.take(record):
            self.requests.append(record)
            # Twilio has the message; its sender will never learn it
            self.trap.sid = self._create(record)["sid"]
            self.trap.holding.set()
            self.trap.released.wait(60)
            return 504, {"code": 20504, "message": "Gateway Timeout", "status": 504}
        if time.time() < self.outage_until:
            self.requests.append(record)
            self.failed += 1
            if self.failed % 2:
                status, message = ERRORS[20500]
                return status, {"code": 20500, "message": message, "status": status}
            if record.method == "POST" and self.failed % 4 == 0:
                self._create(record)
            time.sleep(1.5)
            return 504, {"code": 20504, "message": "Gateway Timeout", "status": 504}
        if self.delay:
            time.sleep(self.delay)
        return super().handle(record)


def answer(response: requests.Response) -> int | str:
    """What a resident got: the status, and a 503 only if it is the outage page that names
    the hotline (the community's, or 12345 in a process that never served the sticker)."""
    if response.status_code != 503:
        return response.status_code
    page = response.text
    hotline = "0752-1234567" in page or "12345" in page
    if hotline and "96333" in page and "Traceback" not in page and response.headers.get(
            "Retry-After"):
        return 503
    return "503 without the hotline"


class Load:
    """Residents filing reports on distinct stickers at `rate` per second, on a thread.

    Each resident opens the sticker page, then posts a report; `answers` counts what they got
    (a 303 means filed) and `timeline` says when each one started and finished (monotonic).
    """

    def __init__(self, base_url: str, stickers: list[str], rate: float) -> None:
        self.base_url, self.stickers, self.rate = base_url, stickers, rate
        self.answers: Counter[int | str] = Counter()
        self.timeline: list[tuple[float, float, int | str]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(120)

    def _run(self) -> None:
        for n, code in enumerate(self.stickers):
            started = time.monotonic()
            try:
                got = answer(Resident(self.base_url, code).report("noise", f"#{n}"))
            except requests.HTTPError as exc:  # the sticker page itself was not served
                got = answer(exc.response)
            except (requests.RequestException, ValueError) as exc:
                got = type(exc).__name__
            self.answers[got] += 1
            self.timeline.append((started, time.monotonic(), got))
            time.sleep(max(0.0, started + 1 / self.rate - time.monotonic()))

    @property
    def filed(self) -> int:
        return self.answers[303]


def prepare(count: int = STICKERS) -> list[str]:
    """The drill community: building 1 with `count` units, each with a sticker; fast ladder."""
    community = factories.import_community(
        factories.dispatch_community(places=many_units(count)))
    factories.set_policy(community, "normal", **FAST_LADDER)
    found = [codes.issue(factories.place(f"TS-B1-M{n}")).code for n in range(1, count + 1)]
    db.session.commit()
    return found


def count(query: sa.Select[tuple[int]]) -> int:
    db.session.rollback()
    return int(db.session.scalar(query) or 0)


def settled(cases: int) -> bool:
    """Every case at the top of its ladder, and every message sent (or cancelled)."""
    stuck = count(sa.select(sa.func.count(Case.id)).where(Case.stuck_at.is_not(None)))
    open_rows = count(sa.select(sa.func.count(Notification.id))
                      .where(Notification.status.not_in(FINAL)))
    return stuck == cases and open_rows == 0


def account_for(fake: FakeTwilio, load: Load) -> list[reconcile.Finding]:
    """Assert nothing was lost or duplicated; returns the reconciliation's notes."""
    db.session.rollback()
    assert count(sa.select(sa.func.count(Report.id))) == load.filed
    findings = reconcile.reconcile()
    assert reconcile.problems(findings) == [], "\n".join(map(str, findings))
    rows = list(db.session.scalars(sa.select(Notification)))
    assert {n.status for n in rows} <= FINAL
    recorded = {n.provider_id for n in rows if n.provider_id}
    at_provider = set(fake.messages)
    assert recorded <= at_provider, "a message the database calls sent never reached Twilio"
    twice = at_provider - recorded
    resent = [f for f in findings if f.kind == "resent"]
    assert len(twice) <= len(resent), f"{len(twice)} messages reached Twilio twice"
    return findings


@pytest.fixture
def fake() -> Iterator[DrillTwilio]:
    with DrillTwilio() as started:
        yield started


def drill_deployment(deploy: Callable[..., Deployment], fake: FakeTwilio, **env: str
                     ) -> Deployment:
    return deploy(config=UNPACED, **twilio_env(fake), **env)


def test_redis_restarted_under_load_loses_nothing(
        rq_app: Flask, deploy: Callable[..., Deployment], fake: DrillTwilio,
        tmp_path: Path) -> None:
    stickers = prepare()
    with private_redis(tmp_path) as redis:
        deployment = drill_deployment(deploy, fake, redis=redis.url)
        load = Load(deployment.url, stickers, rate=6).start()
        time.sleep(4)
        redis.stop()  # every queued and scheduled job is gone
        time.sleep(2)
        redis.start()
        load.join()
        wait_until("every ladder and message to finish", lambda: settled(load.filed), 90, 1)
        assert load.answers == {303: len(stickers)}, load.answers
        account_for(fake, load)
        # The sweeper re-drove what the restart lost: queued again, or done itself while
        # Redis was away.
        swept = deployment.log_text("sweeper-*.log")
        assert "no job was left to run it" in swept or "taking it now" in swept


def test_a_worker_killed_mid_send_loses_nothing_and_its_message_is_looked_up_not_resent(
        rq_app: Flask, deploy: Callable[..., Deployment], fake: DrillTwilio) -> None:
    stickers = prepare(40)
    fake.delay = 0.3  # a slow provider: sends overlap the load
    deployment = drill_deployment(deploy, fake)

    def a_workers(record: Recorded) -> str | None:
        name = deployment.holding_port(record.peer[1]) if record.peer else None
        return name if name and name.startswith("worker-") else None

    # The first SMS a worker sends is held open after Twilio took it: the worst moment to die.
    fake.trap = trap = Trap(a_workers)
    load = Load(deployment.url, stickers, rate=8).start()
    wait_until("a worker to be caught in a send", trap.holding.is_set, 30, 0.05)
    assert trap.sender is not None and trap.record is not None
    deployment.kill(trap.sender)
    killed, killed_at = clock.now(), time.monotonic()
    trap.released.set()
    deployment.relaunch(trap.sender, FLASK_BIN, "--app", deployment.env["LINLI_APP"], "worker")
    # Sends that were under way elsewhere finish; the killed worker's stays "sending".
    in_flight = sa.select(Notification).where(
        Notification.status == NotificationStatus.SENDING,
        Notification.bundled_into_id.is_(None), Notification.updated_at < killed)

    def only_the_killed_workers() -> list[Notification] | None:
        db.session.rollback()
        rows = list(db.session.scalars(in_flight))
        return rows if len(rows) == 1 else None

    [interrupted] = wait_until("only the killed worker's send to be left in flight",
                               only_the_killed_workers, 30, 0.5)
    assert interrupted.to_address == trap.record.form["To"]
    load.join()
    assert load.answers == {303: len(stickers)}, load.answers
    # Steps go on as usual: no ladder waits for the dead worker.
    stuck = sa.select(sa.func.count(Case.id)).where(Case.stuck_at.is_not(None))
    wait_until("every case to reach the top of its ladder", lambda: count(stuck) == load.filed,
               60, 1)
    # After SENDING_TIMEOUT the sweeper hands the interrupted send back; its retry asks Twilio
    # first, finds the message Twilio took, and adopts it instead of sending it again. Until
    # then pacing holds later messages to that phone behind it (docs/deploy.md).
    bound = delivery.SENDING_TIMEOUT.total_seconds() + 30
    wait_until("the sweeper to settle the interrupted message", lambda: settled(load.filed),
               bound - (time.monotonic() - killed_at), 1)
    recovered = time.monotonic() - killed_at
    assert recovered >= delivery.SENDING_TIMEOUT.total_seconds()
    notes = account_for(fake, load)
    assert [(note.kind, note.notification_id) for note in notes] == [
        ("resent", interrupted.id)], "\n".join(map(str, notes))
    db.session.refresh(interrupted)
    assert interrupted.attempts == 2 and interrupted.provider_id == trap.sid
    unknown = set(fake.messages) - set(db.session.scalars(sa.select(Notification.provider_id)))
    assert unknown == set(), "the interrupted message should be at Twilio once, adopted"
    print(f"\nworker killed mid-send: settled {recovered:.0f} s after the kill; "
          f"{len(fake.messages)} SMS at the provider, none twice")


def test_the_provider_failing_for_30_seconds_delays_but_loses_nothing(
        rq_app: Flask, deploy: Callable[..., Deployment], fake: DrillTwilio) -> None:
    stickers = prepare(30)
    deployment = drill_deployment(deploy, fake)
    fake.outage_until = time.time() + 30
    load = Load(deployment.url, stickers, rate=3).start()
    load.join()
    wait_until("every message to go out after the outage", lambda: settled(load.filed), 120, 1)
    assert fake.failed > 20
    account_for(fake, load)
    failures = count(sa.select(sa.func.count(Notification.id)).where(Notification.attempts > 1))
    print(f"\nprovider outage: {fake.failed} failed requests, {failures} messages retried, "
          f"{len(fake.messages)} SMS at the provider")


#: A web process answers again this soon after PostgreSQL is back (the pool's pre-ping
#: replaces the dead connections on their next checkout; allowance for a loaded machine).
RECOVERY_SECONDS = 2.0


def test_postgres_restarted_under_load_answers_503_with_the_hotline_and_loses_nothing(
        deploy: Callable[..., Deployment], fake: DrillTwilio, redis_url: str) -> None:
    with private_postgres() as postgres:
        app = create_app(base_config(SQLALCHEMY_DATABASE_URI=postgres.url, REDIS_URL=redis_url))
        jobs.set_worker_app(app)
        deployment = drill_deployment(deploy, fake, database_url=postgres.url, MIGRATE="1")
        try:
            with app.app_context():
                _postgres_drill(deployment, postgres, fake)
        finally:
            deployment.stop()
            with app.app_context():
                db.engine.dispose()


def _postgres_drill(deployment: Deployment, postgres: Any, fake: FakeTwilio) -> None:
    stickers = prepare(80)  # 13 s of load: 3 s before the outage, some 6 s after it
    load = Load(deployment.url, stickers, rate=6).start()
    time.sleep(3)
    postgres.stop()
    stopped = time.monotonic()
    try:
        time.sleep(1)
        down = requests.get(f"{deployment.url}/s/{stickers[0]}", timeout=10)
    finally:
        time.sleep(2)
        restarting = time.monotonic()
        postgres.start()
    back = time.monotonic()
    load.join()
    assert down.status_code == 503
    assert "Traceback" not in down.text and "96333" in down.text
    assert "0752-1234567" in down.text or "12345" in down.text
    assert down.headers["Retry-After"]
    # Every resident got either their report filed or the outage page with the hotline…
    assert set(load.answers) <= {303, 503}, load.answers
    during = [got for started, ended, got in load.timeline
              if started > stopped and ended < restarting]
    assert during and set(during) == {503}, during
    # …and once the database is back, every report is filed again.
    after = [got for started, _, got in load.timeline if started > back + RECOVERY_SECONDS]
    assert len(after) >= 10 and set(after) == {303}, (load.timeline, back)
    # A send the outage cut off between its claim and the provider's answer is "sending" until
    # SENDING_TIMEOUT, like one a crash interrupted, and then sent again (docs/deploy.md).
    wait_until("every ladder and message to finish", lambda: settled(load.filed),
               delivery.SENDING_TIMEOUT.total_seconds() + 60, 1)
    notes = account_for(fake, load)
    last = max(started for started, _, got in load.timeline if got != 303) - back
    print(f"\npostgres restarted: {load.answers[503]} resident(s) got the 503 page, the last "
          f"of them starting {last:+.2f} s after it was back; {load.filed} report(s) filed, "
          f"{len(notes)} send(s) cut off and resent")
