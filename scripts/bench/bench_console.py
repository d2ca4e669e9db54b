"""Benchmark the console's whole requests at a district's year of history (issue #20's long tail).

Run from the repository root, under the benchmark lock (timed runs share the machine's cores):

    flock /tmp/linli-bench.lock .venv/bin/python -m scripts.bench.bench_console
    flock /tmp/linli-bench.lock .venv/bin/python -m scripts.bench.bench_console \
        --schema linli_history --keep            # reuse a history kept by an earlier run
    … --schema linli_history --keep --only district   # the baseline and the district summary

It generates 1,000,000 cases with `scripts/gen_history.py` (or reuses `--schema`), logs in as
an admin of the first community through the real login form, and times through the Flask test
client each request a duty worker or the district makes: the live board's table with each of
its filters, the case page, the monthly report (.xlsx and cases.csv, generated whole), the
roster page and `/metrics` (the first scrape of a fresh process, and later scrapes); and,
outside any request, the district's yearly summary. Each is timed `--repeat` times after two
warm-ups; the first scrape is timed on a new app each time. A plain `SELECT count(*) FROM
"case"` is timed in the same run as the baseline, and the 1-minute load average is printed
before and after, since the machine may be shared.

Goal (issue #20): every console request p99 < 300 ms, the board's table < 50 ms, the district
yearly summary < 1 s.
"""

from __future__ import annotations

import os
import platform
import re
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from app import create_app
from dispatch import clock, metrics
from dispatch.db import db
from dispatch.metrics import Period, Scope
from dispatch.models import Callback, Case, CaseStatus, Community, Member, StaffRole, StaffUser
from dispatch.staff import auth
from scripts import gen_history

PASSWORD = "bench-password-not-a-secret"
GOAL_MS = 300.0
BOARD_GOAL_MS = 50.0
DISTRICT_GOAL_MS = 1000.0
#: Seconds each: measured fewer times to bound the run.
SLOW_REPEAT = 5


def percentiles(samples: list[float]) -> tuple[float, float]:
    return metrics.percentile(samples, 0.5) or 0.0, metrics.percentile(samples, 0.99) or 0.0


def timed(run: Callable[[], Any], repeat: int, warm: int = 2) -> tuple[float, float]:
    """Median and p99 in milliseconds of `repeat` runs after `warm` warm-ups."""
    for _ in range(warm):
        run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def app_on(url: str, schema: str) -> Flask:
    """A new app (its own engine, pool and per-process caches) on the history's schema."""
    return create_app({
        "SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": None, "JOBS_AUTOSTART": False,
        "SECRET_KEY": "history-generator-not-a-secret",
        "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {
            "options": f"-csearch_path={schema} -cstatement_timeout=60000"}},
    })


def login(app: Flask) -> Any:
    client = app.test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "no login form"
    answer = client.post("/staff/login", data={"username": "bench-admin", "password": PASSWORD,
                                               "csrf_token": token[1]})
    assert answer.status_code == 302, answer.status_code
    return client


def fetch(client: Any, path: str) -> Callable[[], Any]:
    def run() -> None:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        response.get_data()
    return run


def prepare(app: Flask) -> dict[str, Any]:
    """The admin login, and which community, month and cases to show."""
    with app.app_context():
        community = db.session.scalars(sa.select(Community).order_by(Community.id)).first()
        assert community is not None, "no history in this schema"
        if db.session.scalar(sa.select(StaffUser.id).where(
                StaffUser.username == "bench-admin")) is None:
            auth.create_user(community, "bench-admin", "压测", PASSWORD, StaffRole.ADMIN)
            db.session.commit()
        closed = db.session.scalar(
            sa.select(Case.id).join(Callback, Callback.case_id == Case.id)
            .where(Case.community_id == community.id, Case.status == CaseStatus.CLOSED)
            .order_by(Case.id.desc()).limit(1))
        open_ = db.session.scalar(sa.select(Case.id).where(
            Case.community_id == community.id, Case.status == CaseStatus.OPEN)
            .order_by(Case.id.desc()).limit(1))
        local = clock.local(clock.now(), community.timezone)
        last = local.replace(day=1) - timedelta(days=1)
        month = f"{last.year}-{last.month:02d}"
        counts = {
            "total": db.session.scalar(sa.text('SELECT count(*) FROM "case"')),
            "community": db.session.scalar(sa.select(sa.func.count()).select_from(Case).where(
                Case.community_id == community.id)),
            "open": db.session.scalar(sa.select(sa.func.count()).select_from(Case).where(
                Case.community_id == community.id, Case.status.in_(
                    ("open", "accepted", "on_site")))),
            "month": db.session.scalar(sa.select(sa.func.count()).select_from(Case).where(
                Case.community_id == community.id,
                Case.reported_at >= Period.month(last.year, last.month,
                                                 community.timezone).start,
                Case.reported_at < Period.month(last.year, last.month,
                                                community.timezone).end)),
            "members": db.session.scalar(sa.select(sa.func.count()).select_from(Member).where(
                Member.community_id == community.id)),
        }
        grid = db.session.scalar(sa.text(
            "SELECT id FROM place WHERE community_id = :c AND kind = 'grid' ORDER BY id LIMIT 1"),
            {"c": community.id})
        version = db.session.scalar(sa.text("SELECT version()")).split(" on ")[0]
    return {"community": community.id, "closed": closed, "open": open_, "month": month,
            "counts": counts, "grid": grid, "version": version}


def first_scrape(url: str, schema: str) -> Callable[[], Any]:
    """/metrics on a new app each time: nothing cached in the process yet (its connection is
    opened before the clock starts, as a running process would have one)."""
    apps: list[Flask] = []

    def setup() -> Any:
        app = app_on(url, schema)
        with app.app_context():
            db.session.execute(sa.text("SELECT 1"))
            db.session.remove()
        apps.append(app)
        return app.test_client()

    def run(client: Any) -> None:
        response = client.get("/metrics")
        assert response.status_code == 200
        response.get_data()

    def measure(repeat: int) -> tuple[float, float]:
        samples = []
        for n in range(repeat + 1):
            client = setup()
            started = time.perf_counter()
            run(client)
            if n:  # the very first also pays for importing prometheus_client's writers
                samples.append((time.perf_counter() - started) * 1000)
            with apps[-1].app_context():
                db.engine.dispose()
        return percentiles(samples)

    return measure  # type: ignore[return-value]


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def run(url: str, schema: str, repeat: int, only: str | None = None) -> None:
    app = app_on(url, schema)
    seen = prepare(app)
    counts = seen["counts"]
    print(f"\n{counts['total']:,} cases in the table; the community measured has "
          f"{counts['community']:,}, {counts['open']:,} open, {counts['month']:,} in "
          f"{seen['month']}, {counts['members']} members; {seen['version']}; "
          f"Python {platform.python_version()}; {repeat} runs after 2 warm-ups "
          + ("" if only == "district" else
             f"({SLOW_REPEAT} for the district summary, first scrapes on {repeat} new apps)")
          + "; "
          f"load average (1 min) at start {load()}\n")
    client = login(app)
    month = seen["month"]
    board = "/staff/cases/live"

    def baseline() -> None:
        with app.app_context():
            db.session.execute(sa.text('SELECT count(*) FROM "case"')).scalar()

    def district() -> None:
        with app.app_context():
            now = clock.now()
            metrics.summary(Scope(None), Period.days(365, "Asia/Shanghai", now), now)

    requests: list[tuple[str, Callable[[], Any], float]] = [
        ("baseline: SELECT count(*) FROM \"case\"", baseline, 0),
        (f"board table {board}", fetch(client, board), BOARD_GOAL_MS),
        ("board table ?urgency=urgent", fetch(client, board + "?urgency=urgent"), BOARD_GOAL_MS),
        ("board table ?urgency=low", fetch(client, board + "?urgency=low"), BOARD_GOAL_MS),
        ("board table ?status=open", fetch(client, board + "?status=open"), BOARD_GOAL_MS),
        ("board table ?status=on_site", fetch(client, board + "?status=on_site"),
         BOARD_GOAL_MS),
        ("board table ?grid=(first grid)", fetch(client, f"{board}?grid={seen['grid']}"),
         BOARD_GOAL_MS),
        ("board table ?mine=1", fetch(client, board + "?mine=1"), BOARD_GOAL_MS),
        ("board table ?waiting=1", fetch(client, board + "?waiting=1"), BOARD_GOAL_MS),
        ("board page /staff/cases/", fetch(client, "/staff/cases/"), GOAL_MS),
        ("case page (closed, with callback)", fetch(client, f"/staff/cases/{seen['closed']}"),
         GOAL_MS),
        ("case page (open)", fetch(client, f"/staff/cases/{seen['open']}"), GOAL_MS),
        (f"month report /staff/reports/{month}.xlsx",
         fetch(client, f"/staff/reports/{month}.xlsx"), GOAL_MS),
        (f"month case list /staff/reports/{month}/cases.csv",
         fetch(client, f"/staff/reports/{month}/cases.csv"), GOAL_MS),
        ("roster page /staff/roster/", fetch(client, "/staff/roster/"), GOAL_MS),
        ("dashboard /staff/dashboard (12 weeks)", fetch(client, "/staff/dashboard"), GOAL_MS),
        ("/metrics, later scrapes", fetch(app.test_client(), "/metrics"), GOAL_MS),
    ]
    print("| request | median ms | p99 ms | × count(*) | goal |")
    print("|---|---:|---:|---:|---|")
    base = None
    missed = []

    def line(name: str, median: float, p99: float, goal: float) -> None:
        nonlocal base
        base = base or median
        verdict = "" if not goal else ("met" if p99 < goal else "**missed**")
        if goal and p99 >= goal:
            missed.append(name)
        goal_text = f"p99 < {goal:.0f} ms: {verdict}" if goal else ""
        print(f"| {name} | {median:.1f} | {p99:.1f} | {median / base:.2f} | {goal_text} |",
              flush=True)

    for name, func, goal in requests[:1] if only == "district" else requests:
        median, p99 = timed(func, repeat)
        line(name, median, p99, goal)
    if only != "district":
        median, p99 = first_scrape(url, schema)(repeat)  # type: ignore[operator]
        line("/metrics, first scrape of a new process", median, p99, GOAL_MS)
    median, p99 = timed(district, repeat if only == "district" else SLOW_REPEAT, warm=1)
    line("district summary, all communities, 1 year (no request)", median, p99,
         DISTRICT_GOAL_MS)
    print(f"\nLoad average (1 min) at the end: {load()}. Goals missed: "
          + (", ".join(missed) if missed else "none"))


def main() -> None:
    args = gen_history.bench_arguments(__doc__.split("\n\n")[0])
    schema = args.schema or f"linli_bench_{uuid.uuid4().hex[:8]}"
    url = args.database_url
    try:
        if not gen_history.ensure(url, schema, cases=args.cases,
                                  communities=args.communities):
            gen_history.app_for(url, schema)  # migrate a kept schema to this build
        run(url, schema, args.repeat, args.only)
    finally:
        if not args.keep:
            gen_history.drop(url, schema)
            print(f"Dropped schema {schema}.")


if __name__ == "__main__":
    main()
