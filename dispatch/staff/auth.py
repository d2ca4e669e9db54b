"""Staff login: hashed passwords, expiring sessions, and roles checked on every view.

Roles: a community admin may do everything; a grid secretary sees only their own grid; a
viewer may look but not change anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click
import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.security import check_password_hash, generate_password_hash

from dispatch import security
from dispatch.db import db
from dispatch.models import Community, Place, PlaceKind, StaffRole, StaffUser

bp = Blueprint("auth", __name__, url_prefix="/staff")


def create_user(community: Community, username: str, name: str, password: str,
                role: StaffRole, grid: Place | None = None) -> StaffUser:
    """Add a staff login (flushed, not committed); grid secretaries need their grid."""
    if role == StaffRole.GRID_SECRETARY and (grid is None or grid.kind != PlaceKind.GRID):
        raise ValueError("a grid secretary needs a grid")
    if len(password) < 8:
        raise ValueError("passwords need at least 8 characters")
    user = StaffUser(community_id=community.id, username=username, name=name, role=role,
                     grid_id=grid.id if grid else None,
                     password_hash=generate_password_hash(password))
    db.session.add(user)
    db.session.flush()
    return user


@bp.before_app_request
def load_user() -> None:
    user_id = session.get("staff_id")
    g.staff = db.session.get(StaffUser, user_id) if user_id else None
    if g.staff is not None and not g.staff.active:
        session.clear()
        g.staff = None


def login_required(view: Callable[..., Any] | None = None, *,
                   write: bool = False) -> Callable[..., Any]:
    """Require a logged-in staff member; `write=True` also refuses viewers."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if g.get("staff") is None:
                return redirect(url_for("auth.login", next=request.full_path))
            if write and g.staff.role == StaffRole.VIEWER:
                abort(403)
            return func(*args, **kwargs)

        return wrapped

    return decorate(view) if view is not None else decorate


def may_see(place: Place) -> bool:
    """Whether the logged-in staff member may see `place`: secretaries only their grid."""
    staff: StaffUser = g.staff
    if place.community_id != staff.community_id:
        return False
    if staff.role != StaffRole.GRID_SECRETARY:
        return True
    grid = place.ancestor(PlaceKind.GRID)
    return grid is not None and grid.id == staff.grid_id


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Log in with username and password."""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        user = db.session.scalar(sa.select(StaffUser).where(StaffUser.username == username))
        if user and user.active and check_password_hash(user.password_hash,
                                                        request.form.get("password", "")):
            session.clear()
            session.permanent = True
            session["staff_id"] = user.id
            return redirect(security.safe_path(request.args.get("next"), url_for("auth.home")))
        flash("用户名或密码不正确 / Wrong username or password")
    return render_template("staff/login.html")


@bp.post("/logout")
def logout() -> Any:
    """Log out."""
    session.clear()
    return redirect(url_for("auth.login"))


@bp.get("/")
@login_required
def home() -> Any:
    """The console's front page."""
    return render_template("staff/home.html")


@click.command("create-staff")
@click.argument("username")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice([r.value for r in StaffRole]), default="admin")
@click.option("--grid", "grid_code", help="Grid code, for a grid secretary.")
@click.option("--community", "code", help="Community code, if there are several.")
@click.password_option()
def create_staff_command(username: str, name: str, role: str, grid_code: str | None,
                         code: str | None, password: str) -> None:
    """Create a staff login for the console."""
    query = sa.select(Community)
    if code:
        query = query.where(Community.code == code)
    community = db.session.scalars(query).first()
    if community is None:
        raise click.ClickException("no such community: import one first")
    grid = db.session.scalar(sa.select(Place).where(Place.code == grid_code)) if grid_code else None
    try:
        create_user(community, username, name, password, StaffRole(role), grid)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"Created {role} {username}")


def init_app(app: Flask) -> None:
    # Flask's default is a month; a shared office computer needs a working day at most.
    app.permanent_session_lifetime = timedelta(hours=app.config.get("STAFF_SESSION_HOURS", 8))
    # The cookie's flags are set with the other request defences: dispatch/security.py.
    app.register_blueprint(bp)
    app.cli.add_command(create_staff_command)
