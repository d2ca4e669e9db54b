"""The audit log: every staff action, who did it and when.

Views record what they did with `log()`, in the transaction of the change itself. As a safety
net, any POST to the console that did not call `log()` (refused, failed, or a view that forgot)
still leaves a row naming the endpoint and the answer it got, so no staff action goes unlogged.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, g, render_template, request

from dispatch import clock, security
from dispatch.db import db
from dispatch.models import AuditLog, StaffRole, StaffUser
from dispatch.staff.auth import login_required

bp = Blueprint("audit", __name__, url_prefix="/staff/audit")

PAGE_SIZE = 100


def log(action: str, target: str | None = None, **data: object) -> AuditLog:
    """Record a staff action in the caller's transaction (committed with the change itself)."""
    staff = g.get("staff")
    entry = AuditLog(staff_id=staff.id if staff else None, action=action, target=target,
                     data=data, at=clock.now())
    db.session.add(entry)
    g.audited = True
    return entry


@bp.after_app_request
def log_unlogged_posts(response: Response) -> Response:
    """Write a row for a console POST that did not log itself (its changes, if any, are gone).

    Anonymous POSTs are staff actions only at the login form (a failed login, named by the
    user name tried; the form's rate limit bounds them). Anyone on the internet can POST to
    any other URL under /staff, and those rows would be a way to fill the log, not a record.
    """
    if request.method != "POST" or not request.path.startswith("/staff") or g.get("audited"):
        return response
    staff = g.get("staff")
    staff_id = staff.id if staff else None
    if staff_id is None and request.endpoint != "auth.login":
        return response
    data: dict[str, Any] = {"status": response.status_code, "path": request.path}
    if staff_id is None and request.form.get("username"):
        data["username"] = request.form["username"][:64]
    try:
        db.session.rollback()
        db.session.add(AuditLog(staff_id=staff_id, action=request.endpoint or "unknown",
                                target=None, data=data, at=clock.now()))
        db.session.commit()
    except Exception:  # the audit row must never turn an answer into an error
        db.session.rollback()
    return response


@bp.get("/")
@login_required
def index() -> Any:
    """The latest staff actions: everyone's for admins and viewers, a secretary's own."""
    query = (sa.select(AuditLog, StaffUser.name, StaffUser.username)
             .join(StaffUser, StaffUser.id == AuditLog.staff_id)
             .where(StaffUser.community_id == g.staff.community_id))
    if g.staff.role == StaffRole.GRID_SECRETARY:
        query = query.where(AuditLog.staff_id == g.staff.id)
    if request.args.get("staff"):
        query = query.where(StaffUser.username == request.args["staff"])
    if request.args.get("action"):
        query = query.where(AuditLog.action.startswith(request.args["action"]))
    before = security.number(request.args.get("before"))
    if before:
        query = query.where(AuditLog.id < before)
    rows = db.session.execute(query.order_by(AuditLog.id.desc()).limit(PAGE_SIZE)).all()
    return render_template("staff/audit.html", rows=rows, page_size=PAGE_SIZE)
