"""A grid secretary sees and exports only their own grid: checked view by view.

`sec2` is the secretary of 第二网格, which holds cases E and F; every other March case is in
第一网格.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from openpyxl import load_workbook

from dispatch.db import db
from dispatch.models import AuditLog, Case, CaseStatus, Photo, Place, Report, ReportKind
from tests.dispatch.staff.conftest import case_row, client_for, post

OWN, OTHER = ("E", "F"), ("A", "B", "C", "D", "G", "J")


def _numbers(app: Flask, letters: tuple[str, ...], console: dict[str, Any]) -> list[str]:
    with app.app_context():
        return [db.session.get(Case, console["cases"][k]).number for k in letters]


def _place_id(app: Flask, code: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(Place.id).where(Place.code == code))


def test_the_board_shows_only_the_secretarys_grid(app: Flask, console: dict[str, Any]) -> None:
    page = client_for(app, "sec1").get("/staff/cases/").get_data(as_text=True)
    own_open, other_open = _numbers(app, ("J",), console), _numbers(app, ("F",), console)
    assert own_open[0] in page and other_open[0] not in page
    page = client_for(app, "sec2").get("/staff/cases/").get_data(as_text=True)
    assert other_open[0] in page and own_open[0] not in page


@pytest.mark.parametrize("letter", OTHER)
def test_another_grids_case_page_is_not_found(app: Flask, console: dict[str, Any],
                                              letter: str) -> None:
    client = client_for(app, "sec2")
    assert client.get(f"/staff/cases/{console['cases'][letter]}").status_code == 404


def test_the_secretarys_own_case_page_opens(app: Flask, console: dict[str, Any]) -> None:
    client = client_for(app, "sec2")
    assert all(client.get(f"/staff/cases/{console['cases'][k]}").status_code == 200 for k in OWN)


@pytest.mark.parametrize("action", ["note", "close", "merge", "callback", "reassign", "refer"])
def test_another_grids_case_cannot_be_changed(app: Flask, console: dict[str, Any],
                                              action: str) -> None:
    client = client_for(app, "sec2")
    target = console["cases"]["J"]
    response = post(client, f"/staff/cases/{target}/{action}",
                    {"text": "x", "fixed": "1", "into": str(console["cases"]["F"])})
    assert response.status_code == 404
    assert case_row(app, target).status == CaseStatus.ACCEPTED


def test_a_case_cannot_be_merged_into_another_grids_case(app: Flask,
                                                         console: dict[str, Any]) -> None:
    client = client_for(app, "sec2")
    own = console["cases"]["F"]
    response = post(client, f"/staff/cases/{own}/merge", {"into": str(console["cases"]["J"])})
    assert response.status_code == 404 and case_row(app, own).status == CaseStatus.OPEN


def test_another_grids_photo_is_not_found(app: Flask, console: dict[str, Any]) -> None:
    with app.app_context():
        case = db.session.get(Case, console["cases"]["A"])
        report = Report(case=case, place_id=case.place_id, kind=ReportKind.MESSAGE,
                        category="elevator", created_at=case.reported_at)
        db.session.add(report)
        db.session.flush()
        photo = Photo(report_id=report.id, content_type="image/png", data=b"x", width=1,
                      height=1)
        db.session.add(photo)
        db.session.commit()
        path = f"/staff/cases/photos/{photo.id}"
    assert client_for(app, "sec2").get(path).status_code == 404
    assert client_for(app, "sec1").get(path).status_code == 200


def test_the_dashboard_counts_only_the_secretarys_grid(app: Flask,
                                                       console: dict[str, Any]) -> None:
    client = client_for(app, "sec2")
    page = client.get("/staff/dashboard?month=2026-03").get_data(as_text=True)
    assert "第二网格" in page and "第一网格" not in page
    assert '<strong>2</strong><small>未办结 1' in page  # E and F only
    grid1 = _place_id(app, "TS-G1")
    assert client.get(f"/staff/dashboard?month=2026-03&grid={grid1}").status_code == 404
    building1 = _place_id(app, "TS-B1")
    assert client.get(f"/staff/dashboard?building={building1}").status_code == 404


def test_the_api_answers_only_for_the_secretarys_grid(app: Flask, console: dict[str, Any]) -> None:
    client = client_for(app, "sec2")
    body = client.get("/staff/api/metrics?month=2026-03&by=grid").get_json()
    grid2 = _place_id(app, "TS-G2")
    assert body["figures"]["cases"] == 2 and [g["key"] for g in body["groups"]] == [grid2]
    for query in (f"grid={_place_id(app, 'TS-G1')}", f"building={_place_id(app, 'TS-B2')}",
                  "grid=TS-G1", "building=TS-B1"):
        assert client.get(f"/staff/api/metrics?month=2026-03&{query}").status_code == 404
    assert client.get("/staff/api/metrics?month=2026-03&by=building").get_json()[
        "figures"]["cases"] == 2


def test_a_grid_or_building_named_by_id_or_code_gives_the_same_figures_on_postgresql(
        app: Flask, console: dict[str, Any]) -> None:
    """The README promises ids or codes; an id once failed on PostgreSQL ("integer =
    character varying") with a 500."""
    client = client_for(app, "admin")
    for kind, code in (("grid", "TS-G2"), ("building", "TS-B3"), ("building", "TS-B1")):
        by_id = client.get(f"/staff/api/metrics?month=2026-03&{kind}={_place_id(app, code)}")
        by_code = client.get(f"/staff/api/metrics?month=2026-03&{kind}={code}")
        assert by_id.status_code == by_code.status_code == 200, (kind, code)
        assert by_id.get_json()["figures"] == by_code.get_json()["figures"]
        page = client.get(f"/staff/dashboard?month=2026-03&{kind}={_place_id(app, code)}")
        assert page.status_code == 200
    assert client.get("/staff/api/metrics?month=2026-03&grid=TS-G2").get_json()[
        "figures"]["cases"] == 2
    assert client.get("/staff/api/metrics?grid=99999999999999999999").status_code == 404


def test_the_workbook_holds_only_the_secretarys_grid(app: Flask, console: dict[str, Any]) -> None:
    response = client_for(app, "sec2").get("/staff/reports/2026-03.xlsx")
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.data))
    summary = [row for row in book["汇总"].iter_rows(min_row=5, values_only=True)]
    assert [row[0] for row in summary] == ["第二网格", "合计"]
    assert summary[-1][1] == 2
    numbers = [row[0] for row in book["案件"].iter_rows(min_row=2, values_only=True)]
    assert sorted(numbers) == sorted(_numbers(app, OWN, console))
    assert client_for(app, "sec2").get(
        f"/staff/reports/2026-03.xlsx?grid={_place_id(app, 'TS-G1')}").status_code == 404


@pytest.mark.parametrize("table", ["summary", "cases"])
def test_the_csv_exports_hold_only_the_secretarys_grid(app: Flask, console: dict[str, Any],
                                                       table: str) -> None:
    client = client_for(app, "sec2")
    text = client.get(f"/staff/reports/2026-03/{table}.csv").data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))[1:]
    if table == "cases":
        assert sorted(r[0] for r in rows) == sorted(_numbers(app, OWN, console))
    else:
        assert [r[0] for r in rows] == ["第二网格", "合计"]
    assert all(n not in text for n in _numbers(app, OTHER, console))
    assert client.get(f"/staff/reports/2026-03/{table}.csv?grid=TS-G1").status_code == 404


def test_the_roster_shows_only_the_secretarys_members(app: Flask, console: dict[str, Any]) -> None:
    page = client_for(app, "sec1").get("/staff/roster/").get_data(as_text=True)
    assert "李建国" in page and "张伟" in page  # the building leader and the grid secretary
    assert "刘芳" not in page  # the community duty desk is the admin's business
    client = client_for(app, "sec2")
    assert "李建国" not in client.get("/staff/roster/").get_data(as_text=True)
    assert client.get("/staff/roster/members/L1").status_code == 404
    response = post(client, "/staff/roster/members/L1/shifts",
                    {"days": "Mon", "starts": "08:00", "ends": "09:00"}, page="/staff/roster/")
    assert response.status_code == 404


def test_the_audit_log_shows_a_secretary_only_their_own_actions(
        app: Flask, console: dict[str, Any]) -> None:
    post(client_for(app, "admin"), f"/staff/cases/{console['cases']['J']}/note", {"text": "a"})
    post(client_for(app, "sec2"), f"/staff/cases/{console['cases']['F']}/note", {"text": "b"})
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditLog).where(
            AuditLog.action == "case.note")) == 2
    j, f = _numbers(app, ("J", "F"), console)
    page = client_for(app, "sec2").get("/staff/audit/").get_data(as_text=True)
    assert f in page and j not in page
    page = client_for(app, "admin").get("/staff/audit/").get_data(as_text=True)
    assert f in page and j in page
