"""The live board of open cases and the case page, with the staff actions on a case."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import selectinload

from dispatch import clock, security
from dispatch.case import lifecycle
from dispatch.community import settings
from dispatch.db import db
from dispatch.models import (
    OPEN_STATUSES,
    Callback,
    Case,
    CaseEvent,
    CaseStatus,
    Member,
    Notification,
    Photo,
    Place,
    Report,
    Solved,
    StaffUser,
)
from dispatch.resident import photos
from dispatch.staff import audit, scope
from dispatch.staff.auth import login_required, may_see

bp = Blueprint("board", __name__, url_prefix="/staff/cases")

#: Seconds between refreshes of the live board.
REFRESH_SECONDS = 30


def overdue(case: Case, now: datetime) -> str | None:
    """Why an open case is overdue, or None: the board lists these first.

    Not accepted within the first rung's time (`rung_minutes` of its policy snapshot), not on
    site within `on_site_minutes` of acceptance, or declared stuck by the ladder.
    """
    if case.stuck_at is not None and case.accepted_at is None:
        return "无人接单"
    minutes = case.policy.get("rung_minutes")
    if case.accepted_at is None:
        if minutes is not None and now - case.reported_at > timedelta(minutes=minutes):
            return "超时未接单"
        return None
    site = case.policy.get("on_site_minutes")
    if (case.status == CaseStatus.ACCEPTED and site is not None
            and now - case.accepted_at > timedelta(minutes=site)):
        return "超时未到场"
    return None


def board_order(cases: list[Case], now: datetime) -> list[Case]:
    """Overdue cases first, then the rest; oldest first within each."""
    return sorted(cases, key=lambda c: (overdue(c, now) is None, c.reported_at, c.id))



@bp.get("/")
@login_required
def index() -> Any:
    """Open cases, overdue first, then oldest first; the page refreshes itself."""
    now = clock.now()
    query = scope.visible_cases(sa.select(Case).where(Case.status.in_(OPEN_STATUSES))).options(
        selectinload(Case.place).selectinload(Place.parent), selectinload(Case.accepted_by))
    open_cases = board_order(list(db.session.scalars(query)), now)
    waiting = list(db.session.scalars(scope.visible_cases(
        sa.select(Case).where(Case.status == CaseStatus.RESOLVED))
        .order_by(Case.resolved_at).limit(50)))
    return render_template("staff/board.html", cases=open_cases, waiting=waiting, now=now,
                           overdue=overdue, categories=_category_names(),
                           refresh=REFRESH_SECONDS)


@bp.get("/<int:case_id>")
@login_required
def show(case_id: int) -> Any:
    """One case: milestones, timeline, reports and photos, messages and their delivery."""
    case = scope.case_or_404(case_id)
    merged = list(db.session.scalars(sa.select(Case).where(Case.merged_into_id == case.id)))
    reports = list(db.session.scalars(
        sa.select(Report).where(Report.case_id.in_([case.id, *(m.id for m in merged)]))
        .options(selectinload(Report.photos)).order_by(Report.created_at, Report.id)))
    events = list(db.session.scalars(sa.select(CaseEvent).where(CaseEvent.case_id == case.id)
                                     .order_by(CaseEvent.at, CaseEvent.id)))
    staff_names = dict(db.session.execute(sa.select(StaffUser.id, StaffUser.name).where(
        StaffUser.id.in_({e.staff_id for e in events if e.staff_id}))).all())
    notifications = list(db.session.scalars(
        sa.select(Notification).where(Notification.case_id == case.id)
        .options(selectinload(Notification.member)).order_by(Notification.id)))
    callbacks = list(db.session.scalars(sa.select(Callback).where(Callback.case_id == case.id)
                                        .order_by(Callback.at, Callback.id)))
    return render_template(
        "staff/case.html", case=case, merged=merged, reports=reports, events=events,
        staff_names=staff_names, notifications=notifications, callbacks=callbacks,
        overdue=overdue(case, clock.now()), categories=_category_names(),
        members=_members_for(case))


@bp.get("/photos/<int:photo_id>")
@login_required
def photo(photo_id: int) -> Any:
    """A report's photo, only for staff who may see its case."""
    found = db.session.get(Photo, photo_id)
    if found is None or not may_see(found.of_case.place):
        abort(404)
    response = Response(found.data, content_type=found.content_type)
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/photos/<int:photo_id>/thumbnail")
@login_required
def photo_thumbnail(photo_id: int) -> Any:
    """A photo's thumbnail for the case page; made and kept on first view if it has none.

    A photo that cannot be decoded (none should exist: every upload was re-encoded) is
    served whole rather than failing the page.
    """
    found = db.session.get(Photo, photo_id)
    if found is None or not may_see(found.of_case.place):
        abort(404)
    small = found.thumbnail
    if small is None:
        small = photos.thumbnail_of(found.data)
        if small is not None:
            found.thumbnail = small
            db.session.commit()
    response = Response(small or found.data, content_type="image/jpeg" if small
                        else found.content_type)
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/<int:case_id>/note")
@login_required(write=True)
def note(case_id: int) -> Any:
    """Add a staff note to the timeline."""
    case = scope.case_or_404(case_id)
    return _act(case, "case.note", lambda: lifecycle.add_note(
        case, g.staff, request.form.get("text", "")), "备注已添加")


@bp.post("/<int:case_id>/close")
@login_required(write=True)
def close(case_id: int) -> Any:
    """Close as fixed or as not fixed."""
    case = scope.case_or_404(case_id, lock=True)
    fixed = request.form.get("fixed") == "1"
    return _act(case, "case.close", lambda: lifecycle.close(
        case, g.staff, fixed=fixed, note=request.form.get("note", "")),
        "已办结（已解决）" if fixed else "已办结（未解决）", fixed=fixed)


@bp.post("/<int:case_id>/merge")
@login_required(write=True)
def merge(case_id: int) -> Any:
    """Merge this case, a duplicate, into another case given by its number or id."""
    case = scope.case_or_404(case_id, lock=True)
    wanted = request.form.get("into", "").strip().rsplit("-", 1)[-1]
    if not wanted.isdigit():
        flash("请输入案件编号 / Enter a case number")
        return redirect(url_for(".show", case_id=case.id))
    into = scope.case_or_404(int(wanted), lock=True)
    return _act(case, "case.merge", lambda: lifecycle.merge(case, into, g.staff),
                f"已并入 {into.number}", into=into.number)


@bp.post("/<int:case_id>/callback")
@login_required(write=True)
def callback(case_id: int) -> Any:
    """Record the resident's answer to a 回访 made by telephone."""
    case = scope.case_or_404(case_id)
    try:
        solved = Solved(request.form.get("solved", ""))
        stars = int(request.form["satisfaction"]) if request.form.get("satisfaction") else None
        audit.log("case.callback", case.number, solved=str(solved), satisfaction=stars)
        answered = lifecycle.answer_callback(case, solved=solved, contacted=True,
                                             satisfaction=stars,
                                             comment=request.form.get("comment") or None)
    except (ValueError, lifecycle.NotAwaitingCallback):
        db.session.rollback()
        flash("无法记录回访：案件不在待回访状态或填写有误 / Cannot record this callback")
        return redirect(url_for(".show", case_id=case_id))
    flash("回访已记录" + ("，案件已重新派单" if answered.reopened else ""))
    return redirect(url_for(".show", case_id=answered.follow.id))


def _act(case: Case, action: str, change: Any, done: str, *, logged: bool = False,
         **data: object) -> Any:
    """Apply a console change with its audit entry in one transaction, then show the case.

    Engine actions commit by themselves, so their audit entry is added (`logged`) before.
    """
    try:
        change()
    except lifecycle.ActionRefused as exc:
        db.session.rollback()
        flash(str(exc))
        return redirect(url_for(".show", case_id=case.id))
    if not logged:
        audit.log(action, case.number, **data)
    db.session.commit()
    flash(done)
    return redirect(url_for(".show", case_id=case.id))


def _category_names() -> dict[str, str]:
    return {c.code: c.name for c in settings.categories(scope.community())}


def _members_for(case: Case) -> list[Member]:
    """Active members a case could be handed to, for the reassign form."""
    return [m for m in db.session.scalars(
        sa.select(Member).where(Member.community_id == case.community_id, Member.active)
        .order_by(Member.name)) if scope.may_see_member(m)]


@bp.post("/<int:case_id>/reassign")
@login_required(write=True)
def reassign(case_id: int) -> Any:
    """Hand an accepted case to another member, through the dispatch engine."""
    case = scope.case_or_404(case_id, lock=True)
    member = db.session.get(Member, security.number(request.form.get("member"), 0))
    if member is None or member.community_id != case.community_id or not scope.may_see_member(
            member):
        abort(404)
    audit.log("case.reassign", case.number, member=member.code)
    return _act(case, "case.reassign", lambda: lifecycle.reassign(case, member, g.staff),
                f"已改派给 {member.name}", logged=True)


@bp.post("/<int:case_id>/refer")
@login_required(write=True)
def refer(case_id: int) -> Any:
    """Send the case up to the next rung now, through the dispatch engine."""
    case = scope.case_or_404(case_id, lock=True)
    audit.log("case.refer", case.number, rung=case.rung)
    return _act(case, "case.refer", lambda: lifecycle.refer_up(case, g.staff), "已上报上一级",
                logged=True)
