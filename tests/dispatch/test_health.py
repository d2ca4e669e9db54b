"""`GET /healthz` on the embedded defaults, on a broken database, and with real Redis."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from app import create_app
from tests.conftest import base_config


def test_healthy_on_sqlite_with_the_embedded_runner(sqlite_app: Flask) -> None:
    response = sqlite_app.test_client().get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["backend"] == "sqlite"
    assert body["checks"]["jobs"]["kind"] == "embedded"
    assert "redis" not in body["checks"]


def test_the_embedded_runner_starts_with_the_first_request(sqlite_template: Path,
                                                           tmp_path: Path) -> None:
    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=f"sqlite:///{sqlite_template}",
                                 JOBS_AUTOSTART=True))
    try:
        body = app.test_client().get("/healthz").get_json()
        assert body["checks"]["jobs"]["running"] is True
    finally:
        app.extensions["linli.jobs"].stop()


def test_unhealthy_when_the_database_cannot_be_opened(tmp_path: Path) -> None:
    app = create_app(base_config(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/x.sqlite3"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"]["ok"] is False


def test_with_redis_it_reports_redis_and_wants_a_worker(sqlite_app: Flask, redis_url: str,
                                                        sqlite_template: Path) -> None:
    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=f"sqlite:///{sqlite_template}",
                                 REDIS_URL=redis_url))
    body = app.test_client().get("/healthz")
    checks = body.get_json()["checks"]
    assert checks["redis"]["ok"] is True
    assert checks["jobs"] == {"ok": False, "kind": "rq", "workers": 0, "queued": 0}
    assert body.status_code == 503


def test_unhealthy_when_redis_is_down(sqlite_template: Path) -> None:
    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=f"sqlite:///{sqlite_template}",
                                 REDIS_URL="redis://127.0.0.1:1/0"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"]["ok"] is False
