#!/usr/bin/env python3
"""Generate a year of case history for a district of communities into PostgreSQL, fast.

    .venv/bin/python scripts/gen_history.py --schema linli_history --cases 1000000
    .venv/bin/python scripts/gen_history.py --schema linli_history --drop   # remove it again

The schema is created and migrated like a real database (`flask db upgrade`), then filled
with COPY: communities of 7 grids × 6 buildings × 3 units (an elevator in each), a roster, and
`--cases` cases spread over the twelve months up to now with realistic milestones (most
accepted at the building rung within minutes, a tail of slow and unaccepted ones, 3 %
duplicates, callbacks for most closed cases) and one outbox row per case. The same seed gives
the same history. Used by `scripts/bench/bench_metrics.py`; never point it at a live schema.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from dispatch import clock  # noqa: E402
from dispatch.community.settings import DEFAULT_CATEGORIES, default_settings, policy  # noqa: E402
from dispatch.metrics import daily, totals  # noqa: E402
from dispatch.models import Community  # noqa: E402

DEFAULT_URL = os.environ.get("LINLI_BENCH_DATABASE_URL",
                             "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GRIDS, BUILDINGS, UNITS = 7, 6, 3
#: Relative frequency of each category (repairs and noise dominate, as in 12345 data).
CATEGORY_WEIGHTS = {"repair": 30, "elevator": 8, "safety": 5, "noise": 18, "sanitation": 15,
                    "dispute": 6, "help": 4, "other": 14}
#: Median minutes to accept, per urgency; the spread is log-normal (sigma 1.1).
ACCEPT_MEDIAN = {"urgent": 4.0, "normal": 18.0, "low": 120.0}
RUNG_WEIGHTS = (70, 20, 8, 2)  # accepted at building, grid, community, district
CHUNK = 50_000


def app_for(url: str, schema: str) -> Any:
    """The app, on `schema` of the database at `url` (created if need be), migrated."""
    from flask_migrate import upgrade

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    engine.dispose()
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": None, "JOBS_AUTOSTART": False,
        "SECRET_KEY": "history-generator-not-a-secret",
        "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": f"-csearch_path={schema}"}},
    })
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"), revision="heads")
    return app


def drop(url: str, schema: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def _value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def _copy(conn: Any, table: str, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> int:
    """COPY rows into `table` in chunks of text; returns how many."""
    count = 0
    statement = f'COPY "{table}" ({", ".join(columns)}) FROM STDIN'
    with conn.connection.dbapi_connection.cursor() as cursor, cursor.copy(statement) as copy:
        buffer = io.StringIO()
        for row in rows:
            buffer.write("\t".join(_value(v) for v in row))
            buffer.write("\n")
            count += 1
            if count % CHUNK == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())
    return count


class District:
    """Ids of everything generated, handed out in order so COPY can set them explicitly."""

    def __init__(self, communities: int) -> None:
        self.communities = communities
        self.places: list[tuple[Any, ...]] = []
        self.members: list[tuple[Any, ...]] = []
        #: Per community: [(unit-or-elevator place id, building member id, grid member id)].
        self.spots: dict[int, list[tuple[int, int, int]]] = {}
        self.desk: dict[int, tuple[int, int]] = {}  # community → (duty desk, department)

    def build(self, first_community_id: int) -> None:
        place_id = member_id = 0
        for n in range(self.communities):
            cid = first_community_id + n
            code = f"H{n + 1:03d}"
            spots = self.spots[cid] = []
            member_id += 1
            desk = member_id
            self.members.append((desk, cid, f"{code}-D", "值班员", "staff", None))
            member_id += 1
            self.members.append((member_id, cid, f"{code}-X", "街道办", "department", None))
            self.desk[cid] = (desk, member_id)
            for g in range(GRIDS):
                place_id += 1
                grid = place_id
                self.places.append((grid, cid, None, "grid", f"{code}-G{g + 1}", f"第{g + 1}网格",
                                    g))
                member_id += 1
                secretary = member_id
                self.members.append((secretary, cid, f"{code}-S{g + 1}", "网格书记",
                                     "party_member", grid))
                for b in range(BUILDINGS):
                    place_id += 1
                    building = place_id
                    number = g * BUILDINGS + b + 1
                    self.places.append((building, cid, grid, "building", f"{code}-B{number:02d}",
                                        f"{number}栋", b))
                    member_id += 1
                    leader = member_id
                    self.members.append((leader, cid, f"{code}-L{number:02d}", "楼栋长",
                                         "party_member", grid))
                    for u in range(UNITS):
                        place_id += 1
                        unit = place_id
                        self.places.append((unit, cid, building, "unit",
                                            f"{code}-B{number:02d}-U{u + 1}", f"{u + 1}单元", u))
                        place_id += 1
                        self.places.append((place_id, cid, unit, "elevator",
                                            f"{code}-B{number:02d}-U{u + 1}-E1", "1号电梯", 0))
                        spots += [(unit, leader, secretary), (place_id, leader, secretary)]


def _cases(district: District, total: int, now: datetime, rng: random.Random,
           policies: dict[str, str], urgencies: dict[str, str]) -> Iterator[tuple[Any, ...]]:
    """Case rows; also fills `_callbacks` and `_notifications` lists as it goes."""
    categories = list(CATEGORY_WEIGHTS)
    weights = list(CATEGORY_WEIGHTS.values())
    communities = sorted(district.spots)
    start = now - timedelta(days=365)
    span = (now - start).total_seconds()
    for case_id in range(1, total + 1):
        cid = communities[case_id % len(communities)]
        place, leader, secretary = rng.choice(district.spots[cid])
        category = rng.choices(categories, weights)[0]
        urgency = urgencies[category]
        # More reports by day than by night: fold a uniform draw towards 08:00–22:00.
        reported = start + timedelta(seconds=span * case_id / total)
        hour = reported.astimezone(UTC).hour
        if 14 <= hour <= 23 and rng.random() < 0.6:  # 22:00–07:00 in Asia/Shanghai
            reported -= timedelta(hours=rng.uniform(8, 12))
        age = (now - reported).total_seconds()
        accepted_at = on_site_at = resolved_at = closed_at = callback_at = None
        accepted_by = accepted_rung = closed_rung = merged = resolution = None
        rung, status = 1, "open"
        if rng.random() < 0.03 and case_id > 1:
            resolution, status, merged = "duplicate", "closed", case_id - 1
            closed_at = reported + timedelta(minutes=rng.uniform(5, 120))
        elif rng.random() < 0.93:
            took = 60 * ACCEPT_MEDIAN[urgency] * math.exp(rng.gauss(0, 1.1))
            if took < age:
                accepted_at = reported + timedelta(seconds=took)
                accepted_rung = rung = rng.choices((1, 2, 3, 4), RUNG_WEIGHTS)[0]
                accepted_by = (leader, secretary, district.desk[cid][0],
                               district.desk[cid][1])[rung - 1]
                status = "accepted"
                site = took + 60 * 40 * math.exp(rng.gauss(0, 0.9))
                if rng.random() < 0.65 and site < age:
                    on_site_at, status = reported + timedelta(seconds=site), "on_site"
                fixed = site + 3600 * 3 * math.exp(rng.gauss(0, 1.2))
                if rng.random() < 0.92 and fixed < age:
                    resolved_at, status, resolution = (reported + timedelta(seconds=fixed),
                                                       "resolved", "fixed")
                    closed_rung = rung
                    done = fixed + 3600 * 24 * rng.uniform(0.5, 3)
                    if done < age:
                        closed_at, status = reported + timedelta(seconds=done), "closed"
                        if rung == 4:
                            resolution = "referred"
                        elif rng.random() < 0.75:
                            callback_at = closed_at
        elif age > 3 * 86400:
            status, resolution = "closed", "not_fixed"
            closed_at = reported + timedelta(days=rng.uniform(1, 3))
            closed_rung = rung = 3
        yield (case_id, cid, place, category, urgency, status, resolution,
               f"{place}:{category}:{case_id}" if status in ("open", "accepted", "on_site")
               else None, f"h{case_id:030d}", rng.randint(1, 3), policies[urgency], rung,
               1 if accepted_at else 0, rng.randint(1, 4),
               now + timedelta(minutes=5) if status == "open" else None,
               accepted_by, accepted_rung, closed_rung, merged, reported,
               reported + timedelta(seconds=rng.uniform(1, 5)),
               reported + timedelta(seconds=rng.uniform(5, 60)), accepted_at, on_site_at,
               resolved_at, closed_at, callback_at, 0)


CASE_COLUMNS = ["id", "community_id", "place_id", "category", "urgency", "status", "resolution",
                "open_key", "public_token", "report_count", "policy", "rung", "step", "token",
                "next_step_at", "accepted_by_id", "accepted_rung", "closed_rung",
                "merged_into_id", "reported_at", "first_notified_at", "first_delivered_at",
                "accepted_at", "on_site_at", "resolved_at", "closed_at", "callback_at",
                "reopen_count"]


def generate(url: str, schema: str, *, cases: int, communities: int, seed: int = 7,
             now: datetime | None = None, log: Any = print) -> dict[str, Any]:
    """Create, migrate and fill `schema`; returns what was made and how long it took."""
    started = time.perf_counter()
    now = now or clock.now()
    rng = random.Random(seed)
    app = app_for(url, schema)
    from dispatch.db import db

    with app.app_context():
        settings = default_settings()
        made = [Community(code=f"H{n + 1:03d}", name=f"示范社区{n + 1}", hotline="0752-0000000",
                          timezone="Asia/Shanghai", settings=settings, created_at=now)
                for n in range(communities)]
        db.session.add_all(made)
        db.session.commit()
        district = District(communities)
        district.build(made[0].id)
        urgencies = {c.code: str(c.urgency) for c in DEFAULT_CATEGORIES}
        policies = {str(u): json.dumps({**policy(made[0], c.urgency), "version": "bench"})
                    for c in DEFAULT_CATEGORIES for u in [c.urgency]}
        conn = db.session.connection()
        # Loaded in bulk without the triggers, then counted once (`totals.rebuild`,
        # `daily.rebuild`).
        for table in ("case", "notification", "callback"):
            conn.execute(sa.text(f'ALTER TABLE "{table}" DISABLE TRIGGER USER'))
        _copy(conn, "place", ["id", "community_id", "parent_id", "kind", "code", "name",
                              "position"], iter(district.places))
        _copy(conn, "member", ["id", "community_id", "code", "name", "kind", "grid_id",
                               "is_party_member", "channel_order", "active", "created_at"],
              ((*m, m[4] == "party_member", '["sms"]', True, now) for m in district.members))
        log(f"  {len(district.places):,} places, {len(district.members):,} members")
        callbacks: list[tuple[Any, ...]] = []
        notifications: list[tuple[Any, ...]] = []
        taken = time.perf_counter()

        def cases_and_more() -> Iterator[tuple[Any, ...]]:
            for row in _cases(district, cases, now, rng, policies, urgencies):
                case_id, accepted_by = row[0], row[15]
                if row[26] is not None:  # callback_at
                    solved = rng.choices(("yes", "partly", "no"), (86, 8, 6))[0]
                    stars = rng.choices((5, 4, 3, 2, 1), (70, 20, 5, 3, 2))[0]
                    callbacks.append((case_id, True, solved, stars, row[26]))
                delivered = "delivered" if rng.random() < 0.95 else "failed"
                notifications.append((case_id, accepted_by, "sms", "+8613800000000", "alert",
                                      "…", delivered,
                                      f"h{case_id}", 1, row[20], row[19]))
                yield row

        count = _copy(conn, "case", CASE_COLUMNS, cases_and_more())
        log(f"  {count:,} cases in {time.perf_counter() - taken:.1f} s")
        _copy(conn, "callback", ["case_id", "contacted", "solved", "satisfaction", "at"],
              iter(callbacks))
        _copy(conn, "notification", ["case_id", "member_id", "channel", "to_address", "purpose",
                                     "body", "status", "dedupe_key", "attempts", "sent_at",
                                     "created_at"], iter(notifications))
        log(f"  {len(callbacks):,} callbacks, {len(notifications):,} notifications")
        for table in ("place", "member", "case"):
            conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                                 f"(SELECT max(id) FROM \"{table}\"))"))
        for table in ("case", "notification", "callback"):
            conn.execute(sa.text(f'ALTER TABLE "{table}" ENABLE TRIGGER USER'))
        db.session.commit()
        totals.rebuild()
        daily.rebuild()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as auto:
            auto.execute(sa.text("VACUUM ANALYZE"))
    with app.app_context():
        db.engine.dispose()
    return {"cases": count, "callbacks": len(callbacks), "notifications": len(notifications),
            "places": len(district.places), "members": len(district.members),
            "seconds": time.perf_counter() - started, "app": app}


def bench_arguments(description: str) -> Any:
    """The command line the benchmarks over a generated history share: where, how much, and
    whether to reuse or keep the schema."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--communities", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--schema", help="reuse (or create) this schema instead of a new one")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    parser.add_argument("--only", choices=("district",),
                        help="time only this (with the baseline), where the benchmark allows")
    return parser.parse_args()


def ensure(url: str, schema: str, *, cases: int, communities: int) -> bool:
    """Generate the history into `schema` unless it holds one already; True if generated."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        exists = conn.execute(sa.text(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = :s "
            "AND table_name = 'case'"), {"s": schema}).scalar()
    engine.dispose()
    if exists:
        return False
    print(f"Generating {cases:,} cases across {communities} communities into schema {schema}…")
    made = generate(url, schema, cases=cases, communities=communities, log=print)
    print(f"  done in {made['seconds']:.0f} s")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schema", required=True, help="PostgreSQL schema to create and fill")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--communities", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drop", action="store_true", help="drop the schema and stop")
    args = parser.parse_args()
    if args.drop:
        drop(args.database_url, args.schema)
        print(f"dropped schema {args.schema}")
        return
    result = generate(args.database_url, args.schema, cases=args.cases,
                      communities=args.communities, seed=args.seed)
    print(f"schema {args.schema}: {result['cases']:,} cases across {args.communities} "
          f"communities in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
