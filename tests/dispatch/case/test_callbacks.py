"""The 回访 settles a resolved case; "not solved" reopens it, or joins the case now open."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import jobs
from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Case, CaseStatus, Community, Place, Resolution, Rung, Solved
from dispatch.resident import timeline
from tests.dispatch.resident.helpers import walk_to_resolved


def _lift() -> Place:
    return db.session.scalar(sa.select(Place).where(Place.code == "TS-B1-U1-E1"))


def _resolved_case() -> Case:
    case = file_report(_lift(), "elevator", text="停了").case
    return walk_to_resolved(case.id)


def test_solved_closes_the_case(any_app: Flask, community_on_any: int) -> None:
    with any_app.app_context():
        case = _resolved_case()
        answered = lifecycle.answer_callback(case, solved=Solved.YES, satisfaction=5)
        assert (answered.follow.id, answered.reopened, answered.joined) == (case.id, False, False)
        assert (case.status, case.resolution) == (CaseStatus.CLOSED, Resolution.FIXED)
        assert case.closed_rung == Rung.BUILDING
        with pytest.raises(lifecycle.NotAwaitingCallback):
            lifecycle.answer_callback(case, solved=Solved.NO)


def test_not_solved_reopens_from_the_first_rung_with_a_new_token(any_app: Flask,
                                                                  community_on_any: int) -> None:
    with any_app.app_context():
        case = _resolved_case()
        token = case.token
        pending = jobs.runner(any_app).pending()
        answered = lifecycle.answer_callback(case, solved=Solved.NO, comment="还是坏的")
        db.session.expire_all()
        case = db.session.get(Case, case.id)
        assert answered.reopened and answered.follow.id == case.id
        assert (case.status, case.resolution, case.rung, case.step) == (
            CaseStatus.OPEN, None, Rung.BUILDING, 0)
        assert case.token == token + 1 and case.reopen_count == 1
        assert case.open_key == lifecycle.open_key(case.place, "elevator")
        assert case.next_step_at is not None and case.accepted_by_id is None
        assert case.callback_at is not None
        assert [e.kind for e in case.events][-2:] == ["callback", "reopened"]
        assert "还是坏的" in case.events[-1].message
        assert jobs.runner(any_app).pending() == pending + 1  # the step job, after commit


def test_not_solved_joins_the_case_already_open_for_the_same_problem(
        any_app: Flask, community_on_any: int) -> None:
    with any_app.app_context():
        old = _resolved_case()
        newer = file_report(_lift(), "elevator", text="又坏了").case
        answered = lifecycle.answer_callback(old, solved=Solved.NO, comment="没修好")
        db.session.expire_all()
        old, newer = db.session.get(Case, old.id), db.session.get(Case, newer.id)
        assert answered.joined and answered.follow.id == newer.id and not answered.reopened
        assert (old.status, old.resolution, old.merged_into_id) == (
            CaseStatus.CLOSED, Resolution.NOT_FIXED, newer.id)
        assert newer.report_count == 2 and "没修好" in newer.reports[-1].text
        assert old.events[-1].kind == "merged"
        with any_app.test_request_context():
            assert timeline.event_text(old.events[-1]) == (
                f"问题未解决，已并入正在处理的 {newer.number}")


def test_reopen_leaves_an_open_case_alone(any_app: Flask, community_on_any: int) -> None:
    with any_app.app_context():
        case = file_report(_lift(), "elevator").case
        token = case.token
        assert lifecycle.reopen(case, "test").id == case.id
        assert (case.token, case.reopen_count) == (token, 0)


def test_satisfaction_must_be_one_to_five(any_app: Flask, community_on_any: int) -> None:
    with any_app.app_context(), pytest.raises(ValueError):
        lifecycle.answer_callback(_resolved_case(), solved=Solved.YES, satisfaction=6)


@pytest.fixture
def community_on_any(any_app: Flask) -> int:
    from dispatch.community import import_data, tables_to_data
    from tests import factories

    with any_app.app_context():
        imported, _ = import_data(tables_to_data(factories.small_community(), "small"))
        assert db.session.get(Community, imported.id) is not None
        return imported.id
