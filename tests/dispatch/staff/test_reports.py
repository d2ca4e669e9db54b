"""The monthly report read back as a spreadsheet program would, the CSVs, the JSON API and the
dashboard page."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from openpyxl import load_workbook

from tests.dispatch.staff.conftest import client_for
from tests.dispatch.staff.history import EXPECTED

#: The figures of each grid in March (see `history.march`): grid 1 holds A B C D G J.
GRID1 = {"案件数": 6, "应响应": 5, "按时响应": 3, "响应率": 0.6, "应回访": 5, "回访答复": 3,
         "回访率": 0.6, "已解决": 1, "部分解决": 1, "未解决": 1, "解决率": 1 / 3,
         "部分解决率": 1 / 3, "满意": 1, "满意率": 1 / 3, "办结": 5, "楼栋办结": 2,
         "网格办结": 1, "社区办结": 1, "上报街道/区": 0, "楼栋办结占比": 0.4,
         "上报占比": 0.0, "接单用时中位数（分）": 15.0, "紧急超时": 1, "一般超时": 1,
         "较低超时": 0, "到场超时": 2}
GRID2 = {"案件数": 2, "应响应": 2, "按时响应": 1, "响应率": 0.5, "应回访": 1, "回访答复": 1,
         "回访率": 1.0, "解决率": 1.0, "满意率": 1.0, "办结": 1, "上报街道/区": 1,
         "上报占比": 1.0, "楼栋办结占比": 0.0, "接单用时中位数（分）": 120.0, "较低超时": 0,
         "一般超时": 1}
TOTAL = {"案件数": 8, "应响应": 7, "按时响应": 4, "响应率": 4 / 7, "回访率": 4 / 6,
         "解决率": 0.5, "部分解决率": 0.25, "满意率": 0.5, "办结": 6, "楼栋办结占比": 2 / 6,
         "网格办结占比": 1 / 6, "社区办结占比": 1 / 6, "上报占比": 1 / 6,
         "接单用时中位数（分）": 20.0, "接单用时P90（分）": 90.0,
         "解决用时中位数（分）": 240.0, "解决用时P90（分）": 1116.0}


def _rows(sheet: Any, header_row: int) -> dict[str, dict[str, Any]]:
    header = [c.value for c in sheet[header_row]]
    return {row[0]: dict(zip(header, row, strict=True))
            for row in sheet.iter_rows(min_row=header_row + 1, values_only=True)}


def test_the_monthly_workbook_has_the_right_numbers(app: Flask, console: dict[str, Any]) -> None:
    response = client_for(app, "admin").get("/staff/reports/2026-03.xlsx")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="TS-2026-03.xlsx"'
    book = load_workbook(io.BytesIO(response.data))
    assert book.sheetnames == ["汇总", "案件", "口径说明"]
    summary = book["汇总"]
    assert "2026年03月" in summary["A1"].value
    rows = _rows(summary, 4)
    assert list(rows) == ["第一网格", "第二网格", "合计"]
    for name, expected in (("第一网格", GRID1), ("第二网格", GRID2), ("合计", TOTAL)):
        assert {k: rows[name][k] for k in expected} == pytest.approx(expected), name
    assert summary["E5"].number_format == "0.0%"  # 响应率 shows as a percentage


def test_the_workbook_lists_every_case_of_the_month(app: Flask, console: dict[str, Any]) -> None:
    book = load_workbook(io.BytesIO(client_for(app, "admin").get(
        "/staff/reports/2026-03.xlsx").data))
    cases = _rows(book["案件"], 1)
    assert len(cases) == 9  # the eight cases and the duplicate, which the summary leaves out
    lift = next(row for row in cases.values()
                if row["类别"] == "电梯故障" and row["结果"] == "已解决")
    assert lift["反映时间"] == datetime(2026, 3, 2, 10, 0)  # local time
    assert lift["接单用时（分）"] == 3.0 and lift["按时接单"] == "是"
    assert lift["接单层级"] == "楼栋" and lift["回访结果"] == "已解决" and lift["满意度"] == 5
    assert lift["网格"] == "第一网格" and lift["楼栋"] == "1栋"
    assert [row["结果"] for row in cases.values()].count("重复") == 1
    spam = next(row for row in cases.values() if row["反映时间"] == datetime(2026, 3, 31, 23, 50))
    assert spam["按时接单"] is None  # never due: left blank


def test_the_summary_csv_matches_the_workbook(app: Flask, console: dict[str, Any]) -> None:
    response = client_for(app, "admin").get("/staff/reports/2026-03/summary.csv")
    assert response.data.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
    total = rows[-1]
    assert total["网格"] == "合计" and total["案件数"] == "8"
    assert float(total["响应率"]) == pytest.approx(4 / 7, abs=1e-4)
    assert float(total["满意率"]) == 0.5 and total["上报街道/区"] == "1"


def test_the_reports_page_links_the_last_twelve_months(app: Flask,
                                                       console: dict[str, Any]) -> None:
    page = client_for(app, "viewer").get("/staff/reports").get_data(as_text=True)
    assert page.count(".xlsx</a>") == 12 and "/summary.csv" in page


def test_the_api_gives_every_figure_and_breakdowns(app: Flask, console: dict[str, Any]) -> None:
    client = client_for(app, "viewer")
    body = client.get("/staff/api/metrics?from=2026-03-01&to=2026-03-31&by=week").get_json()
    figures = body["figures"]
    assert {k: figures[k] for k in ("cases", "due", "response_rate", "solve_rate")} == \
        pytest.approx({k: EXPECTED[k] for k in ("cases", "due", "response_rate", "solve_rate")})
    assert figures["seconds"]["accept"]["p90"] == pytest.approx(5400.0)
    assert body["groups"][0]["key"] == "2026-03-02" and body["groups"][0]["figures"]["cases"] == 2
    assert sum(body["accept_histogram"]["counts"]) == 5
    assert client.get("/staff/api/metrics?by=colour").status_code == 400
    assert client.get("/staff/api/metrics?month=2026-13").status_code == 400
    assert app.test_client().get("/staff/api/metrics").status_code == 401


def test_the_dashboard_draws_its_charts_on_the_server(app: Flask, console: dict[str, Any]) -> None:
    page = client_for(app, "admin").get("/staff/dashboard?month=2026-03").get_data(as_text=True)
    assert page.count("<svg") == 7
    for text in ("响应率", "57.1%", "解决率", "50.0%", "部分解决 25.0%", "满意率", "回访率",
                 "每周案件数", "各网格三率", "接单用时分布", "办结层级", "第一网格", "第二网格"):
        assert text in page, text
    assert "http://" not in page.split("</header>")[1].replace("http://www.w3.org/2000/svg", "")
