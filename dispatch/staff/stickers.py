"""Sticker management for staff: a building's sheet, one sticker's SVG/PNG, reissue and revoke."""

from __future__ import annotations

import tempfile
from pathlib import Path
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
from werkzeug.wrappers import Response as WerkzeugResponse

from dispatch import clock
from dispatch.db import db
from dispatch.models import Community, Place, PlaceKind, Sticker, StickerStatus
from dispatch.staff.audit import log
from dispatch.staff.auth import login_required, may_see
from qr import codes, usage
from qr.labels import InsecureUrlError, StickerLabel, check_printable_url
from qr.printing import Selection, places_in, print_selection, sticker_label
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
    stickers: dict[int, list[Sticker]] = {p.id: [] for p in places}
    for sticker in db.session.scalars(sa.select(Sticker).where(
            Sticker.place_id.in_(list(stickers))).order_by(Sticker.id.desc())):
        stickers[sticker.place_id].append(sticker)
    counts = usage.scan_counts([s.id for group in stickers.values() for s in group])
    return render_template("staff/stickers_building.html", building=place, places=places,
                           stickers=stickers, counts=counts, never=usage.NEVER,
                           layouts=sorted(LAYOUTS))


@bp.get("/unscanned")
@login_required
def unscanned() -> Any:
    """Stickers nobody has scanned for 90 days: someone should check they are still up."""
    community = db.session.get_one(Community, g.staff.community_id)
    grid = db.session.get(Place, g.staff.grid_id) if g.staff.grid_id else None
    rows = [row for row in usage.unscanned(community, clock.now(), root=grid)
            if may_see(row.place)]
    return render_template("staff/stickers_unscanned.html", rows=rows, days=usage.UNSCANNED_DAYS,
                           building_of=usage.building_of)


@bp.get("/<code>.pdf")
@login_required
def sheet(code: str) -> Any:
    """The building's printable sheet as a PDF download."""
    place = _building(code)
    if request.args.get("layout", "3x4") not in LAYOUTS:
        abort(400, f"layout: one of {', '.join(sorted(LAYOUTS))}")
    layout = Layout.preset(request.args.get("layout", "3x4"))
    today = clock.today(place.community.timezone, clock.now())
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"stickers-{place.code}.pdf"
        try:
            print_selection(Selection(place.code), current_app.config["PUBLIC_BASE_URL"], out,
                            layout=layout, printed_on=today, max_per_file=10_000,
                            allow_insecure_url=current_app.config["STICKERS_ALLOW_INSECURE_URL"])
        except LookupError:  # nothing to print here
            abort(404)
        except InsecureUrlError:
            return _refuse_insecure_url(place)
        except ValueError as exc:  # e.g. a place name the font cannot print: nothing was issued
            flash(f"无法打印：{exc}")
            return redirect(url_for("stickers.building", code=place.code))
        data = out.read_bytes()
    log("stickers.sheet", place.code, layout=layout.name)
    db.session.commit()
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="stickers-{place.code}.pdf"'})


def _refuse_insecure_url(place: Place) -> WerkzeugResponse:
    """Back to the place's sticker page, saying why nothing can be printed for this base URL."""
    flash("无法打印：PUBLIC_BASE_URL 不是公网 https 地址，贴出去的二维码居民扫不通。"
          f"请先把 PUBLIC_BASE_URL 设为公网 https 地址（现为 "
          f"{current_app.config['PUBLIC_BASE_URL']}）")
    page = place.ancestor(PlaceKind.BUILDING) or place.ancestor(PlaceKind.GRID)
    return redirect(url_for("stickers.building", code=page.code) if page
                    else url_for("stickers.index"))


def _printable_label(sticker: Sticker) -> StickerLabel | None:
    """The sticker's label, or None when its base URL may not be printed: one sticker's SVG or
    PNG goes on a wall as surely as a sheet does, so it follows the sheet's rule."""
    base_url = current_app.config["PUBLIC_BASE_URL"]
    if not current_app.config["STICKERS_ALLOW_INSECURE_URL"]:
        try:
            check_printable_url(base_url)
        except InsecureUrlError:
            return None
    return sticker_label(sticker.place, sticker.code, base_url)


@bp.get("/code/<code>.svg")
@login_required
def svg(code: str) -> Any:
    """One sticker as SVG."""
    sticker = _visible_sticker(code)
    label = _printable_label(sticker)
    if label is None:
        return _refuse_insecure_url(sticker.place)
    return Response(sticker_svg(label), mimetype="image/svg+xml", headers={
        "Content-Disposition": f'attachment; filename="sticker-{sticker.code}.svg"'})


@bp.get("/code/<code>.png")
@login_required
def png(code: str) -> Any:
    """One sticker's QR symbol as PNG."""
    sticker = _visible_sticker(code)
    label = _printable_label(sticker)
    if label is None:
        return _refuse_insecure_url(sticker.place)
    return Response(sticker_png(label), mimetype="image/png", headers={
        "Content-Disposition": f'attachment; filename="sticker-{sticker.code}.png"'})


#: Each sticker action's confirmation: title, what it does, the button's words and colour.
CONFIRM: dict[str, tuple[str, str, str, str]] = {
    "reissue": ("补发贴纸", "生成一个新编号贴在原处；旧贴纸在停用前仍可扫码。", "确认补发",
                "neutral"),
    "retire": ("停用贴纸", "旧贴纸扫码后不再派单，只显示社区电话。补发的新贴纸贴好后再停用旧的。",
               "确认停用", "caution"),
    "revoke": ("作废贴纸", "贴纸被滥用时使用：扫码只显示社区电话，不再通知任何人，且不能恢复。",
               "确认作废", "danger"),
}


@bp.get("/code/<code>/<action>")
@login_required(write=True)
def confirm(code: str, action: str) -> Any:
    """The confirmation step of a sticker action: what it does, then one button (no script)."""
    sticker = _visible_sticker(code)
    if action not in CONFIRM:
        abort(404)
    building_place = sticker.place.ancestor(PlaceKind.BUILDING)
    back = (url_for("stickers.building", code=building_place.code) if building_place
            else url_for("stickers.index"))
    return render_template("staff/sticker_confirm.html", sticker=sticker, action=action,
                           wording=CONFIRM[action], back=back)


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
