"""`scripts/run-demo`'s staff login step (`scripts/demo-admin`): it says what really happened."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from flask import Flask

from tests import factories

ROOT = Path(__file__).resolve().parents[3]


def _demo_admin(app: Flask, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
               "SECRET_KEY": "demo-admin-test-secret-key", **env}
    environ.pop("REDIS_URL", None)
    return subprocess.run([str(ROOT / "scripts/demo-admin")], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)


def test_demo_admin_reports_a_short_password_and_creates_keeps_or_resets_the_login(
        sqlite_app: Flask) -> None:
    with sqlite_app.app_context():
        factories.import_community(factories.small_community())
    short = _demo_admin(sqlite_app, DEMO_ADMIN_PASSWORD="short")
    assert short.returncode == 1
    assert "passwords need at least 8 characters" in short.stderr
    assert "already exists" not in short.stdout + short.stderr

    created = _demo_admin(sqlite_app)
    assert created.returncode == 0, created.stderr
    assert "Created staff login 'admin'" in created.stdout
    client = sqlite_app.test_client()
    assert factories.login(client, "admin", "linli-demo").status_code == 302

    again = _demo_admin(sqlite_app, DEMO_ADMIN_PASSWORD="another-password")
    assert again.returncode == 0, again.stderr
    assert "already exists and keeps its password" in again.stdout
    assert "set-staff-password admin" in again.stdout

    reset = subprocess.run(
        [str(ROOT / ".venv/bin/flask"), "--app", "app", "set-staff-password", "admin",
         "--password", "another-password"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "DATABASE_URL": sqlite_app.config["SQLALCHEMY_DATABASE_URI"],
             "SECRET_KEY": "demo-admin-test-secret-key"}, timeout=120)
    assert reset.returncode == 0, reset.stderr
    assert factories.login(sqlite_app.test_client(), "admin", "another-password"
                           ).status_code == 302
