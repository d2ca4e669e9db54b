"""Notices staff post for a building (3栋1号电梯维修中，预计18:00恢复), shown on its sticker pages.

A building's notice shows on the pages of its units, elevators and everything else under it,
from when it is posted until its end time, or until staff end it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from dispatch import clock, security
from dispatch.db import db
from dispatch.models import Community, Notice, Place, PlaceKind
from dispatch.staff.audit import log
from dispatch.staff.auth import login_required, may_see

bp = Blueprint("notices", __name__, url_prefix="/staff/notices")

TEXT_MAX = 500


@bp.get("/")
@login_required
def index() -> Any:
    """Notices in force or still to come, and the form to post one."""
    return _page()


@bp.post("/")
@login_required(write=True)
def post() -> Any:
    """Post a notice for a building, optionally ending at a local date and time."""
    form = {name: request.form.get(name, "").strip() for name in ("place", "text", "ends")}
    place = db.session.get(Place, security.number(form["place"], 0))
    community = db.session.get_one(Community, g.staff.community_id)
    problem = None
    if place is None or place.kind != PlaceKind.BUILDING or not may_see(place):
        problem = "请选择楼栋。"
    elif not form["text"] or len(form["text"]) > TEXT_MAX:
        problem = f"请填写公告内容（最多 {TEXT_MAX} 字）。"
    ends_at = None
    now = clock.now()
    if problem is None and form["ends"]:
        ends_at = clock.parse_local(form["ends"], community.timezone,
                                    ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"))
        if ends_at is None or ends_at <= now:
            problem = "结束时间不正确：请选一个将来的时间，或留空。"
    if problem or place is None:
        return _page(problem=problem, form=form, status=422)
    notice = Notice(place_id=place.id, text=form["text"], starts_at=now, ends_at=ends_at,
                    created_at=now)
    db.session.add(notice)
    db.session.flush()
    log("notice.post", place.code, notice=notice.id, text=form["text"])
    db.session.commit()
    flash(f"已发布：{place.name}")
    return redirect(url_for(".index"), 303)


@bp.post("/<int:notice_id>/end")
@login_required(write=True)
def end(notice_id: int) -> Any:
    """End a notice now: it disappears from the resident pages."""
    notice = db.session.get(Notice, notice_id)
    if notice is None or not may_see(notice.place):
        abort(404)
    notice.ends_at = clock.now()
    log("notice.end", notice.place.code, notice=notice.id)
    db.session.commit()
    flash("公告已结束。")
    return redirect(url_for(".index"), 303)


def _page(*, problem: str | None = None, form: dict[str, str] | None = None,
          status: int = 200) -> tuple[str, int]:
    community = db.session.get_one(Community, g.staff.community_id)
    buildings = [b for b in db.session.scalars(
        sa.select(Place).where(Place.community_id == community.id,
                               Place.kind == PlaceKind.BUILDING)
        .order_by(Place.position, Place.id)) if may_see(b)]
    now = clock.now()
    current = [n for n in db.session.scalars(
        sa.select(Notice).join(Place, Place.id == Notice.place_id)
        .where(Place.community_id == community.id,
               sa.or_(Notice.ends_at.is_(None), Notice.ends_at > now))
        .order_by(Notice.starts_at.desc())) if may_see(n.place)]
    return render_template("staff/notices.html", buildings=buildings, notices=current,
                           problem=problem, form=form or {}, text_max=TEXT_MAX), status
