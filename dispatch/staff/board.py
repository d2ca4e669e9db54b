"""The live board of open cases and the case page, with the staff actions on a case.

The board reloads nothing: `static/board.js` fetches its table (`live`) every
`REFRESH_SECONDS` and swaps it in, and, if the worker opted in, beeps and shows a desktop
notification for a new urgent case. Without JavaScript the 刷新 link does the same by hand.
Its filters are query parameters, shared by the page, the fragment and the link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy.orm import selectinload

from dispatch import clock, security, words
from dispatch.case import lifecycle, result
from dispatch.community import settings
from dispatch.db import db
from dispatch.ladder.rules import next_working_start, working_hours
from dispatch.models import (
    OPEN_STATUSES,
    Callback,
    Case,
    CaseEvent,
    CaseStatus,
    Community,
    Member,
    Notification,
    Photo,
    Place,
    PlaceKind,
    Report,
    Solved,
    StaffUser,
    Urgency,
    VoiceNote,
)
from dispatch.resident import photos, voice
from dispatch.roster import routing
from dispatch.staff import audit, rota, scope
from dispatch.staff.auth import login_required, may_see

bp = Blueprint("board", __name__, url_prefix="/staff/cases")

#: Seconds between the live board's fetches of its table.
REFRESH_SECONDS = 15
#: The most open cases the board lists (the longest waiting); past it the page gives the
#: count and asks for a filter. A community with hundreds open at once needs the filters more
#: than a longer table, and each fetch stays cheap (docs/benchmarks.md, "The live board").
BOARD_ROWS = 50


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


def waiting_for_hours(case: Case, now: datetime) -> bool:
    """Whether the open case waits for working hours: its policy names them, nobody has taken
    it, and it is outside them now, so the ladder will ask nobody until they start."""
    if case.status != CaseStatus.OPEN:
        return False
    hours = working_hours(case.policy)
    if hours is None:
        return False
    return next_working_start(now, hours, clock.zone(case.community.timezone)) > now


def board_order(cases: list[Case], now: datetime) -> list[Case]:
    """Overdue cases first, then the rest; oldest first within each."""
    return sorted(cases, key=lambda c: (overdue(c, now) is None, c.reported_at, c.id))


@dataclass(frozen=True, slots=True)
class Filters:
    """What the board shows: every field narrows it, None or False does not."""

    grid: int | None = None
    building: int | None = None
    status: str | None = None
    urgency: str | None = None
    waiting: bool = False
    mine: bool = False

    @classmethod
    def from_args(cls, args: Any) -> Filters:
        status = args.get("status")
        urgency = args.get("urgency")
        return cls(grid=security.number(args.get("grid")),
                   building=security.number(args.get("building")),
                   status=status if status in {str(s) for s in OPEN_STATUSES} else None,
                   urgency=urgency if urgency in {str(u) for u in Urgency} else None,
                   waiting=args.get("waiting") == "1", mine=args.get("mine") == "1")

    def args(self) -> dict[str, str]:
        """The filters as query parameters, for links and the live fragment."""
        found = {"grid": self.grid, "building": self.building, "status": self.status,
                 "urgency": self.urgency, "waiting": "1" if self.waiting else None,
                 "mine": "1" if self.mine else None}
        return {k: str(v) for k, v in found.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Board:
    """The board's cases in board order, and how many open cases the filters keep in all."""

    cases: list[Case]
    total: int


def open_board(filters: Filters, now: datetime) -> Board:
    """The open cases the staff member may see and the filters keep, in board order: the
    `BOARD_ROWS` longest waiting (read along the community's cases by report time, so the
    query stops early however many cases are closed), with the place's grid and building
    joined only when a filter asks for them."""
    query = _filtered(filters)
    query = query.order_by(Case.reported_at, Case.id).limit(BOARD_ROWS).options(
        selectinload(Case.place).selectinload(Place.parent).selectinload(Place.parent),
        selectinload(Case.accepted_by), selectinload(Case.dispatched_to),
        selectinload(Case.community))
    cases = list(db.session.scalars(query))
    total = len(cases)
    if total == BOARD_ROWS:
        total = db.session.scalar(_filtered(filters).with_only_columns(
            sa.func.count(Case.id)).order_by(None)) or total
    if filters.waiting:
        # Only cases that may wait were read (`_filtered`); whether each does now is Python's
        # to say. The count of all stands when every one listed waits: they share their
        # community's policy and clock, so the ones not listed wait alike.
        waiting = [c for c in cases if waiting_for_hours(c, now)]
        total = total if len(waiting) == len(cases) else len(waiting)
        cases = waiting
    return Board(board_order(cases, now), total)


def _filtered(filters: Filters) -> sa.Select[Any]:
    """The open cases the filters keep. A state asked for replaces the list of open states
    rather than narrowing it: the planner, taking the two conditions as independent, would
    expect almost no rows and read the state's index instead of the board's."""
    states = [filters.status] if filters.status is not None else list(OPEN_STATUSES)
    query = scope.visible_cases(sa.select(Case).where(Case.status.in_(states)))
    if filters.grid is not None or filters.building is not None:
        query = query.where(Case.place_id.in_(scope.places_under(filters.grid,
                                                                 filters.building)))
    if filters.urgency is not None:
        query = query.where(Case.urgency == filters.urgency)
    if filters.mine:
        query = query.where(Case.dispatched_by_id == g.staff.id)
    if filters.waiting:
        # Read only open cases of an urgency whose policy has working hours, so the board's
        # row limit counts cases that may wait, not the longest-open of any kind.
        community = db.session.get(Community, g.staff.community_id)
        bound = [u for u in Urgency if community is not None
                 and working_hours(settings.policy(community, u)) is not None]
        query = query.where(Case.status == CaseStatus.OPEN, Case.urgency.in_(bound))
    return query


def _board_context(filters: Filters) -> dict[str, Any]:
    """What the board's table shows (the page and each refresh of the table)."""
    now = clock.now()
    found = open_board(filters, now)
    cases = found.cases
    return {"cases": cases, "total": found.total, "now": now, "overdue": overdue,
            "waiting_for_hours": waiting_for_hours,
            "categories": _category_names(), "filters": filters,
            "refresh": current_app.config.get("BOARD_POLL_SECONDS", REFRESH_SECONDS),
            "filter_args": filters.args(), "urgency_names": words.URGENCY_NAMES,
            "urgent_ids": ",".join(str(c.id) for c in cases if c.urgency == Urgency.URGENT)}


@bp.get("/")
@login_required
def index() -> Any:
    """Open cases, overdue first, then oldest first; the table refreshes itself in place."""
    context = _board_context(Filters.from_args(request.args))
    context["grids"] = scope.grids()  # the filters' choices: the page only, not each refresh
    context["buildings"] = list(db.session.scalars(
        sa.select(Place).where(Place.community_id == g.staff.community_id,
                               Place.kind == PlaceKind.BUILDING,
                               Place.id.in_(scope.visible_places()))
        .order_by(Place.position, Place.id)))
    context["waiting"] = list(db.session.scalars(scope.visible_cases(
        sa.select(Case).where(Case.status == CaseStatus.RESOLVED))
        .order_by(Case.resolved_at).limit(50)))
    return render_template("staff/board.html", **context)


@bp.get("/live")
@login_required
def live() -> Any:
    """The board's table alone, as the page's script fetches it."""
    response = Response(render_template("staff/_board_live.html",
                                        **_board_context(Filters.from_args(request.args))))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<int:case_id>")
@login_required
def show(case_id: int) -> Any:
    """One case: milestones, timeline, reports and photos, messages and their delivery."""
    case = scope.case_or_404(case_id)
    merged = list(db.session.scalars(sa.select(Case).where(Case.merged_into_id == case.id)))
    reports = list(db.session.scalars(
        sa.select(Report).where(Report.case_id.in_([case.id, *(m.id for m in merged)]))
        .options(selectinload(Report.photos), selectinload(Report.voice_notes))
        .order_by(Report.created_at, Report.id)))
    events = list(db.session.scalars(sa.select(CaseEvent).where(CaseEvent.case_id == case.id)
                                     .order_by(CaseEvent.at, CaseEvent.id)))
    staff_names = dict(db.session.execute(sa.select(StaffUser.id, StaffUser.name).where(
        StaffUser.id.in_({e.staff_id for e in events if e.staff_id}
                         | {case.dispatched_by_id}))).all())
    notifications = list(db.session.scalars(
        sa.select(Notification).where(Notification.case_id == case.id)
        .options(selectinload(Notification.member)).order_by(Notification.id)))
    callbacks = list(db.session.scalars(sa.select(Callback).where(Callback.case_id == case.id)
                                        .order_by(Callback.at, Callback.id)))
    after = result.after_photo_ids(case)
    who = request.args.get("who", "").strip()[:40]
    candidates, on_duty = _members_for(case, who)
    taken_at = case.policy.get("taken_at")
    return render_template(
        "staff/case.html", case=case, merged=merged, reports=reports, events=events,
        staff_names=staff_names, notifications=notifications, callbacks=callbacks,
        overdue=overdue(case, clock.now()), categories=_category_names(),
        category_list=settings.categories(case.community), urgency_names=words.URGENCY_NAMES,
        members=candidates, on_duty_ids=on_duty, who=who,
        first_assignment=lifecycle.first_assignment(case), after_photos=after,
        policy_at=datetime.fromisoformat(taken_at) if taken_at else case.reported_at,
        waiting_hours=waiting_for_hours(case, clock.now()))


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


@bp.get("/voice/<int:note_id>")
@login_required
def voice_note(note_id: int) -> Any:
    """A resident's voice note, only for staff who may see its case."""
    found = db.session.get(VoiceNote, note_id)
    if found is None or found.report is None or not may_see(found.report.case.place):
        abort(404)
    return voice.serve(found, cache="private, max-age=3600")


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


def _members_for(case: Case, who: str = "") -> tuple[list[Member], set[int]]:
    """Active members a case could be given to, for the assign form, and which of them are on
    duty for its place now: those first (in the ladder's order), then the others answering for
    the place, then everyone else by name. `who` keeps those whose name, organisation or code
    holds it."""
    everyone = [m for m in db.session.scalars(
        sa.select(Member).where(Member.community_id == case.community_id, Member.active)
        .options(selectinload(Member.responsibilities)).order_by(Member.name))
        if scope.may_see_member(m)]
    on_duty = rota.reachable_now(case.place, case.category, clock.now())
    answering = [r.member.id for r in routing.answering_for(case.place, case.category)]
    order = {member_id: i for i, member_id in enumerate(dict.fromkeys(on_duty + answering))}
    everyone.sort(key=lambda m: (order.get(m.id, len(order)), m.name))
    if who:
        wanted = who.lower()
        everyone = [m for m in everyone
                    if wanted in f"{m.name} {m.organisation or ''} {m.code}".lower()]
    return everyone, set(on_duty)


@bp.post("/<int:case_id>/reclassify")
@login_required(write=True)
def reclassify(case_id: int) -> Any:
    """Correct the category and urgency; an open case nobody has taken is routed again."""
    case = scope.case_or_404(case_id, lock=True)
    try:
        urgency = Urgency(request.form.get("urgency", ""))
    except ValueError:
        flash("请选择紧急程度")
        return redirect(url_for(".show", case_id=case.id))
    category = request.form.get("category", "")
    return _act(case, "case.reclassify", lambda: lifecycle.reclassify(
        case, g.staff, category=category, urgency=urgency), "已改类",
        category=category, urgency=str(urgency))


@bp.post("/<int:case_id>/reassign")
@login_required(write=True)
def reassign(case_id: int) -> Any:
    """Hand an accepted case to another member, through the dispatch engine."""
    case = scope.case_or_404(case_id, lock=True)
    member = db.session.get(Member, security.number(request.form.get("member"), 0))
    if member is None or member.community_id != case.community_id or not scope.may_see_member(
            member):
        abort(404)
    verb = "指派" if lifecycle.first_assignment(case) else "改派"
    audit.log("case.reassign", case.number, member=member.code, verb=verb)
    return _act(case, "case.reassign", lambda: lifecycle.reassign(case, member, g.staff),
                f"已{verb}给 {member.name}" + ("，等待其接单" if not case.accepted_by_id else ""),
                logged=True)


@bp.post("/<int:case_id>/refer")
@login_required(write=True)
def refer(case_id: int) -> Any:
    """Send the case up to the next rung now, through the dispatch engine."""
    case = scope.case_or_404(case_id, lock=True)
    audit.log("case.refer", case.number, rung=case.rung)
    return _act(case, "case.refer", lambda: lifecycle.refer_up(case, g.staff), "已上报上一级",
                logged=True)
