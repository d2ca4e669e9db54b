"""Staff login: hashed passwords, CSRF-protected forms, expiring sessions, roles."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from dispatch.db import db
from dispatch.models import Community, StaffRole, StaffUser
from dispatch.staff.auth import create_user
from tests.factories import add_staff, login


def test_passwords_are_stored_hashed(app: Flask, community: int) -> None:
    add_staff(app)
    with app.app_context():
        stored = db.session.scalar(sa.select(StaffUser.password_hash))
    assert "correct horse" not in stored and stored.startswith(("scrypt:", "pbkdf2:"))


def test_the_console_needs_a_login(client, community: int) -> None:
    response = client.get("/staff/")
    assert response.status_code == 302 and "/staff/login" in response.location


def test_login_with_the_right_password_opens_the_console(app: Flask, client,
                                                         community: int) -> None:
    add_staff(app)
    assert login(client).status_code == 302
    assert client.get("/staff/").status_code == 200


def test_a_wrong_password_is_refused(app: Flask, client, community: int) -> None:
    add_staff(app)
    response = login(client, password="wrong horse")
    assert response.status_code == 200
    assert "用户名或密码不正确" in response.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302


def test_a_login_without_the_csrf_token_is_refused(app: Flask, client, community: int) -> None:
    add_staff(app)
    response = client.post("/staff/login", data={"username": "admin",
                                                 "password": "correct horse"})
    assert response.status_code == 400


def test_sessions_expire(app: Flask, community: int) -> None:
    assert app.permanent_session_lifetime.total_seconds() == 8 * 3600


def test_a_grid_secretary_needs_a_grid(app: Flask, community: int) -> None:
    import pytest

    with app.app_context(), pytest.raises(ValueError, match="needs a grid"):
        create_user(db.session.scalars(sa.select(Community)).one(), "s", "s", "12345678",
                    StaffRole.GRID_SECRETARY)
