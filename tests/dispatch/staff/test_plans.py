"""The console's requests read a district's history through indexes, never by scanning it.

Timing tests would be flaky on a shared machine; the query plans are not. Each request below
runs against a history of 60,000 cases and as many messages (two communities, a year), and
every statement it sends is EXPLAINed with its own parameters: none may read the case, outbox
or callback table whole. docs/benchmarks.md has the timings at 1,000,000 cases.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
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

#: The tables that grow with every case; a plan must not read any of them whole.
HISTORY = ('"case"', "notification", "callback", "report", "case_event", "tally_change")
SCANS = re.compile(r"Seq Scan on (\S+)")


def history(app: Flask) -> dict[str, Any]:
    """Community TS with 20,000 cases over the last year (1,000 of them open, of every state
    and urgency) and another community with 40,000, each case with a message, most closed
    ones with a callback; an admin login for TS."""
    with app.app_context():
        here = import_community(small_community())
        other = Community(code="OT", name="别的社区", hotline="0752-7654321",
                          timezone="Asia/Shanghai", settings=here.settings,
                          created_at=clock.now())
        db.session.add(other)
        db.session.flush()
        auth.create_user(here, "admin", "测试员", "correct horse", StaffRole.ADMIN)
        now = clock.now()
        values = {"now": now, "here": here.id, "other": other.id}
        db.session.execute(sa.text(
            "INSERT INTO \"case\" (community_id, place_id, category, urgency, status, resolution,"
            " open_key, public_token, report_count, policy, rung, step, token, reported_at,"
            " accepted_at, reopen_count, merged_into_id)"
            " SELECT CASE WHEN i % 3 = 0 THEN :here ELSE :other END, p.id, 'repair',"
            " (ARRAY['urgent', 'normal', 'low'])[1 + i % 7 % 3],"
            " CASE WHEN i % 60 = 0 THEN (ARRAY['open', 'accepted', 'on_site'])[1 + i % 11 % 3]"
            "      ELSE 'closed' END,"
            " CASE WHEN i % 60 = 0 THEN NULL ELSE 'fixed' END,"
            " CASE WHEN i % 60 = 0 THEN 'k' || i END, 'token-' || i, 1,"
            " '{\"rung_minutes\": 30, \"on_site_minutes\": 60}', 1, 0, 0,"
            " :now - (i * interval '525 seconds'),"
            " CASE WHEN i % 5 > 0 THEN :now - (i * interval '525 seconds') + interval '9 minutes'"
            " END, 0, NULL"
            " FROM generate_series(1, 60000) AS i, (SELECT * FROM place LIMIT 1) AS p"), values)
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
            auto.execute(sa.text('VACUUM ANALYZE "case", notification, callback, tally_change'))
        cases = {
            "open": db.session.scalar(sa.select(Case.id).where(
                Case.community_id == here.id, Case.status == "open").limit(1)),
            "closed": db.session.scalar(sa.select(Case.id).where(
                Case.community_id == here.id, Case.status == "closed").limit(1)),
        }
        cases["grid"] = db.session.scalar(sa.text("SELECT id FROM place WHERE code = 'TS-G1'"))
        local = clock.local(now, here.timezone)
        last = local.replace(day=1) - timedelta(days=1)
        db.session.commit()
    return {**cases, "month": f"{last.year}-{last.month:02d}"}


@contextmanager
def statements(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT the app sends meanwhile, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def heard(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", heard)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", heard)


def plans(app: Flask, seen: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """(statement, its plan) for each statement seen."""
    found = []
    with app.app_context():
        connection = db.session.connection()
        for statement, parameters in seen:
            plan = "\n".join(row[0] for row in connection.exec_driver_sql(
                "EXPLAIN " + statement, parameters))
            found.append((statement, plan))
        db.session.rollback()
    return found


def assert_no_history_scan(found: list[tuple[str, str]]) -> None:
    for statement, plan in found:
        scanned = set(SCANS.findall(plan)) & set(HISTORY)
        assert not scanned, f"{statement}\n{plan}"


@pytest.fixture
def district(pg_app: Flask) -> dict[str, Any]:
    return history(pg_app)


@pytest.mark.postgres
@pytest.mark.parametrize("filters", ["", "?urgency=urgent", "?status=on_site",
                                     "?urgency=low&status=accepted", "?grid={grid}"])
def test_the_board_reads_only_the_open_cases_that_match_from_their_index(
        pg_app: Flask, district: dict[str, Any], filters: str) -> None:
    """A filter on state or urgency is checked on the index entry, so the board's count of
    matching open cases never visits the table, however many are open."""
    client = pg_app.test_client()
    assert login(client).status_code == 302
    with statements(pg_app) as seen:
        assert client.get("/staff/cases/live" + filters.format(**district)).status_code == 200
    found = plans(pg_app, seen)
    assert_no_history_scan(found)
    board = [plan for statement, plan in found
             if statement.lstrip().startswith("SELECT") and 'FROM "case"' in statement
             and "status IN" in statement]
    assert board, "the board asked for no open cases"
    for plan in board:
        assert "ix_case_open" in plan, plan
    if "urgency" in filters or "status" in filters:
        counted = [plan for statement, plan in found
                   if statement.startswith("SELECT count(") and "status IN" in statement]
        assert counted and all("Index Only Scan using ix_case_open" in p for p in counted), \
            counted


@pytest.mark.postgres
@pytest.mark.parametrize("which", ["open", "closed"])
def test_the_case_page_reads_one_case_through_indexes(
        pg_app: Flask, district: dict[str, Any], which: str) -> None:
    client = pg_app.test_client()
    assert login(client).status_code == 302
    with statements(pg_app) as seen:
        assert client.get(f"/staff/cases/{district[which]}").status_code == 200
    assert_no_history_scan(plans(pg_app, seen))


@pytest.mark.postgres
def test_the_month_report_reads_the_months_cases_through_an_index(
        pg_app: Flask, district: dict[str, Any]) -> None:
    client = pg_app.test_client()
    assert login(client).status_code == 302
    with statements(pg_app) as seen:
        response = client.get(f"/staff/reports/{district['month']}.xlsx")
        assert response.status_code == 200
    found = plans(pg_app, seen)
    assert_no_history_scan(found)
    listed = [plan for statement, plan in found if "ORDER BY \"case\".reported_at" in statement]
    assert listed and "ix_case_figures" in listed[0], listed


@pytest.mark.postgres
def test_a_first_scrape_of_metrics_reads_no_history(pg_app: Flask,
                                                    district: dict[str, Any]) -> None:
    """Cases by state, the time-to-accept histogram and messages by outcome come from the
    tallies the database keeps, so even a new process's first scrape reads a few rows."""
    with statements(pg_app) as seen:
        body = pg_app.test_client().get("/metrics").get_data(as_text=True)
    assert 'linli_cases{community="TS",status="closed"}' in body
    assert "linli_case_time_to_accept_seconds_count 48000.0" in body
    found = plans(pg_app, seen)
    assert_no_history_scan(found)
    for statement, plan in found:
        assert "Scan on \"case\"" not in plan or "next_step_at" in statement, plan
        assert "Scan on notification" not in plan or "status" in statement, plan
