"""The monthly report read back as a spreadsheet program would, the CSVs, the JSON API and the
dashboard page."""

from __future__ import annotations

import csv
import io
import unicodedata
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from openpyxl import load_workbook

from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Case, StaffUser
from tests import factories
from tests.dispatch.staff.conftest import client_for
from tests.dispatch.staff.history import EXPECTED, busy_month, local

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
    assert total["响应率"] == "57.1%" and total["满意率"] == "50.0%"  # as the workbook shows them
    assert total["上报街道/区"] == "1" and total["接单用时P90（分）"] == "90"


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
    for bad in ("month=2026-13", "month=0001-01", "from=2026-03-31&to=2026-03-01", "days=x"):
        answer = client.get(f"/staff/api/metrics?{bad}")
        assert answer.status_code == 400 and answer.is_json, bad  # the API answers in JSON
        assert answer.get_json()["error"].startswith(bad.split("=")[0]), answer.get_json()
    assert app.test_client().get("/staff/api/metrics").status_code == 401


def test_the_dashboard_draws_its_charts_on_the_server(app: Flask, console: dict[str, Any]) -> None:
    page = client_for(app, "admin").get("/staff/dashboard?month=2026-03").get_data(as_text=True)
    assert page.count("<svg") == 7
    for text in ("响应率", "57.1%", "解决率", "50.0%", "部分解决 25.0%", "满意率", "回访率",
                 "每周案件数", "各网格三率", "接单用时分布", "办结层级", "第一网格", "第二网格"):
        assert text in page, text
    assert "http://" not in page.split("</header>")[1].replace("http://www.w3.org/2000/svg", "")


def text_width(text: str) -> int:
    """Excel's width units: a Chinese (wide) character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _rendered(value: Any, number_format: str) -> str:
    """A cell's value as Excel shows it, for the formats the report uses."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if number_format == "0.0%":
        return f"{value * 100:.1f}%"
    if number_format == "0.0":
        return f"{value:.1f}"
    return str(value)


def test_columns_are_as_wide_as_their_values_and_long_text_wraps(app: Flask,
                                                                 console: dict[str, Any]) -> None:
    with app.app_context():
        busy_month(12)
    book = load_workbook(io.BytesIO(client_for(app, "admin").get(
        "/staff/reports/2026-03.xlsx").data))
    for sheet, header_row in ((book["案件"], 1), (book["汇总"], 4)):
        header = [c.value for c in sheet[header_row]]
        for column in sheet.iter_cols(min_row=header_row + 1):
            name = header[column[0].column - 1]
            width = sheet.column_dimensions[column[0].column_letter].width
            for cell in column:
                shown = _rendered(cell.value, cell.number_format)
                if cell.alignment.wrap_text:  # long text wraps: a line holds some characters
                    assert width >= 20, (sheet.title, name)
                else:  # the whole value fits: no ### and nothing cut off
                    assert text_width(shown) + 1 <= width, (sheet.title, name, shown, width)
    cases = book["案件"]
    widths = {c.value: cases.column_dimensions[c.column_letter].width for c in cases[1]}
    assert widths["诉求内容"] <= 40 and widths["办理结果"] <= 40
    assert widths["编号"] < 16 and widths["满意度"] < 10  # narrow columns stay narrow


def test_every_sheet_prints_a4_landscape_one_page_wide_with_the_header_on_each_page(
        app: Flask, console: dict[str, Any]) -> None:
    book = load_workbook(io.BytesIO(client_for(app, "admin").get(
        "/staff/reports/2026-03.xlsx").data))
    for name, titles in (("汇总", "$4:$4"), ("案件", "$1:$1"), ("口径说明", None)):
        sheet = book[name]
        assert sheet.page_setup.orientation == "landscape", name
        assert int(sheet.page_setup.paperSize) == 9, name  # A4
        assert sheet.sheet_properties.pageSetUpPr.fitToPage, name
        assert (sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight) == (1, 0), name
        assert sheet.print_title_rows == titles, name
        assert "&P" in sheet.oddFooter.center.text and "&N" in sheet.oddFooter.center.text
    summary = book["汇总"]
    header = [c.value for c in summary[4]]
    for column, heading in enumerate(header, start=1):
        if heading.endswith(("率", "占比")):
            assert summary.cell(row=5, column=column).number_format == "0.0%", heading


def test_the_case_sheet_quotes_the_residents_and_the_outcome_without_phone_numbers(
        app: Flask, console: dict[str, Any]) -> None:
    with app.app_context():
        lamp = factories.place("TS-B2-U1")
        filed = file_report(lamp, "repair", text="=楼道灯不亮了，联系我 138 0013 8000",
                            now=local("03-29 19:00"))
        file_report(lamp, "repair", text="我家门口也黑", now=local("03-29 19:30"))
        file_report(lamp, "repair", now=local("03-29 19:40"))  # a report without words
        lifecycle.resolve(filed.case.id, factories.member("L1").id,
                           "换了灯泡，有事打0752-2345678", now=local("03-30 09:00"))
        waiting = db.session.get(Case, console["cases"]["F"])
        staff = db.session.scalar(sa.select(StaffUser).where(StaffUser.username == "admin"))
        lifecycle.close(waiting, staff, fixed=False, note="居民已搬走，电话13900001111停机",
                       now=local("03-31 10:00"))
        db.session.commit()
    book = load_workbook(io.BytesIO(client_for(app, "admin").get(
        "/staff/reports/2026-03.xlsx").data))
    cases = _rows(book["案件"], 1)
    lamp_row = next(row for row in cases.values() if row["反映时间"] == datetime(2026, 3, 29, 19))
    assert lamp_row["诉求内容"] == "=楼道灯不亮了，联系我 [电话]（另有 2 次反映）"
    assert lamp_row["办理结果"] == "李建国：已解决。换了灯泡，有事打[电话]"
    closed = next(row for row in cases.values() if row["反映时间"] == datetime(2026, 3, 25, 10))
    assert closed["办理结果"] == "工作人员办结（未解决）：居民已搬走，电话[电话]停机"
    duplicate = next(row for row in cases.values() if row["结果"] == "重复")
    assert duplicate["办理结果"] == "重复"  # no timeline line: the resolution in words
    sheet = book["案件"]
    words = next(c.column_letter for c in sheet[1] if c.value == "诉求内容")
    cell = next(c for c in sheet[words] if str(c.value).startswith("=楼道"))
    assert cell.data_type == "s"  # a resident's words are never a formula
    text = client_for(app, "admin").get("/staff/reports/2026-03/cases.csv").data.decode()
    for digits in ("13800138000", "138 0013 8000", "2345678", "13900001111"):
        assert digits not in text
    assert "'=楼道灯不亮了" in text
