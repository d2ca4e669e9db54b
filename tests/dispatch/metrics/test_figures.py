"""Response figures: the pure definitions, and the queries on SQLite and on real PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import metrics
from dispatch.db import db
from dispatch.metrics import CaseFacts, Period, Scope, percentile
from dispatch.models import PlaceKind, Resolution, Solved
from tests.dispatch.staff.history import (
    EXPECTED,
    NOW,
    ZONE,
    local,
    make_case,
    march,
    two_grid_community,
)

MARCH = Period.month(2026, 3, "Asia/Shanghai")
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=ZONE)


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level, so pytest.approx can compare them."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flat(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def assert_figures(figures: metrics.Figures, expected: dict[str, Any]) -> None:
    got = flat(figures.as_dict())
    want = flat(expected)
    assert {k: got[k] for k in want} == pytest.approx(want)


# --- percentiles ------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 0.5, None),
    ([], 0.9, None),
    ([7.0], 0.5, 7.0),
    ([7.0], 0.9, 7.0),
    ([10.0, 20.0], 0.5, 15.0),
    ([10.0, 20.0], 0.9, 19.0),
    ([30.0, 10.0, 20.0], 0.9, 28.0),
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9, 9.1),
    ([5.0, 5.0, 5.0], 0.9, 5.0),
])
def test_percentile_interpolates_between_closest_ranks(values: list[float], q: float,
                                                       expected: float | None) -> None:
    assert percentile(values, q) == (None if expected is None else pytest.approx(expected))


SMALL_CASES = [[], [7.0], [10.0, 20.0], [30.0, 10.0, 20.0], [5.0, 5.0, 5.0],
               [float(n) for n in range(1, 11)], [0.5, 1e6, 3.25, 3.25]]


@pytest.mark.parametrize("values", SMALL_CASES)
def test_percentile_is_postgresqls_percentile_cont_on_small_cases(pg_app: Flask,
                                                                  values: list[float]) -> None:
    qs = [0.0, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0]
    with pg_app.app_context():
        row = db.session.execute(sa.text(
            "SELECT percentile_cont(CAST(:qs AS float8[])) WITHIN GROUP (ORDER BY v) "
            "FROM unnest(CAST(:values AS float8[])) AS v"), {"qs": qs, "values": values}).scalar()
    expected = [None] * len(qs) if row is None else row
    got = [percentile(values, q) for q in qs]
    assert got == [None if e is None else pytest.approx(e, rel=1e-12) for e in expected]


def test_percentile_refuses_a_share_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="q lies in"):
        percentile([1.0, 2.0], 90)


def test_no_values_give_no_median_rather_than_zero() -> None:
    spread = metrics.Spread.of([])
    assert (spread.n, spread.median, spread.p90) == (0, None, None)


# --- pure definitions -------------------------------------------------------------------------


def facts(**changes: Any) -> CaseFacts:
    base: dict[str, Any] = {"reported_at": T0, "urgency": "normal", "accept_minutes": 30,
                            "on_site_minutes": 240}
    return CaseFacts(**{**base, **changes})


@pytest.mark.parametrize(("case", "due", "on_time"), [
    (facts(accepted_at=T0 + timedelta(minutes=30)), True, True),
    (facts(accepted_at=T0 + timedelta(minutes=30, seconds=1)), True, False),
    (facts(), True, False),  # still waiting, deadline long past at `now`
    (facts(reported_at=NOW - timedelta(minutes=10)), False, False),  # deadline not yet reached
    (facts(closed_at=T0 + timedelta(minutes=5), status="closed"), False, False),  # withdrawn
    (facts(closed_at=T0 + timedelta(hours=5), status="closed"), True, False),
    (facts(accept_minutes=None), False, False),  # no deadline in the snapshot
])
def test_a_case_is_due_once_its_deadline_passed_while_open(case: CaseFacts, due: bool,
                                                           on_time: bool) -> None:
    assert metrics.accept_due(case, NOW) is due
    assert metrics.accepted_on_time(case) is on_time


def test_on_site_deadline_counts_from_acceptance_and_accepts_a_resolution_by_phone() -> None:
    accepted = T0 + timedelta(minutes=10)
    in_time = facts(accepted_at=accepted, resolved_at=accepted + timedelta(minutes=240))
    late = facts(accepted_at=accepted, on_site_at=accepted + timedelta(minutes=241))
    never = facts(accepted_at=accepted)
    pending = facts(accepted_at=NOW - timedelta(minutes=5))
    assert [metrics.on_site_late(c, NOW) for c in (in_time, late, never, pending)] == [
        False, True, True, False]
    assert metrics.on_site_due(pending, NOW) is False


@pytest.mark.parametrize(("rung", "resolution", "bucket"), [
    (1, Resolution.FIXED, "building"), (2, Resolution.NOT_FIXED, "grid"),
    (3, Resolution.FIXED, "community"), (4, Resolution.FIXED, "referred"),
    (2, Resolution.REFERRED, "referred"), (None, Resolution.NOT_FIXED, "unknown"),
])
def test_closed_cases_fall_in_one_ladder_bucket(rung: int | None, resolution: Resolution,
                                                bucket: str) -> None:
    case = facts(status="closed", closed_rung=rung, resolution=resolution)
    assert metrics.ladder_bucket(case) == bucket
    assert metrics.ladder_bucket(facts(closed_rung=rung)) is None  # not closed yet


def test_an_empty_period_has_counts_of_zero_and_no_rates() -> None:
    figures = metrics.tally([], NOW)
    assert figures.cases == 0 and figures.due == 0
    assert figures.response_rate is None and figures.solve_rate is None
    assert figures.satisfaction_rate is None and figures.callback_rate is None
    assert set(figures.retention().values()) == {None}
    assert figures.accept == metrics.Spread(0, None, None)


def test_partly_solved_is_counted_apart_from_solved() -> None:
    answers = [facts(solved=s, satisfaction=v, resolved_at=T0 + timedelta(hours=1))
               for s, v in ((Solved.YES, 5), (Solved.PARTLY, 4), (Solved.NO, 1), (Solved.YES, 3))]
    figures = metrics.tally(answers, NOW)
    assert (figures.solve_rate, figures.partly_rate, figures.satisfaction_rate) == (0.5, 0.25, 0.5)


def test_accept_times_fall_in_histogram_buckets_with_inclusive_upper_edges() -> None:
    taken = [60, 61, 300, 86400, 86401]
    cases = [facts(accepted_at=T0 + timedelta(seconds=s)) for s in taken]
    counts = metrics.histogram(cases)
    assert counts[0] == 1 and counts[1] == 1 and counts[2] == 1
    assert counts[len(metrics.ACCEPT_EDGES_MINUTES) - 1] == 1 and counts[-1] == 1


def test_weeks_and_hours_are_local() -> None:
    sunday_night_utc = datetime(2026, 3, 1, 17, 30, tzinfo=ZONE).astimezone(ZONE)  # Sun 17:30
    monday_early = datetime(2026, 3, 2, 0, 30, tzinfo=ZONE)
    assert metrics.local_week(sunday_night_utc, "Asia/Shanghai") == date(2026, 2, 23)
    assert metrics.local_week(monday_early, "Asia/Shanghai") == date(2026, 3, 2)
    assert metrics.KEYS["hour"](facts(reported_at=monday_early)) == 0


def test_a_month_period_runs_from_local_midnight_to_local_midnight() -> None:
    assert MARCH.start == datetime(2026, 3, 1, tzinfo=ZONE)
    assert MARCH.end == datetime(2026, 4, 1, tzinfo=ZONE)
    december = Period.month(2026, 12, "Asia/Shanghai")
    assert december.end == datetime(2027, 1, 1, tzinfo=ZONE)


# --- the queries, on SQLite and PostgreSQL ----------------------------------------------------


@pytest.fixture
def history(any_app: Flask) -> Any:
    with any_app.app_context():
        community = two_grid_community()
        cases = march()
        grids = {grid.code: grid.id for grid in
                 (c.place.ancestor(PlaceKind.GRID) for c in cases.values())}
        yield community, grids, cases


def test_the_march_history_gives_every_figure(history: Any) -> None:
    community, _, _ = history
    figures = metrics.summary(Scope(community), MARCH, NOW)
    assert_figures(figures, EXPECTED)


def test_the_database_path_agrees_with_the_pure_definitions(history: Any) -> None:
    community, _, _ = history
    for by in (None, *metrics.DIMENSIONS):
        in_db = metrics.breakdown(Scope(community), MARCH, by, NOW)
        pure = (metrics.tally_by(metrics.facts(Scope(community), MARCH), by, NOW) if by else
                {None: metrics.tally(metrics.facts(Scope(community), MARCH), NOW)})
        assert set(in_db) == set(pure), by
        for key, figures in pure.items():
            assert flat(in_db[key].as_dict()) == pytest.approx(flat(figures.as_dict())), (by, key)


def test_every_breakdown_at_once_agrees_with_the_pure_definitions(history: Any) -> None:
    """The dashboard's one statement (a grouping set per dimension) gives what the pure
    definitions give for each dimension, the summary and keys that are NULL included (cases
    nobody accepted have no member and no rung)."""
    community, _, _ = history
    cases = metrics.facts(Scope(community), MARCH)
    dimensions = (None, *metrics.DIMENSIONS)
    at_once = metrics.breakdowns(Scope(community), MARCH, dimensions, NOW)
    assert set(at_once) == set(dimensions)
    for by in dimensions:
        pure = metrics.tally_by(cases, by, NOW) if by else {None: metrics.tally(cases, NOW)}
        assert set(at_once[by]) == set(pure), by
        for key, figures in pure.items():
            assert flat(at_once[by][key].as_dict()) == pytest.approx(
                flat(figures.as_dict())), (by, key)


def test_figures_by_grid_split_the_community(history: Any) -> None:
    community, grids, _ = history
    by_grid = metrics.breakdown(Scope(community), MARCH, "grid", NOW)
    assert {g: f.cases for g, f in by_grid.items()} == {grids["TS-G1"]: 6, grids["TS-G2"]: 2}
    second = metrics.summary(Scope(community, grid_id=grids["TS-G2"]), MARCH, NOW)
    assert second.cases == 2 and second.ladder["referred"] == 1 and second.due == 2
    assert second.accept == metrics.Spread(1, 7200.0, 7200.0)


def test_figures_by_member_category_rung_urgency_hour_and_week(history: Any) -> None:
    community, _, cases = history
    scope = Scope(community)
    member = cases["A"].accepted_by_id
    by_member = metrics.breakdown(scope, MARCH, "member", NOW)
    assert by_member[member].accepted == 3  # A, C, J
    assert by_member[member].accept.median == 600.0
    assert metrics.breakdown(scope, MARCH, "category", NOW)["repair"].cases == 3  # B, G, J
    assert metrics.breakdown(scope, MARCH, "rung", NOW)[2].accepted == 1
    assert metrics.breakdown(scope, MARCH, "urgency", NOW)["urgent"].cases == 2
    hours = metrics.breakdown(scope, MARCH, "hour", NOW)
    assert hours[23].cases == 1 and hours[10].cases == 2  # G late at night; A and F at ten
    weeks = metrics.breakdown(scope, MARCH, "week", NOW)
    assert weeks[date(2026, 3, 2)].cases == 2 and weeks[date(2026, 3, 30)].cases == 1
    only_lifts = metrics.summary(Scope(community, category="elevator"), MARCH, NOW)
    assert only_lifts.cases == 1 and only_lifts.response_rate == 1.0
    assert metrics.summary(Scope(community, member_id=member, rung=1), MARCH, NOW).cases == 3


def test_the_accept_histogram(history: Any) -> None:
    community, _, _ = history
    counts = metrics.accept_histogram(Scope(community), MARCH)
    assert counts == [0, 0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0]


def test_an_empty_period_gives_no_figures(history: Any) -> None:
    community, _, _ = history
    june = Period.month(2026, 6, "Asia/Shanghai")
    assert metrics.breakdown(Scope(community), june, "grid", NOW) == {}
    figures = metrics.summary(Scope(community), june, NOW)
    assert figures.cases == 0 and figures.response_rate is None and figures.accept.median is None
    assert metrics.accept_histogram(Scope(community), june) == [0] * 12


@pytest.mark.parametrize(("minutes", "median", "p90"), [
    ((4,), 240.0, 240.0),
    ((4, 14), 540.0, 780.0),
    ((4, 14, 24), 840.0, 1320.0),
])
def test_p90_with_few_cases_in_the_database(any_app: Flask, minutes: tuple[int, ...],
                                             median: float, p90: float) -> None:
    with any_app.app_context():
        community = two_grid_community()
        for n, m in enumerate(minutes):
            make_case("TS-B1", "repair", local(f"03-0{n + 2} 10:00"),
                      accepted=timedelta(minutes=m), by="L1", rung=1)
        db.session.commit()
        figures = metrics.summary(Scope(community), MARCH, NOW)
    assert figures.accept == metrics.Spread(len(minutes), pytest.approx(median),
                                            pytest.approx(p90))


def test_an_unknown_dimension_is_refused(app: Flask) -> None:
    with app.app_context(), pytest.raises(ValueError, match="unknown dimension"):
        metrics.breakdown(Scope(1), MARCH, "colour", NOW)
