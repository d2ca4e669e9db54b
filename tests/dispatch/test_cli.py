"""The command line as an operator meets it: a mistake or a database error is one clear line
and exit code 1, never a traceback, and never a value from the failed statement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from dispatch.db import db
from dispatch.models import Member, StaffUser
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
FLASK = [sys.executable, "-m", "flask", "--app", "app"]


def test_create_staff_with_a_taken_login_says_so_and_leaks_nothing(app: Flask) -> None:
    with app.app_context():
        factories.import_community(factories.small_community())
    runner = app.test_cli_runner()
    with app.app_context():  # as `flask` pushes it for a plain click command
        first = runner.invoke(args=["create-staff", "wang", "--name", "王", "--password",
                                    "first-password"])
        assert first.exit_code == 0, first.output
        second = runner.invoke(args=["create-staff", "wang", "--name", "王二", "--password",
                                     "second-password"])
    assert second.exit_code == 1
    assert "Error: staff login 'wang' already exists" in second.output
    assert "scrypt" not in second.output and "pbkdf2" not in second.output
    assert isinstance(second.exception, SystemExit)  # a clean exit, not an escaped exception
    with app.app_context():
        assert db.session.scalars(sa.select(StaffUser.name)).all() == ["王"]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`flask --app app …` in a fresh process on an SQLite file, as an operator runs it."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'linli.sqlite3'}",
           "SECRET_KEY": "cli-test-secret-key-0123456789"}
    env.pop("REDIS_URL", None)
    return subprocess.run([*FLASK, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_database_error_in_a_command_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    # The schema was never created: every query fails inside the database driver.
    for args in (["stickers", "retire", "ABCDEF123456"], ["stickers", "unscanned"],
                 ["create-staff", "wang", "--name", "王", "--password", "long-enough"],
                 ["community", "export", str(tmp_path / "out.yaml")]):
        result = _cli(tmp_path, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert "[SQL:" not in result.stderr and "[parameters:" not in result.stderr
        assert "Error: the database refused this: " in result.stderr, (args, result.stderr)


def test_a_worker_with_redis_unreachable_says_so_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'linli.sqlite3'}",
           "SECRET_KEY": "cli-test-secret-key-0123456789", "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run([*FLASK, "worker", "--burst"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "Error: Redis at redis://127.0.0.1:1/0 is not reachable" in result.stderr


def test_community_export_creates_its_folder_and_the_export_imports_back(
        app: Flask, tmp_path: Path) -> None:
    # The README writes exports under out/, which a fresh clone does not have.
    with app.app_context():
        factories.import_community(factories.small_community())
    out = tmp_path / "out" / "roster.xlsx"
    runner = app.test_cli_runner()
    exported = runner.invoke(args=["community", "export", str(out)])
    assert exported.exit_code == 0, exported.output
    again = runner.invoke(args=["community", "import", str(out), "--partial", "community"])
    assert again.exit_code == 0, again.output


def test_the_demo_if_empty_keeps_console_edits_and_a_plain_reload_says_what_it_undid(
        app: Flask) -> None:
    """deploy-local and run-demo load the demo on every start; staff edits must survive."""
    runner = app.test_cli_runner()
    assert runner.invoke(args=["community", "demo", "--if-empty"]).exit_code == 0
    with app.app_context():
        member = db.session.scalars(sa.select(Member).order_by(Member.id)).first()
        original, member.name = member.name, "改过的名字"
        db.session.commit()
        member_id = member.id
    again = runner.invoke(args=["community", "demo", "--if-empty"])
    assert again.exit_code == 0 and "not imported again" in again.output
    with app.app_context():
        assert db.session.get(Member, member_id).name == "改过的名字"
    reload = runner.invoke(args=["community", "demo"])
    assert reload.exit_code == 0 and "1 updated" in reload.output, reload.output
    with app.app_context():
        assert db.session.get(Member, member_id).name == original
