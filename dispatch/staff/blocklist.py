"""The blocklist of call-back phones staff have blocked for abuse.

A blocked number cannot be left as a call-back phone on a resident message: the form says so
politely and files nothing, and the resident may remove the number and send the message
without it. This is aimed at the common abuse — someone entering a neighbour's number so
that responders keep calling them — while never stopping a real report.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from dispatch import clock
from dispatch.db import db
from dispatch.models import BlockedPhone
from dispatch.resident import phones
from dispatch.staff.audit import log
from dispatch.staff.auth import login_required

bp = Blueprint("blocklist", __name__, url_prefix="/staff/blocklist")

REASON_MAX = 200


@bp.get("/")
@login_required(write=True)
def index() -> Any:
    """The blocked numbers, newest first, and the form to add one."""
    return _page()


@bp.post("/")
@login_required(write=True)
def add() -> Any:
    """Block a number (mainland mobile or E.164, stored as E.164)."""
    raw = request.form.get("phone", "")
    reason = request.form.get("reason", "").strip()
    problem = None
    try:
        phone = phones.normalise(raw)
    except phones.PhoneError:
        problem = "号码不正确：请填 11 位手机号，或以 + 开头的国际号码。"
    if len(reason) > REASON_MAX:
        problem = f"原因最多 {REASON_MAX} 字。"
    if problem:
        return _page(problem=problem, phone=raw, reason=reason, status=422)
    if db.session.scalar(sa.select(BlockedPhone).where(BlockedPhone.phone == phone)):
        flash(f"{phone} 已在黑名单中。")
    else:
        db.session.add(BlockedPhone(phone=phone, reason=reason or None,
                                      created_at=clock.now()))
        log("blocklist.add", phone, reason=reason)
        db.session.commit()
        flash(f"已加入黑名单：{phone}")
    return redirect(url_for(".index"), 303)


@bp.post("/<int:entry_id>/remove")
@login_required(write=True)
def remove(entry_id: int) -> Any:
    """Unblock a number."""
    entry = db.session.get(BlockedPhone, entry_id)
    if entry is None:
        abort(404)
    log("blocklist.remove", entry.phone)
    db.session.delete(entry)
    db.session.commit()
    flash(f"已移出黑名单：{entry.phone}")
    return redirect(url_for(".index"), 303)


def _page(*, problem: str | None = None, phone: str = "", reason: str = "",
          status: int = 200) -> tuple[str, int]:
    entries = db.session.scalars(sa.select(BlockedPhone).order_by(BlockedPhone.created_at.desc(),
                                                                  BlockedPhone.id.desc()))
    return render_template("staff/blocklist.html", entries=list(entries), problem=problem,
                           phone=phone, reason=reason, reason_max=REASON_MAX), status
