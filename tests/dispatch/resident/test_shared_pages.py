"""With Redis, every web process shares the kept sticker pages, and a change committed in any
process takes them away everywhere at once: two apps here are two web processes (or a web
process and a worker) on one PostgreSQL schema and one Redis database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from redis import Redis

from app import create_app
from dispatch import clock
from dispatch.community import import_data, tables_to_data
from dispatch.db import db
from dispatch.models import Notice, Place
from dispatch.resident import pages
from qr import codes
from tests import factories
from tests.conftest import _dispose, _truncate_all, pg_config
from tests.dispatch.resident.conftest import issue_stickers
from tests.dispatch.resident.helpers import Resident, csrf_token
from tests.sql import sent

PLACE = "TS-B1-U1"


@pytest.fixture
def processes(pg_schema: str, redis_url: str) -> Iterator[Callable[[], Flask]]:
    """Makes apps on the same database and Redis, as separate processes would be."""
    made: list[Flask] = []

    def make() -> Flask:
        app = create_app(pg_config(pg_schema, REDIS_URL=redis_url))
        made.append(app)
        return app

    yield make
    for app in made:
        _dispose(app)


@pytest.fixture
def two(processes: Callable[[], Flask]) -> tuple[Resident, Resident]:
    """A resident's browser on each of two web processes, the small community imported."""
    first, second = processes(), processes()
    _truncate_all(first)
    with first.app_context():
        community, _ = import_data(tables_to_data(factories.small_community(), "small"))
        db.session.commit()
        community_id = community.id
    stickers = issue_stickers(first, community_id)
    return Resident(first.test_client(), stickers), Resident(second.test_client(), stickers)


def _app(resident: Resident) -> Flask:
    app: Flask = resident.client.application
    return app


def _eventually(check: Callable[[], bool], seconds: float = 3.0) -> bool:
    """Whether `check` comes true within `seconds` (the other process hears of a change over
    a Redis channel, a few milliseconds after the commit)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _page(resident: Resident) -> str:
    return str(resident.scan(PLACE).get_data(as_text=True))


def test_a_page_one_process_rendered_is_served_by_another_without_the_database(
        two: tuple[Resident, Resident]) -> None:
    first, second = two
    rendered = _page(first)
    with sent(_app(second)) as sql:
        shared = _page(second)
    assert sql == []
    assert shared.replace(csrf_token(shared), csrf_token(rendered)) == rendered
    with sent(_app(second)) as sql:
        _page(second)  # now its own copy
    assert sql == []


def test_a_report_filed_in_one_process_shows_in_the_other_at_once(
        two: tuple[Resident, Resident]) -> None:
    first, second = two
    assert "我也遇到了" not in _page(first) and "我也遇到了" not in _page(second)
    assert first.message(PLACE, category="repair", text="楼道灯不亮").status_code == 303
    assert _eventually(lambda: "我也遇到了" in _page(second))


def test_a_notice_posted_by_another_process_shows_at_once(
        two: tuple[Resident, Resident], processes: Callable[[], Flask]) -> None:
    first, second = two
    assert "3点停水" not in _page(first)
    staff = processes()  # the console, or a `flask` command: a third process
    with staff.app_context():
        building = db.session.scalar(sa.select(Place.id).where(Place.code == "TS-B1"))
        db.session.add(Notice(place_id=building, text="3点停水", starts_at=clock.now(),
                              created_at=clock.now()))
        db.session.commit()
    assert _eventually(lambda: "3点停水" in _page(first) and "3点停水" in _page(second))


def test_a_sticker_revoked_in_one_process_is_refused_by_the_other(
        two: tuple[Resident, Resident]) -> None:
    first, second = two
    assert second.scan(PLACE).status_code == 200
    with _app(first).app_context():
        codes.revoke(codes.find(first.stickers[PLACE]))
        db.session.commit()
    assert _eventually(lambda: second.scan(PLACE).status_code == 404)


def test_a_page_kept_under_tokens_redis_has_lost_is_never_served(
        two: tuple[Resident, Resident], processes: Callable[[], Flask],
        redis_url: str) -> None:
    first, _second = two
    _page(first)
    redis = Redis.from_url(redis_url)
    kept = {key: redis.get(key) for key in redis.keys("linli:pages:page:*")}
    assert kept
    with _app(first).app_context():  # written past the session: nobody announces it
        building = db.session.scalar(sa.select(Place.id).where(Place.code == "TS-B1"))
        with db.engine.begin() as conn:
            conn.execute(sa.insert(Notice).values(place_id=building, text="3点停水",
                                                  starts_at=clock.now(),
                                                  created_at=clock.now()))
    # Redis loses its tags but an old page comes back (a partial restore, say).
    lock = redis.get("linli:test-session")
    redis.flushdb()
    redis.set("linli:test-session", lock or b"", ex=3600)
    for key, value in kept.items():
        redis.set(key, value or b"")
    late = Resident(processes().test_client(), first.stickers)  # a process started afterwards
    assert "3点停水" in _page(late)


def test_with_redis_away_the_page_is_rendered_each_time(
        pg_schema: str, processes: Callable[[], Flask], two: tuple[Resident, Resident]) -> None:
    app = create_app(pg_config(pg_schema, REDIS_URL="redis://127.0.0.1:1/0"))
    try:
        away = Resident(app.test_client(), two[0].stickers)
        assert away.scan(PLACE).status_code == 200
        assert away.scan(PLACE).status_code == 200
    finally:
        _dispose(app)


def _drop_listeners(redis_url: str) -> None:
    """Close the subscribed connections on this test's Redis database, and only those: a
    server-wide kill would also cut another test session's listeners, or a deployment's
    workers running beside the suite."""
    redis = Redis.from_url(redis_url)
    ours = int(redis.connection_pool.connection_kwargs.get("db", 0))
    listening = [c for c in redis.client_list(_type="pubsub") if int(c["db"]) == ours]
    assert listening, "no listener to drop: the test would prove nothing"
    for client in listening:
        redis.client_kill_filter(_id=client["id"])


def test_nothing_is_served_from_a_process_copy_while_it_cannot_hear_changes(
        two: tuple[Resident, Resident], redis_url: str) -> None:
    second = two[1]
    _page(second)
    cache: Any = _app(second).extensions["linli.pages"]
    assert _eventually(lambda: cache.hearing)
    _drop_listeners(redis_url)
    # Dropped: what was announced while the connection was down is unknown.
    assert _eventually(lambda: not cache.local)
    assert _eventually(lambda: cache.hearing)  # and back


def test_after_a_hand_edit_flask_pages_clear_drops_every_kept_page(
        two: tuple[Resident, Resident], processes: Callable[[], Flask]) -> None:
    first, second = two
    _page(first), _page(second)
    with _app(first).app_context():  # SQL typed by hand: no commit of the app announces it
        building = db.session.scalar(sa.select(Place.id).where(Place.code == "TS-B1"))
        with db.engine.begin() as conn:
            conn.execute(sa.insert(Notice).values(place_id=building, text="3点停水",
                                                  starts_at=clock.now(),
                                                  created_at=clock.now()))
    assert "3点停水" not in _page(first)
    result = processes().test_cli_runner().invoke(args=["pages", "clear"])
    assert result.exit_code == 0, result.output
    assert _eventually(lambda: "3点停水" in _page(first) and "3点停水" in _page(second))


def test_after_a_deploy_no_page_drawn_by_the_old_code_is_served(
        two: tuple[Resident, Resident], processes: Callable[[], Flask],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Redis outlives a deploy and keeps pages for a day: the new code's words and form must
    # show from the first view, not when nothing has happened at the place for a day.
    first, _ = two
    _page(first)  # kept in Redis by the release running now
    monkeypatch.setattr(pages, "release_of", lambda root: "the-next-release")
    upgraded = Resident(processes().test_client(), first.stickers)
    with sent(_app(upgraded)) as sql:
        _page(upgraded)
    assert sql != []  # drawn by the new code
    another = Resident(processes().test_client(), first.stickers)
    with sent(_app(another)) as sql:
        _page(another)
    assert sql == []  # and shared by every process of the new release


def test_a_release_is_the_templates_translations_and_code_that_draw_a_page(
        tmp_path: Path) -> None:
    template = tmp_path / "templates" / "resident" / "sticker.html"
    template.parent.mkdir(parents=True)
    template.write_text("谁来处理")
    (tmp_path / "dispatch").mkdir()
    (tmp_path / "dispatch" / "words.py").write_text("RUNG = '楼栋'")
    (tmp_path / "docs").mkdir()
    notes = tmp_path / "docs" / "deploy.md"
    notes.write_text("v1")

    def release() -> str:
        return pages.release_of.__wrapped__(str(tmp_path))

    before = release()
    notes.write_text("v2")
    assert release() == before
    template.write_text("身边的党员")
    assert release() != before


def test_flask_pages_clear_says_so_when_redis_does_not_answer(pg_schema: str) -> None:
    app = create_app(pg_config(pg_schema, REDIS_URL="redis://127.0.0.1:1/0"))
    try:
        result = app.test_cli_runner().invoke(args=["pages", "clear"])
    finally:
        _dispose(app)
    assert result.exit_code == 1
    assert "Redis (REDIS_URL) did not answer" in result.output
    assert "dropped" not in result.output
