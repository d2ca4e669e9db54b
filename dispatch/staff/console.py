"""The staff console's shared parts: its blueprints, navigation and display filters.

Every console page extends `staff/base.html`; the navigation lists only the sections this
installation has (sticker, notice and blocklist pages come from their own modules).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Flask, current_app, g, url_for

from dispatch import clock, words
from dispatch.staff import audit, board, dashboard, intake, roster, rota
from dispatch.staff import scope as staff_scope
from dispatch.words import RESOLUTION_NAMES, RUNG_NAMES, STATUS_NAMES

#: (endpoint, label) of each console section, in menu order; missing endpoints are skipped.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("board.index", "案件 Cases"),
    ("intake.form", "来电登记 Intake"),
    ("rota.index", "在班 On duty"),
    ("dashboard.index", "统计 Figures"),
    ("dashboard.reports", "月报 Reports"),
    ("roster.index", "名册与值班 Roster"),
    ("notices.index", "楼栋公告 Notices"),
    ("blocklist.index", "号码黑名单 Blocklist"),
    ("stickers.index", "二维码贴纸 Stickers"),
    ("audit.index", "操作日志 Audit log"),
)


def sections() -> list[tuple[str, str]]:
    """(url, label) of the console sections this app has."""
    return [(url_for(endpoint), label) for endpoint, label in SECTIONS
            if endpoint in current_app.view_functions]


def local(moment: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    """A time in the community's zone, as staff read it; "—" for none."""
    return clock.format_local(moment, staff_scope.zone(), fmt)


def duration(seconds: float | None) -> str:
    """A duration in the largest sensible unit: 45 秒, 12 分, 3.5 时, 2.1 天."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} 秒"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} 分"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} 时"
    return f"{seconds / 86400:.1f} 天"


def percent(rate: float | None) -> str:
    """A rate as a percentage with one decimal, "—" when there was nothing to divide."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


def masked(address: str | None) -> str:
    """A phone number with its middle hidden (138****8001), as it may be shown on a screen."""
    if not address:
        return "—"
    if address.startswith("http"):
        return address.split("/")[2]
    return address[:-8] + "****" + address[-4:] if len(address) >= 11 else address


def _context() -> dict[str, Any]:
    if g.get("staff") is None:
        return {}
    return {"console_sections": sections(), "rung_names": RUNG_NAMES,
            "status_names": STATUS_NAMES, "resolution_names": RESOLUTION_NAMES,
            "may_write": g.staff.role != "viewer", "words": words}


def init_app(app: Flask) -> None:
    for module in (board, intake, rota, dashboard, roster, audit):
        app.register_blueprint(module.bp)
    app.context_processor(_context)
    app.add_template_filter(local, "local")
    app.add_template_filter(duration, "duration")
    app.add_template_filter(percent, "percent")
    app.add_template_filter(masked, "masked")
    app.add_template_filter(lambda d: d.isoformat() if isinstance(d, date) else d, "iso")
