"""A console with the March history of two grids, and one login per role.

`sec1` is the secretary of 第一网格 (buildings 1 and 2), `sec2` of 第二网格 (building 3).
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.security import generate_password_hash

from dispatch.db import db
from dispatch.models import Case, Place, StaffRole
from dispatch.staff import auth
from tests.dispatch.staff.history import march, two_grid_community
from tests.factories import add_staff, csrf_token, login

USERS = {"admin": (StaffRole.ADMIN, None), "viewer": (StaffRole.VIEWER, None),
         "sec1": (StaffRole.GRID_SECRETARY, "TS-G1"), "sec2": (StaffRole.GRID_SECRETARY, "TS-G2")}


@pytest.fixture
def console(app: Flask, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The March cases by letter (ids) and the grids' ids, with every login created.

    Passwords are hashed with a cheap PBKDF2 here: four scrypt hashes per test cost seconds.
    """
    monkeypatch.setattr(auth, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))
    with app.app_context():
        two_grid_community()
        cases = {letter: case.id for letter, case in march().items()}
        grids = dict(db.session.execute(sa.select(Place.code, Place.id).where(
            Place.kind == "grid")).all())
    for username, (role, grid) in USERS.items():
        add_staff(app, username, role, grid)
    return {"cases": cases, "grids": grids}


def client_for(app: Flask, username: str) -> Any:
    """A test client logged in as `username`."""
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def post(client: Any, path: str, data: dict[str, Any] | None = None,
         page: str = "/staff/cases/") -> Any:
    """POST a console form with the CSRF token of a page the client may open."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, page)})


def case_row(app: Flask, case_id: int) -> Case:
    with app.app_context():
        case = db.session.get(Case, case_id)
        db.session.expunge(case)
        return case
