"""The app factory and its settings: a bad setting stops the start with a message naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dispatch.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_run_on_sqlite_in_the_instance_folder_without_redis(tmp_path: Path) -> None:
    settings = load_settings({}, str(tmp_path))
    assert settings["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/linli.sqlite3"
    assert settings["REDIS_URL"] is None
    assert settings["SMS_BACKEND"] == "console"
    assert settings["TIME_ZONE"] == "Asia/Shanghai"


def test_a_generated_secret_key_survives_a_restart(tmp_path: Path) -> None:
    first = load_settings({}, str(tmp_path))["SECRET_KEY"]
    assert load_settings({}, str(tmp_path))["SECRET_KEY"] == first
    assert len(str(first)) >= 32


def test_postgres_urls_get_the_psycopg_driver(tmp_path: Path) -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://u@db/linli"}, str(tmp_path))
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/linli"


@pytest.mark.parametrize(("name", "value"), [
    ("DATABASE_URL", "mysql://root@localhost/linli"),
    ("REDIS_URL", "localhost:6379"),
    ("PUBLIC_BASE_URL", "linli.example.cn"),
    ("PUBLIC_BASE_URL", "https://linli.example.cn/?a=1"),
    ("SECRET_KEY", "short"),
    ("SMS_BACKEND", "pigeon"),
    ("TIME_ZONE", "Mars/Olympus"),
    ("SWEEP_SECONDS", "soon"),
    ("TRUSTED_PROXIES", "all"),
])
def test_a_malformed_setting_is_named_in_the_error(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: "):
        load_settings({name: value}, str(tmp_path))


def test_the_service_refuses_to_start_with_a_bad_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "routes"], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PUBLIC_BASE_URL": "ftp://nowhere",
             "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL: expected an absolute http(s) URL" in result.stderr


def test_importing_the_app_module_builds_nothing() -> None:
    probe = "import app, sys; sys.exit('app' in vars(app))"
    assert subprocess.run([sys.executable, "-c", probe], cwd=ROOT, timeout=60).returncode == 0


def test_behind_a_trusted_proxy_the_resident_address_comes_from_its_header(
        sqlite_template: Path) -> None:
    from flask import request

    from app import create_app
    from tests.conftest import base_config

    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=f"sqlite:///{sqlite_template}",
                                 TRUSTED_PROXIES=1))
    app.add_url_rule("/whoami", "whoami", lambda: request.remote_addr or "")
    answer = app.test_client().get("/whoami", headers={"X-Forwarded-For": "203.0.113.7"})
    assert answer.get_data(as_text=True) == "203.0.113.7"

