"""Call intake (来电登记): whoever answers the duty phone files the caller's problem as a case.

The desk finds the place by building, unit, elevator or area name, its code, or the code on its
sticker; picks the category and urgency; writes what the caller said and, if the caller wants
a call back, their number (blocklist-checked as on the resident form). The report is filed
through `case.report.file_report` with kind `phone`, so routing, the ladder and the figures
treat it exactly as a scan. While the caller waits the page shows who is on duty there now.

Works without JavaScript: the place search is a GET form that lists matches as choices; with
it, `static/intake.js` fills the same list as one types, from `places` (JSON).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy.orm import selectinload

from dispatch import clock, words
from dispatch.case.report import file_report
from dispatch.community import settings
from dispatch.db import db
from dispatch.models import Place, PlaceKind, ReportKind, Urgency
from dispatch.resident import phones
from dispatch.staff import audit, rota, scope
from dispatch.staff.auth import login_required, may_see
from qr import codes

bp = Blueprint("intake", __name__, url_prefix="/staff/intake")

#: Where a caller's problem can be: everything below the grids.
PLACE_KINDS = (PlaceKind.BUILDING, PlaceKind.UNIT, PlaceKind.ELEVATOR, PlaceKind.AREA)
TEXT_MAX = 2000
MATCHES = 20


def find_places(text: str, limit: int = MATCHES) -> list[Place]:
    """Visible places whose label or code holds every word of `text`, or the place of the
    sticker whose code `text` is; buildings before their units, in file order."""
    text = text.strip()[:80]
    if not text:
        return []
    sticker = codes.find(text)
    if sticker is not None and may_see(sticker.place):
        return [sticker.place]
    community = scope.community()
    places = db.session.scalars(
        sa.select(Place).where(Place.community_id == community.id, Place.kind.in_(PLACE_KINDS),
                               Place.id.in_(scope.visible_places()))
        .options(selectinload(Place.parent).selectinload(Place.parent)
                 .selectinload(Place.parent))
        .order_by(Place.position, Place.id))
    needles = [w.lower() for w in text.replace("·", " ").split()]
    found = [p for p in places
             if all(n in f"{p.label}{p.code}".lower().replace(" ", "").replace("·", "")
                    for n in needles)]
    rank = {kind: i for i, kind in enumerate(PLACE_KINDS)}
    found.sort(key=lambda p: (len(p.lineage()), rank[p.kind]))
    return found[:limit]


@bp.get("/places")
@login_required
def places() -> Any:
    """The typeahead's answer: matching places as {id, label, kind}."""
    return jsonify([{"id": p.id, "label": p.label, "kind": str(p.kind)}
                    for p in find_places(request.args.get("q", ""))])


@bp.get("/")
@login_required(write=True)
def form() -> Any:
    """The intake form; a chosen place shows who is on duty there now."""
    return _page({})


def _page(errors: dict[str, str], status: int = 200) -> Any:
    community = scope.community()
    categories = settings.categories(community)
    values = request.values
    query = values.get("q", "")
    place = None
    if values.get("place"):
        place = scope.place_or_404(values.get("place"), *PLACE_KINDS)
    category = values.get("category") or (categories[0].code if categories else "")
    chosen = settings.category(community, category)
    urgency = values.get("urgency") or (str(chosen.urgency) if chosen else "normal")
    matches = find_places(query) if query and place is None else []
    on_duty = rota.on_duty_for(place, category, clock.now()) if place and chosen else []
    return render_template(
        "staff/intake.html", categories=categories, category=category, urgency=urgency,
        urgencies=words.URGENCY_NAMES, place=place, query=query, matches=matches,
        on_duty=on_duty, text=values.get("text", ""), phone=values.get("phone", ""),
        errors=errors), status


@bp.post("/")
@login_required(write=True)
def submit() -> Any:
    """File the call as a report; on a mistake show the form again with what was typed."""
    community = scope.community()
    form = request.form
    errors: dict[str, str] = {}
    place = None
    if form.get("place"):
        place = scope.place_or_404(form.get("place"), *PLACE_KINDS)
    else:
        errors["place"] = "请先找到并选择地点"
    category = settings.category(community, form.get("category", ""))
    if category is None:
        errors["category"] = "请选择问题类型"
    try:
        urgency = Urgency(form.get("urgency", ""))
    except ValueError:
        errors["urgency"] = "请选择紧急程度"
    text = form.get("text", "").strip()
    if len(text) > TEXT_MAX:
        errors["text"] = f"来电内容最多 {TEXT_MAX} 字"
    phone = None
    if form.get("phone", "").strip():
        try:
            phone = phones.normalise(form["phone"])
        except phones.PhoneError:
            errors["phone"] = "回拨电话不正确：请填 11 位手机号，或以 + 开头的国际号码"
        else:
            if phones.is_blocked(phone):
                errors["phone"] = "这个号码在黑名单中，不能作为回拨电话"
    if errors or place is None or category is None:
        return _page(errors, 400)
    filed = file_report(place, category.code, kind=ReportKind.PHONE, text=text or None,
                        callback_phone=phone, anonymous=phone is None, urgency=urgency)
    audit.log("case.intake", filed.case.number, place=place.code, category=category.code,
              urgency=str(urgency), opened=filed.opened)
    db.session.commit()
    if filed.opened:
        flash(f"已登记来电，新建案件 {filed.case.number}，正在通知{place.label}的负责人")
    else:
        flash(f"该地点已有同类案件 {filed.case.number}，来电已并入（现 {filed.case.report_count} "
              f"人次）；如需改紧急程度请在本页改类")
    return redirect(url_for("board.show", case_id=filed.case.id))
