"""In-process cost of a ladder step as a worker runs it: the step job and the first sends it
runs right after (`jobs.run`), per case, against a baseline job of one write and one commit.

    .venv/bin/python -m scripts.bench.bench_step                 # 100 cases, about a minute
    .venv/bin/python -m scripts.bench.bench_step --cases 200 --rounds 3 --profile 25
    .venv/bin/python -m scripts.bench.bench_step --queued --cases 300   # through an RQ worker

It builds a throw-away PostgreSQL schema with the Donghu-sized demo community (its clock at
mid-morning, as `bench_load` sets it), claims a free Redis database (jobs go to RQ, and
commits announce their changes there, as in a worker), and files `--cases` reports at places
drawn across the community, the categories in turn as `bench_load`'s storm has them (two of
five urgent). Their queued jobs are dropped; then each case's first step runs in this process
through `jobs.run("step", …)`, which sends the messages the step decided before it returns,
on the console channel. For each step: CPU (`time.process_time`), wall time, SQL statements
and commits (PostgreSQL round trips and WAL flushes). The baseline is `jobs.run` of a job that
updates one row and commits: the floor of any job that writes, in the same run, so a ratio
to it means the same on a busy and a quiet machine.

With `--queued`, the steps are left queued, as a storm leaves them, and one burst RQ worker
(`SimpleWorker`, the steps queue only) runs them; the baseline is the same number of baseline
jobs through the same worker, each paying RQ's work around a job. Figures are then per job,
over the whole drain (the worker's own log lines off in both). This is what taking the steps
waiting behind a step job (`jobs._take_waiting_jobs`) saves.

Rounds alternate baseline and steps (new cases each round), and each figure is the median of
the rounds' medians. `--profile N` prints the N most expensive functions (cumulative) of the
steps of the last round, under cProfile.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import platform
import pstats
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade
from redis import Redis

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("safety", "noise", "dispute", "help", "other")  # bench_load's storm, in turn
BASELINE = "bench_commit"
FAKE_PORT = 18711


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="steps measured per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--show-sql", type=int, default=0, metavar="N",
                        help="print the statements of N steps (an extra round, not measured)")
    parser.add_argument("--sms", choices=("twilio", "console"), default="twilio",
                        help="twilio: the real SDK against bench_load's fake Twilio (another "
                             "process), pacing off as in bench_load; console: no provider")
    parser.add_argument("--queued", action="store_true",
                        help="run the queued steps (and the baseline jobs) through an RQ worker")
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
    fake = None
    try:
        if args.sms == "twilio":
            fake = subprocess.Popen(
                [sys.executable, "-m", "scripts.bench.bench_load", "serve-fake", "--port",
                 str(FAKE_PORT), "--log", f"/tmp/{schema}-sms.jsonl"], cwd=ROOT,
                stdout=subprocess.DEVNULL)
        app = make_app(args.database_url, schema, redis_url, args.sms)
        prepare(app)
        rounds: list[dict[str, dict[str, float]]] = []
        rng = random.Random(7)
        for n in range(args.rounds):
            if args.queued:
                baseline = drain(app, [(BASELINE, (n,))] * args.cases)
                open_cases(app, args.cases, rng, redis_url, keep_jobs=True)
                steps = drain(app, [])
                rounds.append({"baseline": baseline, "step": steps})
                print(f"round {n + 1}: baseline {fmt(baseline)}\n         step     "
                      f"{fmt(steps)}", flush=True)
                continue
            baseline = measure(app, [(BASELINE, (n,))] * args.cases)
            cases = open_cases(app, args.cases, rng, redis_url)
            steps = measure(app, [("step", (case_id, token)) for case_id, token in cases])
            rounds.append({"baseline": baseline, "step": steps})
            print(f"round {n + 1}: baseline {fmt(baseline)}\n         step     {fmt(steps)}",
                  flush=True)
        report(rounds, sent(app))
        if args.show_sql:
            show_sql(app, open_cases(app, args.show_sql, rng, redis_url))
        if args.profile:
            # A round of its own: the profiler's overhead stays out of the figures above.
            profiler = cProfile.Profile()
            cases = open_cases(app, args.cases, rng, redis_url)
            measure(app, [("step", (case_id, token)) for case_id, token in cases], profiler)
            print()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
    finally:
        if fake is not None:
            fake.terminate()
            fake.wait(10)
            Path(f"/tmp/{schema}-sms.jsonl").unlink(missing_ok=True)
        engine.dispose()
        with contextlib.suppress(Exception), app.app_context():
            from dispatch.db import db

            db.session.remove()
            db.engine.dispose()
        with sa.create_engine(args.database_url).begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        release()


def claim_redis(base: str) -> tuple[str, Callable[[], None]]:
    """A Redis database no test session holds (they mark theirs with linli:test-session)."""
    token = uuid.uuid4().hex
    for number in range(15, 0, -1):
        conn = Redis.from_url(f"{base}/{number}")
        if conn.set("linli:test-session", token, nx=True, ex=3600):
            conn.flushdb()
            conn.set("linli:test-session", token, ex=3600)
            return f"{base}/{number}", conn.flushdb
    raise SystemExit("every Redis database 1–15 is in use")


def make_app(database_url: str, schema: str, redis_url: str, sms: str) -> Flask:
    from app import create_app
    from dispatch import jobs
    from dispatch.db import db

    provider: dict[str, Any] = {"SMS_BACKEND": "console"}
    if sms == "twilio":  # as bench_load's deployment has it
        provider = {"SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "0" * 31 + "1",
                    "TWILIO_AUTH_TOKEN": "fake-auth-token-0123456789abcdef",
                    "TWILIO_FROM": "+15005550006",
                    "TWILIO_API_BASE_URL": f"http://127.0.0.1:{FAKE_PORT}",
                    "THROTTLE_GAP_SECONDS": 0, "THROTTLE_ALERTS": 1_000_000,
                    "TWILIO_TIMEOUT": 5}
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "PUBLIC_BASE_URL": "http://linli.test", **provider,
        "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": f"-csearch_path={schema}"},
                                      "pool_pre_ping": True},
    })
    jobs.set_worker_app(app)

    def commit_one(n: int) -> None:
        """The baseline: one row written, one commit."""
        db.session.execute(sa.text("UPDATE community SET name = name WHERE id = "
                                   "(SELECT min(id) FROM community)"))
        db.session.commit()

    jobs.register({BASELINE: commit_one})
    return app


def prepare(app: Flask) -> None:
    from dispatch.community import load_demo
    from dispatch.db import db
    from scripts.bench.bench_load import morning_zone

    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"), revision="heads")
        load_demo()
        db.session.execute(sa.text("UPDATE community SET timezone = :zone"),
                           {"zone": morning_zone()})
        db.session.commit()
    logging_quiet()


def logging_quiet() -> None:
    """The console sender logs every message at INFO: thousands of lines, and their cost."""
    import logging

    logging.getLogger("dispatch").setLevel(logging.WARNING)


def open_cases(app: Flask, count: int, rng: random.Random, redis_url: str, *,
               keep_jobs: bool = False) -> list[tuple[int, int]]:
    """`count` new cases at places drawn across the community, through the residents' path;
    the step jobs they queued are dropped (this process runs the steps), or kept."""
    from dispatch.case.report import file_report
    from dispatch.db import db
    from dispatch.models import Case, CaseStatus, Place, PlaceKind

    with app.app_context():
        busy = set(db.session.scalars(sa.select(Case.place_id)
                                      .where(Case.status == CaseStatus.OPEN)))
        places = [p for p in db.session.scalars(sa.select(Place).where(
            Place.kind.in_((PlaceKind.UNIT, PlaceKind.ELEVATOR, PlaceKind.BUILDING))))
            if p.id not in busy]
        chosen = rng.sample(places, count)
        cases = []
        for n, place in enumerate(chosen):
            filed = file_report(place, KINDS[n % len(KINDS)], text=f"bench {n}")
            cases.append((filed.case.id, filed.case.token))
    if keep_jobs:
        return cases
    redis = Redis.from_url(redis_url)
    claim = redis.get("linli:test-session")
    redis.flushdb()
    redis.set("linli:test-session", claim or b"bench", ex=3600)
    return cases


def measure(app: Flask, runs: list[tuple[str, tuple[Any, ...]]],
            profiler: cProfile.Profile | None = None) -> dict[str, float]:
    """Run each job through `jobs.run`; the medians (and p90s) of its costs."""
    from dispatch import jobs

    cpu, wall, statements, commits = [], [], [], []
    with counting(app) as count:
        for name, args in runs:
            before = dict(count)
            c0, w0 = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            jobs.run(name, *args)
            if profiler is not None:
                profiler.disable()
            wall.append((time.perf_counter() - w0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            statements.append(count["statements"] - before["statements"])
            commits.append(count["commits"] - before["commits"])
    return {"cpu": statistics.median(cpu), "cpu90": p90(cpu),
            "wall": statistics.median(wall), "wall90": p90(wall),
            "statements": statistics.mean(statements), "commits": statistics.mean(commits)}


def drain(app: Flask, queue_first: list[tuple[str, tuple[Any, ...]]]) -> dict[str, float]:
    """Queue these jobs on the steps queue after what waits there, and run the queue dry with
    one burst `SimpleWorker`; costs per job, over the whole drain."""
    import logging

    from dispatch import jobs

    runner = jobs.runner(app)
    for name, args in queue_first:
        runner.steps.enqueue(jobs.run, name, *args, result_ttl=0)
    count = runner.steps.count
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    worker = jobs.SimpleWorker([runner.steps], connection=runner.redis, worker_ttl=16,
                               job_monitoring_interval=1)
    with counting(app) as counted:
        c0, w0 = time.process_time(), time.perf_counter()
        worker.work(burst=True, with_scheduler=False)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    assert runner.steps.count == 0, "jobs left on the queue"
    runner.queue.empty()  # the steps' later messages: not measured here
    per = 1000 / max(1, count)
    return {"cpu": cpu * per, "wall": wall * per,
            "statements": counted["statements"] / max(1, count),
            "commits": counted["commits"] / max(1, count)}


@contextlib.contextmanager
def counting(app: Flask) -> Iterator[dict[str, int]]:
    """Statements and commits the app's engine sends while the block runs."""
    from dispatch.db import db

    with app.app_context():
        engine = db.engine
    count = {"statements": 0, "commits": 0}

    def statement(*_: Any) -> None:
        count["statements"] += 1

    def commit(*_: Any) -> None:
        count["commits"] += 1

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "commit", commit)
    try:
        yield count
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
        sa.event.remove(engine, "commit", commit)


def show_sql(app: Flask, cases: list[tuple[int, int]]) -> None:
    """Print each statement (its first 110 characters) and commit of these steps' jobs."""
    from dispatch import jobs
    from dispatch.db import db

    with app.app_context():
        engine = db.engine

    def statement(conn: Any, cursor: Any, text: str, *_: Any) -> None:
        print("   ", " ".join(text.split())[:110])

    def commit(*_: Any) -> None:
        print("    -- COMMIT")

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "commit", commit)
    try:
        for case_id, token in cases:
            print(f"\nstep of case {case_id}:")
            jobs.run("step", case_id, token)
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
        sa.event.remove(engine, "commit", commit)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def sent(app: Flask) -> dict[str, int]:
    """Outbox rows by status (the console sender takes them all)."""
    from dispatch.db import db
    from dispatch.models import Notification

    with app.app_context():
        return {str(status): count for status, count in db.session.execute(
            sa.select(Notification.status, sa.func.count()).group_by(Notification.status))}


def fmt(m: dict[str, float]) -> str:
    if "cpu90" not in m:  # `--queued`: per job over a whole drain
        return (f"CPU {m['cpu']:.1f} ms, wall {m['wall']:.1f} ms a job over the drain, "
                f"{m['statements']:.1f} statements, {m['commits']:.1f} commits")
    return (f"CPU {m['cpu']:.1f} ms (p90 {m['cpu90']:.1f}), wall {m['wall']:.1f} ms "
            f"(p90 {m['wall90']:.1f}), {m['statements']:.1f} statements, "
            f"{m['commits']:.1f} commits")


def report(rounds: list[dict[str, dict[str, float]]], rows: dict[str, int]) -> None:
    def median(kind: str, key: str) -> float:
        return statistics.median(r[kind][key] for r in rounds)

    base = {k: median("baseline", k) for k in rounds[0]["baseline"]}
    step = {k: median("step", k) for k in rounds[0]["step"]}
    print(f"\nmachine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f} (1 min)")
    print(f"baseline job (one UPDATE, one commit): {fmt(base)}")
    print(f"step job with its first sends:         {fmt(step)}")
    print(f"step / baseline: CPU {step['cpu'] / base['cpu']:.1f} ×, "
          f"wall {step['wall'] / base['wall']:.1f} ×  (medians of {len(rounds)} rounds)")
    print(f"outbox rows: {rows}")


if __name__ == "__main__":
    main()
