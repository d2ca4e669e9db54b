"""Sticker management for staff: a building's sheet, one sticker's SVG/PNG, reissue and revoke."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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

from dispatch.db import db
from dispatch.models import Place, PlaceKind, Sticker, StickerStatus
from dispatch.staff.audit import log
from dispatch.staff.auth import login_required, may_see
from qr import codes
from qr.labels import StickerLabel, sticker_url
from qr.printing import Selection, places_in, print_selection
from qr.render import sticker_png, sticker_svg
from qr.sheet import LAYOUTS, Layout

bp = Blueprint("stickers", __name__, url_prefix="/staff/stickers")


def _building(code: str) -> Place:
    """A building (or a grid, for its shared areas) the staff member may see."""
    place = db.session.scalar(sa.select(Place).where(Place.code == code))
    if (place is None or place.kind not in (PlaceKind.BUILDING, PlaceKind.GRID)
            or not may_see(place)):
        abort(404)
    return place


def _visible_sticker(code: str) -> Sticker:
    sticker = codes.find(code)
    if sticker is None or not may_see(sticker.place):
        abort(404)
    return sticker


@bp.get("/")
@login_required
def index() -> Any:
    """Grids and buildings the staff member may see."""
    buildings = [b for b in db.session.scalars(
        sa.select(Place).where(Place.community_id == g.staff.community_id,
                               Place.kind.in_((PlaceKind.GRID, PlaceKind.BUILDING)))
        .order_by(Place.position)) if may_see(b)]
    return render_template("staff/stickers.html", buildings=buildings, layouts=sorted(LAYOUTS))


@bp.get("/<code>")
@login_required
def building(code: str) -> Any:
    """A building's places and their stickers, with actions."""
    place = _building(code)
    places = list(db.session.scalars(places_in(place.community, place, codes.STICKER_KINDS)))
    stickers = {p.id: [] for p in places}
    for sticker in db.session.scalars(sa.select(Sticker).where(
            Sticker.place_id.in_(list(stickers))).order_by(Sticker.id.desc())):
        stickers[sticker.place_id].append(sticker)
    return render_template("staff/stickers_building.html", building=place, places=places,
                           stickers=stickers, layouts=sorted(LAYOUTS))


@bp.get("/<code>.pdf")
@login_required
def sheet(code: str) -> Any:
    """The building's printable sheet as a PDF download."""
    place = _building(code)
    if request.args.get("layout", "3x4") not in LAYOUTS:
        abort(400, f"layout: one of {', '.join(sorted(LAYOUTS))}")
    layout = Layout.preset(request.args.get("layout", "3x4"))
    today = datetime.now(ZoneInfo(place.community.timezone)).date()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"stickers-{place.code}.pdf"
        try:
            print_selection(Selection(place.code), current_app.config["PUBLIC_BASE_URL"], out,
                            layout=layout, printed_on=today, max_per_file=10_000)
        except LookupError:  # nothing to print here
            abort(404)
        data = out.read_bytes()
    log("stickers.sheet", place.code, layout=layout.name)
    db.session.commit()
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="stickers-{place.code}.pdf"'})


def _label(sticker: Sticker) -> StickerLabel:
    community = sticker.place.community
    return StickerLabel(code=sticker.code,
                        url=sticker_url(current_app.config["PUBLIC_BASE_URL"], sticker.code),
                        community=community.name, place=sticker.place.label,
                        kind=str(sticker.place.kind), hotline=community.hotline)


@bp.get("/code/<code>.svg")
@login_required
def svg(code: str) -> Any:
    """One sticker as SVG."""
    sticker = _visible_sticker(code)
    return Response(sticker_svg(_label(sticker)), mimetype="image/svg+xml", headers={
        "Content-Disposition": f'attachment; filename="sticker-{sticker.code}.svg"'})


@bp.get("/code/<code>.png")
@login_required
def png(code: str) -> Any:
    """One sticker's QR symbol as PNG."""
    sticker = _visible_sticker(code)
    return Response(sticker_png(_label(sticker)), mimetype="image/png", headers={
        "Content-Disposition": f'attachment; filename="sticker-{sticker.code}.png"'})


@bp.post("/code/<code>/<action>")
@login_required(write=True)
def act(code: str, action: str) -> Any:
    """Reissue, retire or revoke a sticker."""
    sticker = _visible_sticker(code)
    note = request.form.get("note", "").strip()[:200] or None
    if action == "reissue":
        new = codes.reissue(sticker, note)
        flash(f"已补发新编号 {new.code}；旧编号 {sticker.code} 在停用前仍可使用")
    elif action == "retire" and sticker.status == StickerStatus.ACTIVE:
        codes.retire(sticker)
        flash(f"已停用 {sticker.code}")
    elif action == "revoke" and sticker.status != StickerStatus.REVOKED:
        codes.revoke(sticker, note)
        flash(f"已作废 {sticker.code}：扫码只显示社区电话，不再通知任何人")
    else:
        abort(400)
    log(f"stickers.{action}", sticker.code, place=sticker.place.code, note=note)
    db.session.commit()
    building_place = sticker.place.ancestor(PlaceKind.BUILDING)
    target = building_place.code if building_place else None
    return redirect(url_for("stickers.building", code=target) if target
                    else url_for("stickers.index"))
