"""The monthly report for the district: 三率 and ladder retention per grid, and the case list.

The same two tables are written as an Excel workbook (a summary sheet, a case sheet and a
sheet of definitions) and as CSV files. Numbers stay numbers in the workbook (rates carry a
percent format, durations are minutes) so the district can add them up.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from dispatch import clock, exports, metrics
from dispatch.community import settings
from dispatch.db import db
from dispatch.metrics import Figures, Period, Scope
from dispatch.models import Case, Community, Member, Place, Urgency
from dispatch.staff.cases import RESOLUTION_NAMES, RUNG_NAMES, STATUS_NAMES

URGENCY_NAMES = {Urgency.URGENT: "紧急", Urgency.NORMAL: "一般", Urgency.LOW: "较低"}
PERCENT, MINUTES = "0.0%", "0.0"

#: Summary columns: heading, how to read it off a `Figures`, and its number format.
SUMMARY_COLUMNS: tuple[tuple[str, Any, str | None], ...] = (
    ("案件数", lambda f: f.cases, None),
    ("应响应", lambda f: f.due, None),
    ("按时响应", lambda f: f.on_time, None),
    ("响应率", lambda f: f.response_rate, PERCENT),
    ("应回访", lambda f: f.callbacks_due, None),
    ("回访答复", lambda f: f.answered, None),
    ("回访率", lambda f: f.callback_rate, PERCENT),
    ("已解决", lambda f: f.solved, None),
    ("部分解决", lambda f: f.partly, None),
    ("未解决", lambda f: f.not_solved, None),
    ("解决率", lambda f: f.solve_rate, PERCENT),
    ("部分解决率", lambda f: f.partly_rate, PERCENT),
    ("满意", lambda f: f.satisfied, None),
    ("满意率", lambda f: f.satisfaction_rate, PERCENT),
    ("办结", lambda f: f.closed, None),
    ("楼栋办结", lambda f: f.ladder["building"], None),
    ("网格办结", lambda f: f.ladder["grid"], None),
    ("社区办结", lambda f: f.ladder["community"], None),
    ("上报街道/区", lambda f: f.ladder["referred"], None),
    ("楼栋办结占比", lambda f: f.retention()["building"], PERCENT),
    ("网格办结占比", lambda f: f.retention()["grid"], PERCENT),
    ("社区办结占比", lambda f: f.retention()["community"], PERCENT),
    ("上报占比", lambda f: f.retention()["referred"], PERCENT),
    ("接单用时中位数（分）", lambda f: _minutes(f.accept.median), MINUTES),
    ("接单用时P90（分）", lambda f: _minutes(f.accept.p90), MINUTES),
    ("解决用时中位数（分）", lambda f: _minutes(f.resolve.median), MINUTES),
    ("解决用时P90（分）", lambda f: _minutes(f.resolve.p90), MINUTES),
    ("紧急超时", lambda f: f.tiers["urgent"].late, None),
    ("一般超时", lambda f: f.tiers["normal"].late, None),
    ("较低超时", lambda f: f.tiers["low"].late, None),
    ("到场超时", lambda f: sum(t.on_site_late for t in f.tiers.values()), None),
)

CASE_COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("编号", None), ("反映时间", "yyyy-mm-dd hh:mm"), ("类别", None), ("紧急程度", None),
    ("网格", None), ("楼栋", None), ("地点", None), ("状态", None), ("结果", None),
    ("接单时间", "yyyy-mm-dd hh:mm"), ("接单人", None), ("接单层级", None),
    ("接单用时（分）", MINUTES), ("按时接单", None), ("到场时间", "yyyy-mm-dd hh:mm"),
    ("解决时间", "yyyy-mm-dd hh:mm"), ("办结时间", "yyyy-mm-dd hh:mm"), ("办结层级", None),
    ("回访结果", None), ("满意度", None), ("反映人次", None),
)

DEFINITIONS = (
    ("统计范围", "本月内反映（首次报告）的案件，按报表生成时的处理结果统计；"
                "重复案件（已合并）不计。"),
    ("响应率", "按时接单 ÷ 应响应。按时接单：在案件自带派单规则的首级时限（rung_minutes，"
              "默认紧急 5 分钟、一般 30 分钟、较低 4 小时）内有人接单。应响应：已接单，或时限已过"
              "而案件仍未办结的案件。"),
    ("解决率", "回访答复“已解决” ÷ 回访答复；“部分解决”单列，不计入解决。每个案件取最近一次答复。"),
    ("满意率", "回访满意度 4–5 分（满意、基本满意） ÷ 回访答复。"),
    ("回访率", "有回访答复的案件 ÷ 应回访（已解决或已办结）的案件；未联系上的回访不算答复。"),
    ("办结层级", "已办结案件在楼栋 / 网格 / 社区层级办结，或上报街道/区（转办）的占比。"),
    ("用时", "接单、到场、解决用时均自居民首次反映起算，给出中位数和第 90 百分位（线性插值，"
            "与 Excel PERCENTILE.INC 相同）。"),
    ("到场超时", "接单后未在派单规则的到场时限（on_site_minutes）内到场（或解决、办结）。"),
)


@dataclass(frozen=True, slots=True)
class Table:
    """A heading row and data rows, with a number format per column (None: as is)."""

    header: list[str]
    formats: list[str | None]
    rows: list[list[Any]]


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def summary_table(by_grid: Sequence[tuple[str, Figures]], total: Figures) -> Table:
    """One row per grid and a total row (the total is computed over all cases, not summed)."""
    rows = [[name, *(read(f) for _, read, _ in SUMMARY_COLUMNS)]
            for name, f in [*by_grid, ("合计", total)]]
    return Table(["网格", *(h for h, _, _ in SUMMARY_COLUMNS)],
                 [None, *(fmt for _, _, fmt in SUMMARY_COLUMNS)], rows)


def case_table(scope: Scope, period: Period, now: datetime) -> Table:
    """Every case of the scope reported in the period, oldest first, with its figures."""
    community = db.session.get_one(Community, scope.community_id)
    zone = clock.zone(community.timezone)
    places = {p.id: p for p in db.session.scalars(
        sa.select(Place).where(Place.community_id == community.id))}
    names = {c.code: c.name for c in settings.categories(community)}
    metrics.without_jit()
    levels = metrics.place_levels(community.id)
    answer, on = metrics.latest_answer()
    query = (sa.select(Case, levels.c.grid_id, levels.c.building_id, Member.name,
                       answer.c.solved, answer.c.satisfaction)
             .join(levels, levels.c.place_id == Case.place_id)
             .outerjoin(Member, Member.id == Case.accepted_by_id)
             .outerjoin(answer, on)
             .where(Case.community_id == community.id, Case.reported_at >= period.start,
                    Case.reported_at < period.end)
             .order_by(Case.reported_at, Case.id))
    for column, wanted in ((levels.c.grid_id, scope.grid_id),
                           (levels.c.building_id, scope.building_id),
                           (Case.accepted_by_id, scope.member_id),
                           (Case.category, scope.category), (Case.accepted_rung, scope.rung)):
        if wanted is not None:
            query = query.where(column == wanted)

    def local(moment: datetime | None) -> datetime | None:
        return clock.as_local_naive(moment, zone)

    rows = []
    for case, grid_id, building_id, member, solved, stars in db.session.execute(query):
        facts = metrics.case_facts(case, grid_id, building_id, solved, stars, community.timezone)
        took = metrics.accept_seconds(facts)
        on_time = ("是" if metrics.accepted_on_time(facts) else "否"
                   ) if metrics.accept_due(facts, now) else ""
        place = places[case.place_id]
        rows.append([
            f"{community.code}-{case.id:06d}", local(case.reported_at),
            names.get(case.category, case.category), URGENCY_NAMES[case.urgency],
            places[grid_id].name if grid_id else "",
            places[building_id].name if building_id else "",
            place.label, STATUS_NAMES[case.status],
            RESOLUTION_NAMES[case.resolution] if case.resolution else "",
            local(case.accepted_at), member or "", RUNG_NAMES.get(case.accepted_rung or 0, ""),
            _minutes(took), on_time, local(case.on_site_at), local(case.resolved_at),
            local(case.closed_at), RUNG_NAMES.get(case.closed_rung or 0, "")
            if case.closed_at else "", {"yes": "已解决", "partly": "部分解决", "no": "未解决"}.get(
                str(solved) if solved else "", ""), stars, case.report_count])
    return Table([h for h, _ in CASE_COLUMNS], [f for _, f in CASE_COLUMNS], rows)


def workbook(title: str, subtitle: str, summary: Table, cases: Table) -> bytes:
    """The report as .xlsx bytes: 汇总 (summary), 案件 (cases) and 口径说明 (definitions)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new Workbook starts with one sheet, active
    sheet.title = "汇总"
    exports.append_row(sheet, [title])
    sheet["A1"].font = Font(bold=True, size=14)
    exports.append_row(sheet, [subtitle])
    sheet.append([])
    _write(sheet, summary, first_row=4)
    _write(book.create_sheet("案件"), cases, first_row=1)
    notes = book.create_sheet("口径说明")
    for term, meaning in DEFINITIONS:
        notes.append([term, meaning])
    notes.column_dimensions["A"].width = 12
    notes.column_dimensions["B"].width = 100
    for row in notes.iter_rows():
        row[1].alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _write(sheet: Any, table: Table, first_row: int) -> None:
    sheet.append(table.header)
    for cell in sheet[first_row]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for row in table.rows:
        exports.append_row(sheet, row)
    for index, fmt in enumerate(table.formats, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = max(8, min(24, 2 * len(table.header[index - 1])))
        if fmt:
            for (cell,) in sheet.iter_rows(min_row=first_row + 1, min_col=index, max_col=index):
                cell.number_format = fmt
    sheet.freeze_panes = sheet.cell(row=first_row + 1, column=2)


def csv_bytes(table: Table) -> bytes:
    """The table as CSV, UTF-8 with a byte-order mark so spreadsheet programs read the Chinese."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.header)
    for row in table.rows:
        writer.writerow([_csv_value(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return exports.csv_cell(value)
