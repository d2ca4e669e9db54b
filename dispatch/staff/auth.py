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
import werkzeug.security
from flask import (
    Blueprint,
    Flask,
    Response,
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
from dispatch.resident import limits

bp = Blueprint("auth", __name__, url_prefix="/staff")


def password_hash(password: str) -> str:
    """The stored hash of a new password; too short a password is refused (ValueError)."""
    if len(password) < 8:
        raise ValueError("passwords need at least 8 characters")
    return generate_password_hash(password)


def create_user(community: Community, username: str, name: str, password: str,
                role: StaffRole, grid: Place | None = None) -> StaffUser:
    """Add a staff login (flushed, not committed); grid secretaries need their grid."""
    if role == StaffRole.GRID_SECRETARY and (grid is None or grid.kind != PlaceKind.GRID):
        raise ValueError("a grid secretary needs a grid")
    if db.session.scalar(sa.select(StaffUser.id).where(StaffUser.username == username)):
        # Checked here so the answer names the login; the unique constraint still decides a race.
        raise ValueError(f"staff login {username!r} already exists")
    user = StaffUser(community_id=community.id, username=username, name=name, role=role,
                     grid_id=grid.id if grid else None,
                     password_hash=password_hash(password))
    db.session.add(user)
    db.session.flush()
    return user


#: Failed logins allowed per user name and per client address (Flask-Limiter rates); a
#: successful login does not count. Beyond them the login form answers 429 for the window.
DEFAULT_LIMITS = {
    "STAFF_LIMIT_LOGIN_USER": "10 per 15 minutes;30 per day",
    "STAFF_LIMIT_LOGIN_IP": "30 per 15 minutes;200 per day",
}

@functools.cache
def _no_such_user() -> str:
    """The hash checked when the user name is unknown, so a wrong name costs as long as a
    wrong password and the answer's timing does not tell which names exist."""
    # Werkzeug's default method, as every real login's hash (tests patch this module's name).
    return werkzeug.security.generate_password_hash("no such user: any password fails")


def _login_name() -> str:
    return request.form.get("username", "").strip().lower()[:64] or "(empty)"


def _failed(response: Response) -> bool:
    return request.method == "POST" and response.status_code != 302


def _not_a_post() -> bool:
    return request.method != "POST"


_per_user = limits.limiter.shared_limit(
    limits.configured("STAFF_LIMIT_LOGIN_USER"), scope="staff-login-user", key_func=_login_name,
    exempt_when=_not_a_post, deduct_when=_failed)
_per_address = limits.limiter.shared_limit(
    limits.configured("STAFF_LIMIT_LOGIN_IP"), scope="staff-login-ip",
    exempt_when=_not_a_post, deduct_when=_failed)


@bp.before_app_request
def load_user() -> None:
    user_id = security.number(session.get("staff_id"))
    g.staff = db.session.get(StaffUser, user_id) if user_id else None
    if g.staff is not None and (not g.staff.active or session.get("generation")
                                != g.staff.session_generation):
        # Deactivated, or this cookie was made before a logout: it no longer logs anyone in.
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
@_per_user
@_per_address
def login() -> Any:
    """Log in with username and password; failures are limited per name and per address."""
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:64]
        user = db.session.scalar(sa.select(StaffUser).where(StaffUser.username == username))
        password_hash = user.password_hash if user and user.active else _no_such_user()
        if check_password_hash(password_hash, request.form.get("password", "")) and user:
            session.clear()
            session.permanent = True
            session["staff_id"] = user.id
            session["generation"] = user.session_generation
            return redirect(security.safe_path(request.args.get("next"), url_for("auth.home")))
        flash("用户名或密码不正确 / Wrong username or password")
    return render_template("staff/login.html")


@bp.post("/logout")
def logout() -> Any:
    """Log out, here and in every other copy of this login's cookie."""
    if g.get("staff") is not None:
        g.staff.session_generation += 1
        db.session.commit()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.errorhandler(429)
def too_many_attempts(error: Exception) -> tuple[str, int]:
    """Too many failed logins: say so, and when to try again."""
    flash("尝试次数过多，请 15 分钟后再试 / Too many attempts; try again in 15 minutes")
    return render_template("staff/login.html"), 429


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


@click.command("set-staff-password")
@click.argument("username")
@click.password_option()
def set_password_command(username: str, password: str) -> None:
    """Give a staff login a new password; its open console sessions end."""
    user = db.session.scalar(sa.select(StaffUser).where(StaffUser.username == username))
    if user is None:
        raise click.ClickException(f"no staff login {username!r}")
    try:
        user.password_hash = password_hash(password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    user.session_generation += 1
    db.session.commit()
    click.echo(f"New password set for {username}")


def init_app(app: Flask) -> None:
    for name, rate in DEFAULT_LIMITS.items():
        app.config.setdefault(name, rate)
    # Flask's default is a month; a shared office computer needs a working day at most.
    app.permanent_session_lifetime = timedelta(hours=app.config.get("STAFF_SESSION_HOURS", 8))
    # The cookie's flags are set with the other request defences: dispatch/security.py.
    app.register_blueprint(bp)
    app.cli.add_command(create_staff_command)
    app.cli.add_command(set_password_command)
