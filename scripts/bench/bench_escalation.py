"""Benchmark escalation timing: how late do ladder steps fire, with 10,000 open cases?

Run from the repository root, with the local PostgreSQL and Redis up (about 3 minutes):

    .venv/bin/python -m scripts.bench.bench_escalation
    .venv/bin/python -m scripts.bench.bench_escalation --cases 2000 --spread 120 --window 20

It builds a throw-away PostgreSQL schema with the Donghu-sized demo community, claims a free
Redis database (the test suite's convention), and starts the documented processes: `--workers`
forking RQ workers with the scheduler (`flask --app app worker`) and one sweeper
(`flask --app app sweeper`). Then, in the same run:

1. **baseline**: empty jobs through the same path (`enqueue_at` → RQ scheduler → forking
   worker), at the same rate as the steps below: the lateness RQ itself adds;
2. **fast path**: `--cases` open cases whose next steps fall due uniformly over `--spread`
   seconds, each with its step job queued by `enqueue_at`; the steps due in the first
   `--window` seconds are measured, while every case stays open in the database. Each step
   decides who is on duty, writes the outbox rows (the workers then send them on the console
   channel) and queues the next step;
3. **Redis lost**: the queue is flushed and the sweeper alone takes the steps due in the next
   `--window` seconds (it leaves a step to the fast path for `sweeper.GRACE` first).

Lateness is actual − due: the step's `notified` event against the `due` it records.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from flask_migrate import upgrade
from redis import Redis

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).with_name("flask"))
SECRET_KEY = "bench-secret-key-not-for-production"
BASELINE_KEY = "linli:bench:baseline"
#: Categories whose steps fire at any hour (low urgency waits for working hours).
CATEGORIES = ("elevator", "repair", "noise", "help", "safety", "dispute")


def baseline_job(due: float) -> None:
    """The baseline's empty job: note how late it started, nothing else."""
    started = time.time()
    Redis.from_url(current_app.config["REDIS_URL"]).rpush(BASELINE_KEY, started - due)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=3600.0,
                        help="seconds over which the open cases' next steps fall due")
    parser.add_argument("--window", type=float, default=40.0,
                        help="seconds of due steps measured in each part")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get(
        "LINLI_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis-url", default=os.environ.get(
        "LINLI_TEST_REDIS_URL", "redis://127.0.0.1:6379"))
    args = parser.parse_args()

    schema = f"linli_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(args.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    redis_url, release = claim_redis(args.redis_url)
    processes: list[subprocess.Popen[bytes]] = []
    logs = Path(f"/tmp/{schema}")
    logs.mkdir()
    try:
        app = make_app(args.database_url, schema, redis_url)
        prepare(app)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SECRET_KEY": SECRET_KEY,
               "DATABASE_URL": f"{args.database_url}?options=-csearch_path%3D{schema}",
               "REDIS_URL": redis_url, "PUBLIC_BASE_URL": "http://linli.test",
               "SMS_BACKEND": "console", "SWEEP_SECONDS": "1"}
        for n in range(args.workers):
            processes.append(start(env, "worker", logs / f"worker{n}.log"))
        processes.append(start(env, "sweeper", logs / "sweeper.log"))
        wait_for_workers(app, args.workers)

        rate = args.cases / args.spread
        rows = [("baseline: empty job, enqueue_at → RQ scheduler → forking worker",
                 run_baseline(app, rate, args.window))]
        fast, sent = run_fast_path(app, args)
        taken_over = (logs / "sweeper.log").read_text(errors="replace").count(
            "was not taken by a job")
        rows.append((f"Linli step via RQ (fast path), {args.cases:,} open cases", fast))
        rows.append(("Linli step, Redis flushed: sweeper only", run_sweeper_only(app, args)))
        report(args, rate, rows, sent, taken_over)
    finally:
        for process in processes:
            process.send_signal(signal.SIGKILL)
            process.wait()
        kill_strays(processes)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
        release()


def claim_redis(base: str) -> tuple[str, Any]:
    """A Redis database no test session holds (they mark theirs with linli:test-session)."""
    token = uuid.uuid4().hex
    for number in range(15, 0, -1):
        conn = Redis.from_url(f"{base}/{number}")
        if conn.set("linli:test-session", token, nx=True, ex=3600):
            conn.flushdb()
            conn.set("linli:test-session", token, ex=3600)

            def release(conn: Redis = conn) -> None:
                conn.flushdb()

            return f"{base}/{number}", release
    raise SystemExit("every Redis database 1–15 is in use")


def make_app(database_url: str, schema: str, redis_url: str) -> Flask:
    from app import create_app
    from dispatch import jobs

    app = create_app({
        "SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY, "PUBLIC_BASE_URL": "http://linli.test",
        "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": f"-csearch_path={schema}"},
                                      "pool_pre_ping": True},
    })
    jobs.set_worker_app(app)
    return app


def prepare(app: Flask) -> None:
    from dispatch.community import load_demo

    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"), revision="heads")
        load_demo()


def start(env: dict[str, str], command: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([FLASK, "--app", "app", command], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def kill_strays(processes: list[subprocess.Popen[bytes]]) -> None:
    """The workers' scheduler and work-horse children, if any outlived them."""
    ours = {p.pid for p in processes}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) in ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


def wait_for_workers(app: Flask, count: int) -> None:
    import rq

    from dispatch import jobs

    redis = jobs.runner(app).redis
    deadline = time.monotonic() + 30
    while len(rq.Worker.all(connection=redis)) < count or not redis.exists(
            f"rq:scheduler-lock:{jobs.QUEUE_NAME}"):
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not start; see their logs")
        time.sleep(0.2)


def run_baseline(app: Flask, rate: float, window: float) -> list[float]:
    """Empty jobs due at `rate` per second for `window` seconds, through RQ alone."""
    from dispatch import jobs

    redis = jobs.runner(app).redis
    redis.delete(BASELINE_KEY)
    start_at = time.time() + 5
    count = int(rate * window)
    with app.app_context():
        for n in range(count):
            due = start_at + random.uniform(0, window)
            jobs.enqueue("scripts.bench.bench_escalation.baseline_job", due, job_id=f"baseline-{n}",
                         at=datetime.fromtimestamp(due, UTC))
    wait_until(lambda: redis.llen(BASELINE_KEY) >= count, start_at + window + 60)
    return sorted(float(x) for x in redis.lrange(BASELINE_KEY, 0, -1))


def open_cases(app: Flask, count: int, first_due: datetime, spread: float) -> None:
    """`count` open cases at random units and elevators, next steps due across `spread`."""
    from dispatch import jobs
    from dispatch.community import settings
    from dispatch.db import db
    from dispatch.models import Case, Community, Place, PlaceKind

    with app.app_context():
        community = db.session.scalars(sa.select(Community)).one()
        places = db.session.scalars(sa.select(Place.id).where(
            Place.kind.in_((PlaceKind.UNIT, PlaceKind.ELEVATOR)))).all()
        policies = {c.code: (c.urgency, settings.policy(community, c.urgency))
                    for c in settings.categories(community)}
        rows = []
        for n in range(count):
            category = random.choice(CATEGORIES)
            urgency, policy = policies[category]
            rows.append({
                "community_id": community.id, "place_id": random.choice(places),
                "category": category, "urgency": urgency, "status": "open",
                "open_key": f"bench:{n}", "public_token": secrets.token_urlsafe(16),
                "report_count": 1, "policy": policy, "rung": 1, "step": 0, "token": 0,
                "reported_at": first_due,
                "next_step_at": first_due + timedelta(seconds=random.uniform(0, spread)),
            })
        db.session.execute(sa.insert(Case), rows)
        db.session.commit()
        for case_id, due in db.session.execute(sa.select(Case.id, Case.next_step_at)):
            jobs.enqueue(jobs.Job.STEP, case_id, 0, at=due, job_id=f"step-{case_id}-0")


def step_lateness(app: Flask, since: datetime, until: datetime) -> list[float]:
    """actual − due of the first notification of every step due in [since, until)."""
    from dispatch.db import db
    from dispatch.models import CaseEvent

    with app.app_context():
        events = db.session.scalars(sa.select(CaseEvent).where(
            CaseEvent.kind == "notified", CaseEvent.data["due"].as_string() >= since.isoformat(),
            CaseEvent.data["due"].as_string() < until.isoformat())).all()
        firsts: dict[tuple[int, str], float] = {}
        for event in events:
            key = (event.case_id, event.data["due"])
            late = (event.at - datetime.fromisoformat(event.data["due"])).total_seconds()
            firsts[key] = min(late, firsts.get(key, late))
        return sorted(firsts.values())


def run_fast_path(app: Flask, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    from dispatch import clock

    first_due = clock.now() + timedelta(seconds=20)
    open_cases(app, args.cases, first_due, args.spread)
    until = first_due + timedelta(seconds=args.window)
    expected = count_due(app, first_due, until)
    wait_until(lambda: len(step_lateness(app, first_due, until)) >= expected,
               until.timestamp() + 90)
    late = step_lateness(app, first_due, until)
    print(f"fast path: {expected} steps due in the window, {len(late)} measured")
    return late, send_lateness(app, first_due, until)


def count_due(app: Flask, first_due: datetime, until: datetime) -> int:
    from dispatch.db import db
    from dispatch.models import Case

    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Case).where(
            Case.next_step_at >= first_due, Case.next_step_at < until)) or 0


def send_lateness(app: Flask, since: datetime, until: datetime) -> list[float]:
    """Seconds from an alert's outbox row being written to the provider taking it."""
    from dispatch.db import db
    from dispatch.models import Notification

    with app.app_context():
        pairs = db.session.execute(sa.select(Notification.created_at, Notification.sent_at).where(
            Notification.created_at >= since, Notification.created_at < until,
            Notification.sent_at.is_not(None))).all()
    return sorted((sent - created).total_seconds() for created, sent in pairs)


def run_sweeper_only(app: Flask, args: argparse.Namespace) -> list[float]:
    """Flush Redis (every queued step job is lost) and time the steps the sweeper takes."""
    from dispatch import clock, jobs

    redis = jobs.runner(app).redis
    lock = redis.get("linli:test-session")
    since = clock.now() + timedelta(seconds=2)
    redis.flushdb()
    redis.set("linli:test-session", lock, ex=3600)
    until = since + timedelta(seconds=args.window)
    expected = count_due(app, since, until)
    wait_until(lambda: len(step_lateness(app, since, until)) >= expected,
               until.timestamp() + 90)
    late = step_lateness(app, since, until)
    print(f"sweeper only: {expected} steps due in the window, {len(late)} measured")
    return late


def wait_until(done: Any, deadline: float) -> None:
    while not done():
        if time.time() > deadline:
            print("warning: timed out; reporting what finished", file=sys.stderr)
            return
        time.sleep(1)


def seconds(values: list[float], q: float) -> str:
    """The q-quantile for the table ("—" for none), by `dispatch.metrics.percentile`."""
    from dispatch.metrics import percentile

    value = percentile(values, q)
    return "—" if value is None else f"{value:.2f}"


def report(args: argparse.Namespace, rate: float, rows: list[tuple[str, list[float]]],
           sent: list[float], taken_over: int) -> None:
    print(f"\n{args.cases:,} open cases, steps due at {rate:.1f}/s, {args.workers} forking "
          f"workers + 1 sweeper; {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, rq {version('rq')}, PostgreSQL + Redis on loopback.\n")
    print("| path | steps | p50 s | p90 s | p99 s | max s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in [*rows, ("outbox row written → provider took it (fast path)", sent)]:
        print(f"| {name} | {len(values):,} | {seconds(values, 0.5)} | "
              f"{seconds(values, 0.9)} | {seconds(values, 0.99)} | "
              f"{max(values, default=float('nan')):.2f} |")
    fast = rows[1][1]
    print(f"\nSteps the sweeper took over from the fast path: {taken_over:,}; mean fast-path "
          f"lateness {statistics.fmean(fast) if fast else float('nan'):.2f} s.")


if __name__ == "__main__":
    main()
