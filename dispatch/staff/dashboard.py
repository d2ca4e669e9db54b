"""The figures pages: the dashboard with its charts, the JSON API, and the monthly reports.

A grid secretary's figures and exports are always narrowed to their grid (`scope.metrics_scope`).
The dashboard's queries are listed once in `PANELS`, which the benchmark runs as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, g, jsonify, render_template, request, url_for

from dispatch import clock, metrics
from dispatch.community import settings
from dispatch.db import db
from dispatch.metrics import Figures, Period, Scope
from dispatch.models import Community, Member, Place
from dispatch.staff import charts, scope
from dispatch.staff import reports as monthly
from dispatch.staff.auth import login_required

bp = Blueprint("dashboard", __name__, url_prefix="/staff")

DEFAULT_DAYS = 84  # twelve weeks: enough for a trend, short enough to be current
MAX_DAYS = 3 * 366
#: Months a report may name: before the service or far ahead is a typing mistake.
MIN_YEAR, MAX_YEAR = 2000, 2100

Panel = Callable[[Scope, Period, datetime], Any]
#: The figures the dashboard shows, by name: the dimension of each (None: the summary).
FIGURES: dict[str, str | None] = {
    "summary": None, "by_week": "week", "by_grid": "grid", "by_hour": "hour",
    "by_category": "category", "by_member": "member", "by_rung": "rung",
}
#: Every query the dashboard runs, by name: all its figures in one pass over the period's
#: cases (`metrics.breakdowns`), and the time-to-accept histogram.
PANELS: dict[str, Panel] = {
    "figures": lambda s, p, now: metrics.breakdowns(s, p, tuple(FIGURES.values()), now),
    "histogram": lambda s, p, now: metrics.accept_histogram(s, p),
}


def period_from(args: Any, zone: str, *, default_days: int = DEFAULT_DAYS) -> Period:
    """The period a request names (`parse_period`); a malformed one answers 400."""
    try:
        return parse_period(args, zone, default_days=default_days)
    except ValueError as exc:
        abort(400, description=str(exc))


def parse_period(args: Any, zone: str, *, default_days: int = DEFAULT_DAYS) -> Period:
    """The period in `args`: `month=2026-03`, `from=…&to=…` (local dates, inclusive), or
    `days=N` up to today. Raises ValueError saying what is wrong."""
    if args.get("month"):
        try:
            year, month = (int(part) for part in str(args["month"]).split("-"))
            if not MIN_YEAR <= year <= MAX_YEAR:
                raise ValueError
            return Period.month(year, month, zone)
        except (ValueError, TypeError):
            raise ValueError(f"month: expected YYYY-MM between {MIN_YEAR} and {MAX_YEAR}, "
                             f"got {args['month']!r}") from None
    if args.get("from"):
        try:
            start = date.fromisoformat(args["from"])
            end = (date.fromisoformat(args["to"]) if args.get("to")
                   else clock.today(zone, clock.now()))
        except (ValueError, TypeError):
            raise ValueError("from/to: expected dates like 2026-03-01") from None
        if not start <= end <= start + timedelta(days=MAX_DAYS):
            raise ValueError(f"from/to: 'to' must be on or after 'from', at most {MAX_DAYS} "
                             "days later")
        tz = clock.zone(zone)
        return Period(datetime.combine(start, datetime.min.time(), tz),
                      datetime.combine(end + timedelta(days=1), datetime.min.time(), tz))
    try:
        days = int(args.get("days", default_days))
    except (ValueError, TypeError):
        days = 0
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days: expected a whole number from 1 to {MAX_DAYS}")
    return Period.days(days, zone)


def _weeks(period: Period, zone: str) -> list[date]:
    first = metrics.local_week(period.start, zone)
    last = metrics.local_week(period.end - timedelta(seconds=1), zone)
    return [first + timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]


def _histogram_labels() -> list[str]:
    def edge(minutes: int) -> str:
        return f"{minutes}分" if minutes < 60 else f"{minutes // 60}时"

    return [f"≤{edge(m)}" for m in metrics.ACCEPT_EDGES_MINUTES] + [
        f">{edge(metrics.ACCEPT_EDGES_MINUTES[-1])}"]


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


def _names(model: type[Member] | type[Place], ids: Any) -> dict[Any, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return dict(db.session.execute(sa.select(model.id, model.name).where(
        model.id.in_(wanted))).all())


@bp.get("/dashboard")
@login_required
def index() -> Any:
    """Figures and charts for a period (default: the last twelve weeks)."""
    community = scope.community()
    period = period_from(request.args, community.timezone)
    chosen = scope.metrics_scope(request.args)
    now = clock.now()
    found = PANELS["figures"](chosen, period, now)
    data = {name: found[by] for name, by in FIGURES.items()}
    data["histogram"] = PANELS["histogram"](chosen, period, now)
    summary: Figures = data["summary"].get(None) or Figures()
    weeks = _weeks(period, community.timezone)
    by_week = [data["by_week"].get(w) for w in weeks]
    week_labels = [w.strftime("%m-%d") for w in weeks]
    grids = [p for p in scope.grids() if chosen.grid_id in (None, p.id)]
    by_grid = [(grid.name, data["by_grid"].get(grid.id)) for grid in grids]
    rates = (("响应率", "response_rate"), ("解决率", "solve_rate"), ("满意率", "satisfaction_rate"))
    figures_charts = {
        "cases": charts.bars(week_labels, [("案件数", [f.cases if f else 0 for f in by_week])],
                             title="每周案件数 Cases per week", integer=True, unit="件"),
        "accept": charts.lines(week_labels, [
            ("接单用时中位数", [_minutes(f.accept.median) if f else None for f in by_week]),
            ("P90", [_minutes(f.accept.p90) if f else None for f in by_week])],
            title="每周接单用时（分钟） Time to accept per week, minutes",
            fmt=lambda v: f"{v:.0f}", unit="分钟"),
        "rates": charts.lines(week_labels, [
            (label, [getattr(f, attr) if f else None for f in by_week]) for label, attr in rates],
            title="每周三率 Rates per week", fmt=_pct, top=1.0, unit="%"),
        "grids": charts.bars([name for name, _ in by_grid], [
            (label, [getattr(f, attr) if f else None for _, f in by_grid])
            for label, attr in rates], title="各网格三率 Rates by grid", fmt=_pct, top=1.0,
            unit="%"),
        "histogram": charts.bars(_histogram_labels(), [("案件数", data["histogram"])],
                                 title="接单用时分布 Distribution of time to accept",
                                 integer=True, unit="件"),
        "hours": charts.bars([f"{h}" for h in range(24)], [
            ("案件数", [data["by_hour"][h].cases if h in data["by_hour"] else 0
                        for h in range(24)])], title="按反映时段 Cases by hour of day",
            integer=True, unit="件"),
        "ladder": charts.stacked([("楼栋", summary.retention()["building"]),
                                  ("网格", summary.retention()["grid"]),
                                  ("社区", summary.retention()["community"]),
                                  ("上报街道/区", summary.retention()["referred"]),
                                  ("未记录", summary.retention()["unknown"])],
                                 title="办结层级 Ladder retention"),
    }
    members = sorted(((name, data["by_member"][mid]) for mid, name in _names(
        Member, data["by_member"]).items()), key=lambda item: -item[1].accepted)[:15]
    categories = {c.code: c.name for c in settings.categories(community)}
    return render_template(
        "staff/dashboard.html", period=period, scope=chosen, summary=summary,
        charts=figures_charts, by_grid=by_grid, members=members,
        categories=sorted(((categories.get(k, k), f) for k, f in data["by_category"].items()),
                          key=lambda item: -item[1].cases),
        rungs=sorted((k, f) for k, f in data["by_rung"].items() if k is not None),
        grids=scope.grids(), category_choices=categories, now=now,
        period_end=period.end - timedelta(seconds=1))


@bp.get("/api/metrics")
def api() -> Any:
    """The figures as JSON: `?month=` or `from`/`to` or `days`, a scope, and `by=` a dimension."""
    if g.get("staff") is None:
        return jsonify(error="login required"), 401
    community = scope.community()
    try:
        period = parse_period(request.args, community.timezone, default_days=30)
    except ValueError as exc:
        return jsonify(error=str(exc)), 400
    chosen = scope.metrics_scope(request.args)
    by = request.args.get("by") or None
    if by is not None and by not in metrics.DIMENSIONS:
        return jsonify(error=f"by must be one of {', '.join(metrics.DIMENSIONS)}"), 400
    now = clock.now()
    body: dict[str, Any] = {
        "community": community.code,
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "as_of": now.isoformat(),
        "scope": {k: v for k, v in (("grid", chosen.grid_id), ("building", chosen.building_id),
                                    ("member", chosen.member_id), ("category", chosen.category),
                                    ("rung", chosen.rung)) if v is not None},
        "figures": metrics.summary(chosen, period, now).as_dict(),
        "accept_histogram": {"edges_minutes": list(metrics.ACCEPT_EDGES_MINUTES),
                             "counts": metrics.accept_histogram(chosen, period)},
    }
    if by is not None:
        groups = metrics.breakdown(chosen, period, by, now)
        body["by"] = by
        body["groups"] = [{"key": key.isoformat() if isinstance(key, date) else key,
                           "figures": figures.as_dict()}
                          for key, figures in sorted(groups.items(), key=lambda kv: str(kv[0]))]
    return jsonify(body)


@bp.get("/reports")
@login_required
def reports() -> Any:
    """The monthly reports: the last twelve months, each as .xlsx and CSV."""
    today = clock.today(scope.zone(), clock.now())
    months = []
    year, month = today.year, today.month
    for _ in range(12):
        months.append(f"{year}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return render_template("staff/reports.html", months=months)


def _month_report(month: str) -> tuple[Community, Period, Scope, str]:
    """The month's community, period, scope and file name."""
    community = scope.community()
    period = period_from({"month": month}, community.timezone)
    chosen = scope.metrics_scope(request.args)
    suffix = ""
    if chosen.grid_id is not None:
        suffix = "-" + db.session.get_one(Place, chosen.grid_id).code
    return community, period, chosen, f"{community.code}-{month}{suffix}"


def _summary(chosen: Scope, period: Period) -> monthly.Table:
    """The month's summary: a row per grid and the total."""
    now = clock.now()
    grids = [p for p in scope.grids() if chosen.grid_id in (None, p.id)]
    found = metrics.breakdowns(chosen, period, (None, "grid"), now)  # one pass
    return monthly.summary_table([(grid.name, found["grid"].get(grid.id) or Figures())
                                  for grid in grids], found[None].get(None) or Figures())


@bp.get("/reports/<month>.xlsx")
@login_required
def report_xlsx(month: str) -> Any:
    """The month's report as an Excel workbook."""
    community, period, chosen, name = _month_report(month)
    summary = _summary(chosen, period)
    now = clock.now()
    cases = monthly.case_table(chosen, period, now)
    zone = scope.zone()
    grid = f"（{db.session.get_one(Place, chosen.grid_id).name}）" if chosen.grid_id else ""
    title = f"{community.name}{grid} {month.replace('-', '年', 1)}月 接诉即办月报"
    as_of = clock.format_local(now, zone, "%Y-%m-%d %H:%M")
    subtitle = f"统计口径：{month} 反映的案件，截至 {as_of} 的处理结果；定义见“口径说明”"
    body = monthly.workbook(title, subtitle, summary, cases)
    return _download(body, f"{name}.xlsx",
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@bp.get("/reports/<month>/<table>.csv")
@login_required
def report_csv(month: str, table: str) -> Any:
    """The month's summary (`summary.csv`) or case list (`cases.csv`) as CSV."""
    if table not in ("summary", "cases"):
        abort(404)
    _, period, chosen, name = _month_report(month)
    data = (_summary(chosen, period) if table == "summary"
            else monthly.case_table(chosen, period, clock.now()))
    return _download(monthly.csv_bytes(data), f"{name}-{table}.csv", "text/csv; charset=utf-8")


def _download(body: bytes, filename: str, content_type: str) -> Response:
    response = Response(body, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def report_links(month: str) -> dict[str, str]:
    """The download links of a month's report, keeping the request's scope."""
    extra: dict[str, Any] = {k: v for k, v in request.args.items()
                             if k in ("grid", "building", "category")}
    return {"xlsx": url_for("dashboard.report_xlsx", month=month, **extra),
            "summary": url_for("dashboard.report_csv", month=month, table="summary", **extra),
            "cases": url_for("dashboard.report_csv", month=month, table="cases", **extra)}


bp.add_app_template_global(report_links, "report_links")
