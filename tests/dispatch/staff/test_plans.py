"""The console's requests read a district's history through indexes, never by scanning it.

Timing tests would be flaky on a shared machine; the query plans are not. Each request below
runs against a history of 100,000 cases and as many messages (20 communities, a year), and
every statement it sends is EXPLAINed with its own parameters: none may read the case, outbox
or callback table whole. docs/benchmarks.md has the timings at 1,000,000 cases.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import clock
from dispatch.db import db
from dispatch.models import Case, Community, StaffRole
from dispatch.staff import auth
from tests.factories import import_community, login, small_community
from tests.sql import sent

#: The tables that grow with every case, filled here; a plan must not read any of them whole.
HISTORY = ('"case"', "notification", "callback")
SCANS = re.compile(r"Seq Scan on (\S+)")


def history(app: Flask) -> dict[str, Any]:
    """A district of 20 communities with 100,000 cases over the last year, each with a
    message, most closed ones with a callback; community TS, with an admin login, has 5,000
    of them, 250 open (of every state and urgency)."""
    with app.app_context():
        here = import_community(small_community())
        others = [Community(code=f"O{n:02d}", name=f"别的社区{n}", hotline="0752-7654321",
                            timezone="Asia/Shanghai", settings=here.settings,
                            created_at=clock.now()) for n in range(19)]
        db.session.add_all(others)
        db.session.flush()
        auth.create_user(here, "admin", "测试员", "correct horse", StaffRole.ADMIN)
        now = clock.now()
        values = {"now": now, "ids": [here.id, *(c.id for c in others)]}
        db.session.execute(sa.text(
            "INSERT INTO \"case\" (community_id, place_id, category, urgency, status, resolution,"
            " open_key, public_token, report_count, policy, rung, step, token, reported_at,"
            " accepted_at, reopen_count)"
            " SELECT (:ids)[1 + i % 20], p.id, 'repair',"
            " (ARRAY['urgent', 'normal', 'low'])[1 + i / 20 % 3],"
            " CASE WHEN i % 400 < 20 THEN (ARRAY['open', 'accepted', 'on_site'])[1 + i / 60 % 3]"
            "      ELSE 'closed' END,"
            " CASE WHEN i % 400 < 20 THEN NULL ELSE 'fixed' END,"
            " CASE WHEN i % 400 < 20 THEN 'k' || i END, 'token-' || i, 1,"
            " '{\"rung_minutes\": 30, \"on_site_minutes\": 60}', 1, 0, 0,"
            " :now - (i * interval '315 seconds'),"
            " CASE WHEN i % 5 > 0 THEN :now - (i * interval '315 seconds') + interval '9 minutes'"
            " END, 0"
            " FROM generate_series(1, 100000) AS i, (SELECT * FROM place LIMIT 1) AS p"), values)
        db.session.execute(sa.text(
            "INSERT INTO notification (case_id, channel, to_address, purpose, body, status,"
            " dedupe_key, attempts, created_at)"
            " SELECT id, 'sms', '+8613800138001', 'alert', 'text', 'delivered', 'n-' || id, 1,"
            " reported_at FROM \"case\""))
        db.session.execute(sa.text(
            "INSERT INTO callback (case_id, contacted, solved, satisfaction, at)"
            " SELECT id, true, 'yes', 5, reported_at + interval '2 days' FROM \"case\""
            " WHERE status = 'closed' AND id % 4 > 0"))
        db.session.commit()
        # As autovacuum leaves a table that has settled: statistics, and the visibility map
        # that lets a count be answered from an index alone.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as auto:
            auto.execute(sa.text('VACUUM ANALYZE "case", notification, callback'))
        cases = {
            "open": db.session.scalar(sa.select(Case.id).where(
                Case.community_id == here.id, Case.status == "open").limit(1)),
            "closed": db.session.scalar(sa.select(Case.id).where(
                Case.community_id == here.id, Case.status == "closed").limit(1)),
            "grid": db.session.scalar(sa.text("SELECT id FROM place WHERE code = 'TS-G1'")),
        }
        local = clock.local(now, here.timezone)
        last = local.replace(day=1) - timedelta(days=1)
        db.session.commit()
    return {**cases, "month": f"{last.year}-{last.month:02d}"}


def plans(app: Flask, seen: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """(statement, its plan) for each SELECT seen (`tests.sql.sent`)."""
    found = []
    with app.app_context():
        connection = db.session.connection()
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            plan = "\n".join(row[0] for row in connection.exec_driver_sql(
                "EXPLAIN " + statement, parameters))
            found.append((statement, plan))
        db.session.rollback()
    return found


def assert_no_history_scan(found: list[tuple[str, str]]) -> None:
    for statement, plan in found:
        scanned = set(SCANS.findall(plan)) & set(HISTORY)
        assert not scanned, f"{statement[:600]}\n{plan[:2000]}"


@pytest.fixture
def district(pg_app: Flask) -> dict[str, Any]:
    return history(pg_app)


@pytest.mark.postgres
def test_the_board_reads_only_the_open_cases_that_match_from_their_index(
        pg_app: Flask, district: dict[str, Any]) -> None:
    """A filter on state or urgency is checked on the index entry, so the board's list and
    count of matching open cases visit only the rows that match, however many are open."""
    client = pg_app.test_client()
    assert login(client).status_code == 302
    for filters in ("", "?urgency=urgent", "?status=on_site", "?urgency=low&status=accepted",
                    f"?grid={district['grid']}"):
        with sent(pg_app) as seen:
            assert client.get("/staff/cases/live" + filters).status_code == 200
        found = plans(pg_app, seen)
        assert_no_history_scan(found)
        board = [(statement, plan) for statement, plan in found
                 if 'FROM "case"' in statement and "status IN" in statement]
        assert board, f"{filters}: the board asked for no open cases"
        for statement, plan in board:
            assert "ix_case_open" in plan, f"{filters}\n{statement}\n{plan}"
            filtered = [line for line in plan.splitlines() if "Filter:" in line]
            assert not any("urgency" in line or "status" in line for line in filtered), \
                f"{filters}\n{plan}"


@pytest.mark.postgres
def test_the_case_page_month_report_and_a_first_scrape_read_through_indexes(
        pg_app: Flask, district: dict[str, Any]) -> None:
    """The case page reads one case's rows; the month report the month's cases (an index on
    the report time); and `/metrics`, even a new process's first scrape, reads
    cases by state, the time-to-accept histogram and messages by outcome from the tallies the
    database keeps (`metrics.totals`), not from the history."""
    client = pg_app.test_client()
    assert login(client).status_code == 302
    for which in ("open", "closed"):
        with sent(pg_app) as seen:
            assert client.get(f"/staff/cases/{district[which]}").status_code == 200
        assert_no_history_scan(plans(pg_app, seen))
    with sent(pg_app) as seen:
        assert client.get(f"/staff/reports/{district['month']}.xlsx").status_code == 200
    found = plans(pg_app, seen)
    assert_no_history_scan(found)
    listed = [plan for statement, plan in found if 'ORDER BY "case".reported_at' in statement]
    assert listed, found
    bounded = [line for line in listed[0].splitlines()
               if "Index Cond" in line and "reported_at >=" in line]
    assert bounded, listed[0]  # the month's bounds bound the index read
    with sent(pg_app) as seen:
        body = pg_app.test_client().get("/metrics").get_data(as_text=True)
    assert 'linli_cases{community="TS",status="closed"} 4750.0' in body
    assert "linli_case_time_to_accept_seconds_count 80000.0" in body
    found = plans(pg_app, seen)
    assert_no_history_scan(found)
    for statement, plan in found:  # only the backlog and the sweeper's lag look at the rows
        assert 'on "case"' not in plan or "next_step_at" in statement, plan
        assert "on notification" not in plan or "notification.status" in statement, plan
