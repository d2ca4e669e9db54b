"""Test fixtures: an app on the real PostgreSQL (the default `app`), one on SQLite, Redis.

PostgreSQL and Redis are used for real. Each test session gets its own PostgreSQL schema
(migrated once, truncated per test) and its own Redis database number (flushed per test), so
several test runs on one machine do not trip over each other. When a server is not reachable
the tests that need it skip with a loud reason; `.ci/run` sets LINLI_REQUIRE_SERVICES=1,
which turns those skips into failures so CI always runs them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from app import create_app
from dispatch import jobs
from dispatch.community import import_data, tables_to_data
from dispatch.db import db
from dispatch.resident import scans
from tests import case_writes, clock, factories

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("LINLI_TEST_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LINLI_TEST_REDIS_URL", "redis://127.0.0.1:6379")
REQUIRE_SERVICES = os.environ.get("LINLI_REQUIRE_SERVICES") == "1"

#: The fake Twilio and a provider-configured app (`fake_twilio`, `twilio_app`).
pytest_plugins = ["tests.fakes.fixtures"]



def pytest_configure(config: pytest.Config) -> None:
    # Every write of a case's status or milestones during the tests must come from the
    # lifecycle (tests/case_writes.py; tests/dispatch/case/test_one_owner.py).
    case_writes.install()


def unavailable(what: str, error: Exception) -> None:
    """Skip loudly, or fail when CI requires the real services."""
    message = f"{what} is not reachable ({type(error).__name__}: {error})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; LINLI_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
    pytest.skip(f"!!! SKIPPED, NOT TESTED: {message}")


def base_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "PUBLIC_BASE_URL": "http://linli.test",
        "REDIS_URL": None,
        "JOBS_AUTOSTART": False,
        "SMS_BACKEND": "console",
    }
    config.update(overrides)
    return config


def migrate(app: Flask) -> None:
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"), revision="heads")
    _dispose(app)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    migrate(create_app(base_config(SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}")))
    return path


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A PostgreSQL schema of this test session's own, migrated once and dropped after."""
    schema = f"linli_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # the server may be down or the URL wrong
        engine.dispose()
        unavailable(f"PostgreSQL at {PG_URL}", exc)
    try:
        migrate(create_app(pg_config(schema)))
        yield schema
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def pg_config(schema: str, **overrides: Any) -> dict[str, Any]:
    return base_config(
        SQLALCHEMY_DATABASE_URI=PG_URL,
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"options": f"-csearch_path={schema}"},
                                   "pool_pre_ping": True},
        **overrides,
    )


def _truncate_all(app: Flask) -> None:
    with app.app_context():
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()


@pytest.fixture
def sqlite_app(sqlite_template: Path, tmp_path: Path) -> Iterator[Flask]:
    path = tmp_path / "linli.sqlite3"
    shutil.copy(sqlite_template, path)
    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}"))
    jobs.set_worker_app(app)
    yield app
    _dispose(app)


@pytest.fixture
def pg_app(pg_schema: str) -> Iterator[Flask]:
    app = create_app(pg_config(pg_schema))
    _truncate_all(app)
    jobs.set_worker_app(app)
    yield app
    _dispose(app)


def _dispose(app: Flask) -> None:
    scans.writer(app).close()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_app(request: pytest.FixtureRequest) -> Flask:
    """The same test on SQLite and on the real PostgreSQL."""
    return request.getfixturevalue(f"{'sqlite' if request.param == 'sqlite' else 'pg'}_app")


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    """The process clock stopped at `tests.clock.START`; move it with `tests.clock.move_to`."""
    with clock.frozen():
        yield


@pytest.fixture
def app(pg_app: Flask) -> Flask:
    """The default app: the real PostgreSQL, as in production. A test where the embedded
    default (SQLite) matters too takes `any_app`, which runs it on both."""
    return pg_app


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def redis_db() -> Iterator[int]:
    """A Redis database number no other test session is using, claimed with a lock key."""
    from redis import Redis

    token = uuid.uuid4().hex
    try:
        Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        unavailable(f"Redis at {REDIS_URL}", exc)
    for number in range(1, 16):
        conn = Redis.from_url(f"{REDIS_URL}/{number}")
        if conn.set("linli:test-session", token, nx=True, ex=6 * 3600):
            try:
                yield number
            finally:
                if conn.get("linli:test-session") == token.encode():
                    conn.flushdb()
            return
    pytest.fail("every Redis database 1–15 is claimed by another test session")


@pytest.fixture
def redis_url(redis_db: int) -> str:
    """The URL of this session's Redis database, emptied before the test (lock kept)."""
    from redis import Redis

    url = f"{REDIS_URL}/{redis_db}"
    conn = Redis.from_url(url)
    lock = conn.get("linli:test-session")
    conn.flushdb()
    conn.set("linli:test-session", lock, ex=6 * 3600)
    return url


@pytest.fixture
def rq_app(pg_schema: str, redis_url: str) -> Iterator[Flask]:
    """An app on the real PostgreSQL and Redis (jobs go to RQ), inside an app context."""
    app = create_app(pg_config(pg_schema, REDIS_URL=redis_url))
    _truncate_all(app)
    jobs.set_worker_app(app)
    with app.app_context():
        yield app
    _dispose(app)


@pytest.fixture
def community(app: Flask) -> Any:
    """A small community imported through the ordinary import: see `tests/factories.py`."""
    with app.app_context():
        imported, _ = import_data(tables_to_data(factories.small_community(), "small"))
        return imported.id
