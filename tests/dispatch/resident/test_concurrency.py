"""Two residents reporting the same broken lift in the same instant make one case on PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch.case.report import file_report
from dispatch.community import import_data, tables_to_data
from dispatch.db import db
from dispatch.models import Case, Place, Report
from tests import factories
from tests.dispatch.resident.conftest import issue_stickers
from tests.dispatch.resident.helpers import Resident

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_community(pg_app: Flask) -> int:
    with pg_app.app_context():
        imported, _ = import_data(tables_to_data(factories.small_community(), "small"))
        return imported.id


def _race(app: Flask, work: Any, n: int = 2) -> list[Any]:
    """Run `work(i)` in n threads, each in its own app context (own session and connection),
    released together by a barrier."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with app.app_context():
                place = db.session.scalar(sa.select(Place).where(Place.code == "TS-B1-U1-E1"))
                db.session.commit()  # start the race with no transaction open
                barrier.wait(timeout=10)
                results[i] = work(i, place)
        except BaseException as exc:  # report any failure in the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


@pytest.mark.parametrize("category", ["elevator", "safety", "repair"])
def test_simultaneous_reports_make_one_case_with_two_reports(pg_app: Flask, pg_community: int,
                                                             category: str) -> None:
    filed = _race(pg_app, lambda i, place: (
        lambda f: (f.case.id, f.opened))(file_report(place, category, text=f"居民{i}")))
    assert sorted(opened for _, opened in filed) == [False, True]
    assert len({case_id for case_id, _ in filed}) == 1
    with pg_app.app_context():
        case = db.session.scalar(sa.select(Case))
        assert db.session.scalar(sa.select(sa.func.count(Case.id))) == 1
        assert case.report_count == 2
        assert sorted(r.text for r in case.reports) == ["居民0", "居民1"]
        assert [e.kind for e in case.events] == ["reported", "joined"]


def test_simultaneous_form_submissions_make_one_case(pg_app: Flask, pg_community: int) -> None:
    stickers = issue_stickers(pg_app, pg_community)
    residents = [Resident(pg_app.test_client(), stickers) for _ in range(2)]
    tokens = [r.token() for r in residents]
    code = stickers["TS-B1-U1-E1"]

    def submit(i: int, place: Place) -> int:
        return residents[i].client.post(
            f"/s/{code}/message", data={"csrf_token": tokens[i], "category": "elevator",
                                        "text": f"表单{i}"}).status_code

    assert _race(pg_app, submit) == [303, 303]
    with pg_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Case.id))) == 1
        assert sorted(db.session.scalars(sa.select(Report.text))) == ["表单0", "表单1"]
