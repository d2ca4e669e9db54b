"""The monthly report for the district: 三率 and ladder retention per grid, and the case list.

The same two tables are written as an Excel workbook (a summary sheet, a case sheet and a
sheet of definitions) and as CSV files. Numbers stay numbers in the workbook (rates carry a
percent format, durations are minutes) so the district can add them up; the CSV writes rates
as the workbook shows them ("57.1%").

The workbook is made to be printed: every sheet is A4 landscape, one page wide, its header
row repeated on each page and the page number in the footer. Columns are as wide as the
longest value they show (a Chinese character takes two of Excel's width units), so a case
number or a time never shows as ###; the residents' words and the outcome wrap in columns of
a fixed width, and each row is made as tall as its longest wrapped text.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.page import PageMargins
from sqlalchemy.dialects import postgresql

from dispatch import clock, exports, metrics
from dispatch.case.timeline import EventKind
from dispatch.community import settings
from dispatch.db import db
from dispatch.metrics import Figures, Period, Scope
from dispatch.models import Case, CaseEvent, Community, Member, Place, PlaceKind, Report
from dispatch.security import without_phones
from dispatch.words import RESOLUTION_NAMES, RUNG_NAMES, STATUS_NAMES, URGENCY_NAMES

PERCENT, MINUTES, TIME = "0.0%", "0.0", "yyyy-mm-dd hh:mm"

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
    ("编号", None), ("反映时间", TIME), ("类别", None), ("紧急程度", None),
    ("网格", None), ("楼栋", None), ("地点", None), ("诉求内容", None), ("状态", None),
    ("结果", None), ("办理结果", None),
    ("接单时间", TIME), ("接单人", None), ("接单层级", None),
    ("接单用时（分）", MINUTES), ("按时接单", None), ("到场时间", TIME),
    ("解决时间", TIME), ("办结时间", TIME), ("办结层级", None),
    ("回访结果", None), ("满意度", None), ("反映人次", None),
)

#: Columns of free text: a fixed width (in Excel's units) they wrap in, whatever they hold.
WRAPPED = {"诉求内容": 34, "办理结果": 28}
#: The widest any other column gets; longer text (a long place label) wraps.
MAX_WIDTH = 24
#: The most characters of a resident's words or of an outcome a case row quotes.
MAX_QUOTE = 120
#: Timeline lines that say how a case was handled, in the 办理结果 column in their order.
OUTCOME_EVENTS = (EventKind.RESOLVED, EventKind.REOPENED, EventKind.REFERRED,
                  EventKind.CLOSED, EventKind.MERGED)
#: Points per line of text at the workbook's font (Calibri 11 and its CJK fallback).
LINE_HEIGHT = 15

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
    """Every case of the scope reported in the period, oldest first, with its figures.

    The month's cases are read along `ix_case_figures` (community, report time) with only the
    columns the sheet shows; each place's grid and building come from the community's places,
    already loaded for their names, rather than from a join to the place tree, whose size the
    planner cannot guess (it then reads the cases of the whole district's month).
    """
    community = db.session.get_one(Community, scope.community_id)
    zone = clock.zone(community.timezone)
    places = {p.id: p for p in db.session.scalars(
        sa.select(Place).where(Place.community_id == community.id))}
    levels = {place_id: (grid.id if (grid := place.ancestor(PlaceKind.GRID)) else None,
                         building.id if (building := place.ancestor(PlaceKind.BUILDING))
                         else None)
              for place_id, place in places.items()}
    names = {c.code: c.name for c in settings.categories(community)}
    metrics.without_jit()
    answer, on = metrics.latest_answer()
    query = (sa.select(Case.id, Case.place_id, Case.category, Case.urgency, Case.status,
                       Case.resolution, Case.reported_at, Case.accepted_at, Case.on_site_at,
                       Case.resolved_at, Case.closed_at, Case.accepted_by_id,
                       Case.accepted_rung, Case.closed_rung, Case.report_count,
                       Case.policy["rung_minutes"].as_float().label("accept_minutes"),
                       Case.policy["on_site_minutes"].as_float().label("on_site_minutes"),
                       Member.name.label("member"), answer.c.solved, answer.c.satisfaction)
             .outerjoin(Member, Member.id == Case.accepted_by_id)
             .outerjoin(answer, on)
             .where(Case.community_id == community.id, Case.reported_at >= period.start,
                    Case.reported_at < period.end)
             .order_by(Case.reported_at, Case.id))
    if scope.grid_id is not None or scope.building_id is not None:
        query = query.where(Case.place_id.in_([
            place_id for place_id, (grid_id, building_id) in levels.items()
            if scope.grid_id in (None, grid_id) and scope.building_id in (None, building_id)]))
    for column, wanted in ((Case.accepted_by_id, scope.member_id),
                           (Case.category, scope.category), (Case.accepted_rung, scope.rung)):
        if wanted is not None:
            query = query.where(column == wanted)

    def local(moment: datetime | None) -> datetime | None:
        return clock.as_local_naive(moment, zone)

    found = [tuple(row) for row in db.session.execute(query)]  # unpacked: a month is long
    words = residents_words([row[0] for row in found])
    outcomes = outcomes_of([row[0] for row in found])
    labels = {place_id: place.label for place_id, place in places.items()}
    grid_names = {place_id: places[grid_id].name if grid_id else ""
                  for place_id, (grid_id, _) in levels.items()}
    building_names = {place_id: places[building_id].name if building_id else ""
                      for place_id, (_, building_id) in levels.items()}
    answers = {"yes": "已解决", "partly": "部分解决", "no": "未解决"}
    rows = []
    for (case_id, place_id, category, urgency, status, resolution, reported_at, accepted_at,
         on_site_at, resolved_at, closed_at, member_id, accepted_rung, closed_rung,
         report_count, accept_minutes, on_site_minutes, member, solved, stars) in found:
        grid_id, building_id = levels[place_id]
        facts = metrics.CaseFacts(
            reported_at=reported_at, urgency=str(urgency), accept_minutes=accept_minutes,
            on_site_minutes=on_site_minutes, status=str(status),
            resolution=resolution and str(resolution), accepted_at=accepted_at,
            on_site_at=on_site_at, resolved_at=resolved_at, closed_at=closed_at,
            accepted_rung=accepted_rung, closed_rung=closed_rung,
            solved=solved and str(solved), satisfaction=stars, community_id=community.id,
            grid_id=grid_id, building_id=building_id, member_id=member_id, category=category,
            timezone=community.timezone)
        took = metrics.accept_seconds(facts)
        on_time = ("是" if metrics.accepted_on_time(facts) else "否"
                   ) if metrics.accept_due(facts, now) else ""
        resolved_as = RESOLUTION_NAMES[resolution] if resolution else ""
        rows.append([
            f"{community.code}-{case_id:06d}", local(reported_at),
            names.get(category, category), URGENCY_NAMES[urgency],
            grid_names[place_id], building_names[place_id], labels[place_id],
            words.get(case_id, ""), STATUS_NAMES[status], resolved_as,
            outcomes.get(case_id) or resolved_as,
            local(accepted_at), member or "", RUNG_NAMES.get(accepted_rung or 0, ""),
            _minutes(took), on_time, local(on_site_at), local(resolved_at), local(closed_at),
            RUNG_NAMES.get(closed_rung or 0, "") if closed_at else "",
            answers.get(str(solved) if solved else "", ""), stars, report_count])
    return Table([h for h, _ in CASE_COLUMNS], [f for _, f in CASE_COLUMNS], rows)


def among(column: Any, ids: Sequence[int]) -> sa.ColumnElement[bool]:
    """`column` is one of `ids`: on PostgreSQL one array parameter (a month's 1,700 case ids
    as 1,700 parameters cost more to send and parse than the lookup itself)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return sa.and_(column == sa.func.any(sa.bindparam(None, list(ids),
                                                          type_=postgresql.ARRAY(sa.Integer))))
    return sa.and_(column.in_(ids))


def residents_words(case_ids: Sequence[int]) -> dict[int, str]:
    """诉求内容 per case: the first report that has words, and how many more reports came.

    "（另有 N 次反映）" counts the case's other reports, calls and reports without words
    included. Phone numbers are masked and long text is cut at `MAX_QUOTE` characters.
    """
    reports: dict[int, list[str | None]] = defaultdict(list)
    for case_id, text in db.session.execute(
            sa.select(Report.case_id, Report.text).where(among(Report.case_id, case_ids))
            .order_by(Report.created_at, Report.id)):
        reports[case_id].append(text)
    words = {}
    for case_id, texts in reports.items():
        first = next((t.strip() for t in texts if t and t.strip()), "")
        others = len(texts) - 1
        words[case_id] = (_quote(first) if first else "（无文字描述）") + (
            f"（另有 {others} 次反映）" if others else "")
    return words


def outcomes_of(case_ids: Sequence[int]) -> dict[int, str]:
    """办理结果 per case: its handling lines from the timeline, oldest first, joined by "；".

    The lines are the ones staff read on the case page: the member's resolve note
    ("李建国：已解决。换了灯泡"), a reopening and its reason, a referral, a staff closing with
    its reason, a merge. Phone numbers are masked and the whole is cut at `MAX_QUOTE`.
    """
    lines: dict[int, list[str]] = defaultdict(list)
    for case_id, message in db.session.execute(
            sa.select(CaseEvent.case_id, CaseEvent.message)
            .where(among(CaseEvent.case_id, case_ids),
                   CaseEvent.kind.in_([str(k) for k in OUTCOME_EVENTS]))
            .order_by(CaseEvent.at, CaseEvent.id)):
        lines[case_id].append(message)
    return {case_id: _quote("；".join(found)) for case_id, found in lines.items()}


def _quote(text: str) -> str:
    text = " ".join(without_phones(text).split())  # line breaks would only add rows
    return text if len(text) <= MAX_QUOTE else text[:MAX_QUOTE - 1] + "…"


@functools.lru_cache(maxsize=8192)
def text_width(text: str) -> int:
    """Width in Excel's units (a digit's width): a Chinese or full-width character takes two.
    Kept for the texts a month repeats (names, states, places)."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _minute(moment: datetime) -> str:
    """A local time to the minute, "2026-03-02 10:00" (isoformat: a third of strftime's time,
    a month has thousands)."""
    if moment.tzinfo is None:
        return moment.isoformat(" ", "minutes")
    return moment.strftime("%Y-%m-%d %H:%M")


def shown(value: Any, number_format: str | None) -> str:
    """A cell as a spreadsheet program shows it, for the formats this report uses."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _minute(value)
    if isinstance(value, float) and number_format == PERCENT:
        return f"{value * 100:.1f}%"
    if isinstance(value, float) and number_format == MINUTES:
        return f"{value:.1f}"
    return str(value)


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
    rows = {1: _write(sheet, summary, first_row=4),
            2: _write(book.create_sheet("案件"), cases, first_row=1)}
    notes = book.create_sheet("口径说明")
    notes.append(["术语", "口径"])
    for term, meaning in DEFINITIONS:
        notes.append([term, meaning])
    notes.column_dimensions["A"].width = 12
    notes.column_dimensions["B"].width = 100
    for row in notes.iter_rows():
        row[0].font = row[1].font = Font(bold=row[0].row == 1)
        row[0].alignment = Alignment(vertical="top")
        row[1].alignment = Alignment(wrap_text=True, vertical="top")
        notes.row_dimensions[row[0].row].height = LINE_HEIGHT * _lines(str(row[1].value), 100)
    _print_setup(notes, header_row=None)
    out = io.BytesIO()
    book.save(out)
    return exports.splice(out.getvalue(), rows)


def _write(sheet: Any, table: Table, first_row: int) -> tuple[str, str]:
    """Lay out a table from `first_row` of the sheet: the header row as cells, widths, wraps,
    row heights and print setup on the sheet; the data rows returned as worksheet XML, with
    the sheet's dimension, for `exports.splice` once the workbook is saved."""
    header = exports.append_row(sheet, table.header)
    rows = [exports.cleaned(row) for row in table.rows]
    top = Alignment(vertical="top")
    wrap = Alignment(wrap_text=True, vertical="top")
    style_ids: dict[tuple[str | None, bool], int] = {}

    def style(fmt: str | None, wrapped: bool) -> int:
        """The workbook's style id for a data cell of this format and wrapping."""
        if (fmt, wrapped) not in style_ids:
            probe = Cell(sheet, row=1, column=1)  # never placed: it only names a style
            if fmt:
                probe.number_format = fmt
            probe.alignment = wrap if wrapped else top
            style_ids[(fmt, wrapped)] = probe.style_id
        return style_ids[(fmt, wrapped)]

    lines = [1] * (len(rows) + 1)
    # Column by column: a column's texts give its width, and its width which cells wrap.
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(table.header)
    column_styles = []
    for index, (heading, fmt) in enumerate(zip(table.header, table.formats, strict=True)):
        # Most cells are text already: `shown` only for the others.
        texts = [v if type(v) is str else shown(v, fmt) for v in columns[index]]
        widths = [text_width(text) for text in texts]
        width = _width(heading, widths)
        sheet.column_dimensions[get_column_letter(index + 1)].width = width
        head = header[index]
        head.alignment = top
        if text_width(shown(head.value, None)) + 1 > width:
            head.alignment = wrap
            lines[0] = max(lines[0], _lines(shown(head.value, None), width))
        column_style = [style(fmt, False)] * len(texts) if texts else []
        for n, text_size in enumerate(widths):
            if text_size + 1 > width:  # only text gets here: numbers always fit
                lines[n + 1] = max(lines[n + 1], _lines(texts[n], width))
                column_style[n] = style(fmt, True)
        column_styles.append(column_style)
    styles = list(zip(*column_styles, strict=True))
    for cell in header:
        cell.font = Font(bold=True)
    # Rows as tall as their wrapped text: Excel does not measure rows on opening a file.
    if lines[0] > 1:
        sheet.row_dimensions[first_row].height = LINE_HEIGHT * lines[0]
    sheet.freeze_panes = sheet.cell(row=first_row + 1, column=2)
    _print_setup(sheet, header_row=first_row)
    heights = [LINE_HEIGHT * count if count > 1 else None for count in lines[1:]]
    last = f"{get_column_letter(len(table.header))}{first_row + len(rows)}"
    return exports.rows_xml(rows, styles, first_row + 1, heights), f"A1:{last}"


def _width(heading: str, widths: list[int]) -> float:
    """A column's width: its longest value (`text_width` of each) and a margin.

    Headings of three characters or more may take two lines: "紧急程度" over a column of
    "紧急" and "一般" would otherwise double its width, and the summary has 32 columns.
    """
    if heading in WRAPPED:
        return WRAPPED[heading]
    head = text_width(heading)
    if head > 4:
        head = math.ceil(head / 2)
    widest = max(head, *widths) + 2
    return min(MAX_WIDTH, max(6, widest))


def _lines(text: str, width: float) -> int:
    """How many lines `text` wraps into in a column `width` units wide (a unit for margin)."""
    return max(1, math.ceil(text_width(text) / max(1.0, width - 1)))


def _print_setup(sheet: Any, header_row: int | None) -> None:
    """A4 landscape, one page wide and as many long as it takes, the header row on every
    page, narrow margins and the sheet's name and page number at the foot."""
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_options.gridLines = True
    sheet.page_margins = PageMargins(left=0.3, right=0.3, top=0.4, bottom=0.5,
                                     header=0.2, footer=0.2)
    if header_row is not None:
        sheet.print_title_rows = f"{header_row}:{header_row}"
    sheet.oddFooter.center.text = "&A  第 &P 页，共 &N 页"


def csv_bytes(table: Table) -> bytes:
    """The table as CSV, UTF-8 with a byte-order mark so spreadsheet programs read the Chinese."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.header)
    for row in table.rows:
        writer.writerow([_csv_value(v, fmt) for v, fmt in zip(row, table.formats, strict=True)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _csv_value(value: Any, number_format: str | None) -> Any:
    """A rate as the workbook shows it ("57.1%"), other numbers in full, times to the minute."""
    if value is None:
        return ""
    if isinstance(value, float) and number_format == PERCENT:
        return shown(value, PERCENT)
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return _minute(value)
    return exports.csv_cell(value)
