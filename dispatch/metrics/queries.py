"""The figures' queries: which cases (`Scope`, `Period`), their facts, or, on PostgreSQL, the
same figures computed inside the database (`percentile_cont`, `count(*) FILTER`), so a year of
a district's cases never crosses the wire.

A period holds the cases *reported* in it; everything about those cases (acceptance,
callbacks) is counted as known at `now`, so a month's report is a snapshot taken when it is
run.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased

from dispatch import clock
from dispatch.db import UTCDateTime, db
from dispatch.metrics import daily

#: Breakdowns a figure can be split by (`breakdown(..., by=...)`).
from dispatch.metrics.figures import (
    ACCEPT_EDGES_MINUTES,
    DIMENSIONS,
    LADDER,
    SATISFIED_FROM,
    CaseFacts,
    Figures,
    Spread,
    Tier,
    histogram,
    tally,
    tally_by,
)
from dispatch.models import (
    OPEN_STATUSES,
    Callback,
    Case,
    CaseStatus,
    Community,
    Place,
    PlaceKind,
    Resolution,
    Rung,
    Solved,
    Urgency,
)

# ---------------------------------------------------------------------------------------------
# Scope and period


@dataclass(frozen=True, slots=True)
class Scope:
    """Which cases: a community, optionally narrowed to a grid, building, member, category, rung.

    `community_id=None` means every community (the district).
    """

    community_id: int | None = None
    grid_id: int | None = None
    building_id: int | None = None
    member_id: int | None = None
    category: str | None = None
    rung: int | None = None


@dataclass(frozen=True, slots=True)
class Period:
    """The cases reported in [start, end)."""

    start: datetime
    end: datetime

    @classmethod
    def month(cls, year: int, month: int, zone: str) -> Period:
        """A calendar month in the community's local time."""
        tz = clock.zone(zone)
        start = datetime(year, month, 1, tzinfo=tz)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        return cls(start.astimezone(UTC), end.astimezone(UTC))

    @classmethod
    def days(cls, days: int, zone: str, now: datetime | None = None) -> Period:
        """The last `days` whole local days up to the end of today."""
        today = clock.today(zone, now or clock.now())
        end = datetime.combine(today + timedelta(days=1), datetime.min.time(), clock.zone(zone))
        return cls((end - timedelta(days=days)).astimezone(UTC), end.astimezone(UTC))


# ---------------------------------------------------------------------------------------------
# Queries


def place_levels(community_id: int | None = None) -> sa.Subquery:
    """Each place's grid and building, from its ancestors (the hierarchy is at most 4 deep)."""
    chain = [aliased(Place, name=f"p{depth}") for depth in range(4)]

    def level(kind: PlaceKind, depth: int) -> sa.Case[int]:
        return sa.case(*((chain[d].kind == kind, chain[d].id) for d in range(depth)), else_=None)

    query = sa.select(chain[0].id.label("place_id"), level(PlaceKind.GRID, 4).label("grid_id"),
                      level(PlaceKind.BUILDING, 3).label("building_id")).select_from(chain[0])
    for child, parent in itertools.pairwise(chain):
        query = query.outerjoin(parent, parent.id == child.parent_id)
    if community_id is not None:
        query = query.where(chain[0].community_id == community_id)
    return query.subquery("levels")


def latest_answer() -> tuple[Any, sa.ColumnElement[bool]]:
    """Each case's most recently recorded answered callback, to outer-join: (source, on).

    A callback counts as answered unless `contacted` is false (the resident was not reached).
    On PostgreSQL this is a LATERAL index lookup per case, so a month of one community never
    reads the whole callback table; elsewhere a grouped subquery.
    """
    answered = sa.or_(Callback.contacted.is_(None), Callback.contacted.is_(True))
    if _in_database():
        lateral = (sa.select(Callback.solved, Callback.satisfaction)
                   .where(Callback.case_id == Case.id, answered)
                   .order_by(Callback.id.desc()).limit(1).lateral("answer"))
        return lateral, sa.true()
    latest = sa.select(sa.func.max(Callback.id)).where(answered).group_by(Callback.case_id)
    grouped = (sa.select(Callback.case_id, Callback.solved, Callback.satisfaction)
               .where(Callback.id.in_(latest)).subquery("answer"))
    return grouped, grouped.c.case_id == Case.id


@dataclass(frozen=True, slots=True)
class _From:
    """The scope's cases in the period, and the place levels when the query needed them."""

    query: sa.Select[Any]
    levels: sa.Subquery | None


def _cases(scope: Scope, period: Period, *, by: str | None = None,
           also: tuple[str, ...] = ()) -> _From:
    """FROM the scope's cases in the period (duplicates left out), columns still to choose."""
    query = sa.select().select_from(Case).where(
        Case.reported_at >= period.start, Case.reported_at < period.end,
        sa.or_(Case.resolution.is_(None), Case.resolution != Resolution.DUPLICATE))
    if scope.community_id is not None:
        query = query.where(Case.community_id == scope.community_id)
    levels = None
    dimensions = {by, *also}
    if scope.grid_id is not None or scope.building_id is not None \
            or dimensions & {"grid", "building"}:
        levels = place_levels(scope.community_id)
        query = query.join(levels, levels.c.place_id == Case.place_id)
        if scope.grid_id is not None:
            query = query.where(levels.c.grid_id == scope.grid_id)
        if scope.building_id is not None:
            query = query.where(levels.c.building_id == scope.building_id)
    if dimensions & {"hour", "week"}:
        query = query.join(Community, Community.id == Case.community_id)
    if scope.member_id is not None:
        query = query.where(Case.accepted_by_id == scope.member_id)
    if scope.category is not None:
        query = query.where(Case.category == scope.category)
    if scope.rung is not None:
        query = query.where(Case.accepted_rung == scope.rung)
    return _From(query, levels)


def facts(scope: Scope, period: Period) -> list[CaseFacts]:
    """The cases of `scope` reported in `period`, as `CaseFacts` (the portable path)."""
    levels = place_levels(scope.community_id)
    answer, on = latest_answer()
    query = (sa.select(Case, levels.c.grid_id, levels.c.building_id, answer.c.solved,
                       answer.c.satisfaction, Community.timezone)
             .join(levels, levels.c.place_id == Case.place_id)
             .join(Community, Community.id == Case.community_id)
             .outerjoin(answer, on)
             .where(Case.reported_at >= period.start, Case.reported_at < period.end))
    if scope.community_id is not None:
        query = query.where(Case.community_id == scope.community_id)
    for column, wanted in ((levels.c.grid_id, scope.grid_id),
                           (levels.c.building_id, scope.building_id),
                           (Case.accepted_by_id, scope.member_id),
                           (Case.category, scope.category), (Case.accepted_rung, scope.rung)):
        if wanted is not None:
            query = query.where(column == wanted)
    return [case_facts(case, grid_id, building_id, solved, satisfaction, zone)
            for case, grid_id, building_id, solved, satisfaction, zone in db.session.execute(query)]


def case_facts(case: Case, grid_id: int | None = None, building_id: int | None = None,
               solved: Any = None, satisfaction: int | None = None,
               zone: str = "Asia/Shanghai") -> CaseFacts:
    """A case row, with its place levels and latest answered callback, as `CaseFacts`."""
    return CaseFacts(
        reported_at=case.reported_at, urgency=str(case.urgency),
        accept_minutes=case.policy.get("rung_minutes"),
        on_site_minutes=case.policy.get("on_site_minutes"),
        status=str(case.status), resolution=case.resolution and str(case.resolution),
        accepted_at=case.accepted_at, on_site_at=case.on_site_at, resolved_at=case.resolved_at,
        closed_at=case.closed_at, accepted_rung=case.accepted_rung, closed_rung=case.closed_rung,
        solved=solved and str(solved), satisfaction=satisfaction,
        community_id=case.community_id, grid_id=grid_id, building_id=building_id,
        member_id=case.accepted_by_id, category=case.category, timezone=zone)


def _in_database() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def without_jit() -> None:
    """Turn PostgreSQL's JIT off for this transaction: compiling costs ~40 ms and never pays
    back over the few ten thousand rows a figure reads."""
    if _in_database():
        db.session.execute(sa.text("SET LOCAL jit = off"))


def summary(scope: Scope, period: Period, now: datetime | None = None) -> Figures:
    """Every figure for the scope and period. The whole district's, on PostgreSQL, from the
    figures the database keeps per day (`daily`) rather than from each of its cases."""
    if scope == Scope() and _in_database():
        return daily.summary(period.start, period.end, now or clock.now())
    return breakdown(scope, period, None, now).get(None) or Figures()


def breakdown(scope: Scope, period: Period, by: str | None,
              now: datetime | None = None) -> dict[Any, Figures]:
    """Figures per key of dimension `by` (see `DIMENSIONS`); `by=None` gives one entry, None."""
    return breakdowns(scope, period, (by,), now)[by]


def breakdowns(scope: Scope, period: Period, dimensions: tuple[str | None, ...],
               now: datetime | None = None) -> dict[str | None, dict[Any, Figures]]:
    """`breakdown` for several dimensions at once (None: the summary), reading the cases once:
    on PostgreSQL one statement with a grouping set per dimension, so a page of figures costs
    one pass over the period's cases instead of one per chart."""
    for by in dimensions:
        if by is not None and by not in DIMENSIONS:
            raise ValueError(f"unknown dimension {by!r}")
    now = now or clock.now()
    if _in_database():
        return _breakdowns_sql(scope, period, dimensions, now)
    cases = facts(scope, period)
    return {by: ({None: tally(cases, now)} if cases else {}) if by is None
            else tally_by(cases, by, now) for by in dimensions}


def accept_histogram(scope: Scope, period: Period) -> list[int]:
    """Accepted cases per time-to-accept bucket (`ACCEPT_EDGES_MINUTES`, then "more")."""
    if not _in_database():
        return histogram(facts(scope, period))
    without_jit()
    took = _seconds(Case.accepted_at, Case.reported_at)
    bucket = sa.case(*((took <= 60 * edge, i) for i, edge in enumerate(ACCEPT_EDGES_MINUTES)),
                     else_=len(ACCEPT_EDGES_MINUTES)).label("bucket")
    query = (_cases(scope, period).query.add_columns(bucket, sa.func.count())
             .where(Case.accepted_at.is_not(None)).group_by(bucket))
    counts = [0] * (len(ACCEPT_EDGES_MINUTES) + 1)
    for index, count in db.session.execute(query):
        counts[index] = count
    return counts


# PostgreSQL: the same definitions as `tally`, in two steps. The inner query computes each
# case's ingredients once (seconds taken, its deadlines from the policy snapshot, its latest
# answered callback through an index lookup); `OFFSET 0` keeps the planner from inlining it,
# which would parse the JSON policy again for every counter. The outer query counts.


def _seconds(later: Any, earlier: Any) -> sa.ColumnElement[float]:
    """Seconds between two timestamps: date_part gives a float, twice as fast as EXTRACT's
    numeric over a million rows."""
    return sa.type_coerce(sa.func.date_part("epoch", later - earlier), sa.Float)


def _key(by: str | None, source: _From) -> sa.SQLColumnExpression[Any] | None:
    """The SQL expression of a dimension's key (PostgreSQL)."""
    if by is None:
        return None
    if by in ("grid", "building"):
        assert source.levels is not None
        return source.levels.c[f"{by}_id"]
    local = sa.func.timezone(Community.timezone, Case.reported_at)
    return {
        "community": Case.community_id, "member": Case.accepted_by_id,
        "category": Case.category, "rung": Case.accepted_rung, "urgency": Case.urgency,
        "hour": sa.cast(sa.extract("hour", local), sa.Integer),
        "week": sa.cast(sa.func.date_trunc("week", local), sa.Date),
    }[by]


def _labelled(expression: sa.SQLColumnExpression[Any] | None, name: str) -> sa.Label[Any]:
    assert expression is not None
    return sa.label(name, expression)


def _per_case(scope: Scope, period: Period, dimensions: tuple[str, ...],
              now: datetime) -> sa.Subquery:
    """One row per case with what the counters need, each computed once, and its key in each
    dimension (`key_<dimension>`)."""
    source = _cases(scope, period, also=dimensions)
    answer, on = latest_answer()
    at_now = sa.bindparam("now", now, type_=UTCDateTime())
    arrived = sa.func.coalesce(Case.on_site_at, Case.resolved_at, Case.closed_at)
    keys = [_labelled(_key(by, source), f"key_{by}") for by in dimensions]
    columns = [
        *keys,
        Case.status, Case.resolution, Case.urgency, Case.closed_rung,
        _seconds(Case.accepted_at, Case.reported_at).label("accept_s"),
        _seconds(Case.on_site_at, Case.reported_at).label("on_site_s"),
        _seconds(Case.resolved_at, Case.reported_at).label("resolve_s"),
        (60.0 * Case.policy["rung_minutes"].as_float()).label("limit_s"),
        (60.0 * Case.policy["on_site_minutes"].as_float()).label("site_limit_s"),
        _seconds(at_now, Case.reported_at).label("age_s"),
        _seconds(Case.closed_at, Case.reported_at).label("closed_s"),
        _seconds(at_now, Case.accepted_at).label("since_accept_s"),
        _seconds(arrived, Case.accepted_at).label("arrive_s"),
        sa.or_(Case.resolved_at.is_not(None), Case.closed_at.is_not(None)).label("finished"),
        answer.c.solved, answer.c.satisfaction,
    ]
    query = source.query.add_columns(*columns).outerjoin(answer, on)
    return query.offset(sa.literal_column("0")).subquery("per_case")


def _aggregates(c: Any) -> dict[str, sa.ColumnElement[Any]]:
    """Named aggregate columns over `_per_case`, one per counter of `Figures` and `Tier`."""
    due = sa.or_(c.accept_s.is_not(None), sa.and_(
        c.age_s >= c.limit_s, sa.or_(c.closed_s.is_(None), c.closed_s >= c.limit_s)))
    on_time = sa.and_(due, c.accept_s <= c.limit_s)
    site_due = sa.and_(c.accept_s.is_not(None), c.site_limit_s.is_not(None), sa.or_(
        c.arrive_s.is_not(None), c.since_accept_s >= c.site_limit_s))
    site_late = sa.and_(site_due, sa.or_(c.arrive_s.is_(None), c.arrive_s > c.site_limit_s))
    closed = c.status == CaseStatus.CLOSED
    # NULL (no resolution, no rung) is "no" here, as in `figures.ladder_bucket`: a NULL would
    # make `NOT referred` NULL too and drop the case from its rung into "unknown".
    referred = sa.and_(closed, sa.or_(
        sa.func.coalesce(c.resolution == Resolution.REFERRED, sa.false()),
        sa.func.coalesce(c.closed_rung >= Rung.DISTRICT, sa.false())))
    rung_closed = sa.and_(closed, sa.not_(referred))

    def where(condition: Any) -> sa.ColumnElement[int]:
        return sa.func.count().filter(condition)

    columns: dict[str, sa.ColumnElement[Any]] = {
        "cases": sa.func.count(),
        "open": where(c.status.in_(OPEN_STATUSES)),
        "accepted": where(c.accept_s.is_not(None)),
        "due": where(due), "on_time": where(on_time),
        "callbacks_due": where(sa.or_(c.finished, c.solved.is_not(None))),
        "answered": where(c.solved.is_not(None)),
        "solved": where(c.solved == Solved.YES),
        "partly": where(c.solved == Solved.PARTLY),
        "not_solved": where(c.solved == Solved.NO),
        "satisfied": where(c.satisfaction >= SATISFIED_FROM),
        "closed": where(closed),
        "ladder_building": where(sa.and_(rung_closed, c.closed_rung == Rung.BUILDING)),
        "ladder_grid": where(sa.and_(rung_closed, c.closed_rung == Rung.GRID)),
        "ladder_community": where(sa.and_(rung_closed, c.closed_rung == Rung.COMMUNITY)),
        "ladder_referred": where(referred),
    }
    for urgency in Urgency:
        tier = c.urgency == urgency
        columns[f"{urgency}_due"] = where(sa.and_(tier, due))
        columns[f"{urgency}_on_time"] = where(sa.and_(tier, on_time))
        columns[f"{urgency}_on_site_due"] = where(sa.and_(tier, site_due))
        columns[f"{urgency}_on_site_late"] = where(sa.and_(tier, site_late))
    for name in ("accept", "on_site", "resolve"):
        seconds = c[f"{name}_s"]
        columns[f"{name}_n"] = sa.func.count(seconds)
        columns[f"{name}_q"] = sa.type_coerce(
            sa.func.percentile_cont(sa.literal([0.5, 0.9], postgresql.ARRAY(sa.Float)))
            .within_group(seconds), postgresql.ARRAY(sa.Float))
    return columns


def _breakdowns_sql(scope: Scope, period: Period, dimensions: tuple[str | None, ...],
                    now: datetime) -> dict[str | None, dict[Any, Figures]]:
    without_jit()
    if scope.community_id is None:
        # The district's year is a million cases: their three durations are sorted for the
        # percentiles in memory rather than in temporary files (about 8 MB each).
        db.session.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    named = tuple(dict.fromkeys(by for by in dimensions if by is not None))
    per_case = _per_case(scope, period, named, now)
    selected = [value.label(name) for name, value in _aggregates(per_case.c).items()]
    keys = [per_case.c[f"key_{by}"] for by in named]
    result: dict[str | None, dict[Any, Figures]] = {by: {} for by in dimensions}
    if not keys:  # the summary alone: grouping by nothing would still sort every case
        query = sa.select(*selected)
        for row in db.session.execute(query).mappings():
            if row["cases"]:
                result[None][None] = _figures_from_row(row)
        return result
    # One grouping set per dimension (and the empty set for the summary); `grouping()` says
    # which set a row belongs to, since a key may itself be NULL (a case nobody accepted).
    sets = [sa.tuple_(key) for key in keys]
    if None in dimensions:
        sets.append(sa.tuple_())
    flags = [sa.func.grouping(key).label(f"unused_{by}") for by, key in zip(named, keys,
                                                                             strict=True)]
    query = (sa.select(*keys, *flags, *selected)
             .group_by(sa.func.grouping_sets(*sets)))
    for row in db.session.execute(query).mappings():
        if not row["cases"]:
            continue
        used = [by for by in named if not row[f"unused_{by}"]]
        if not used:
            result[None][None] = _figures_from_row(row)
        else:
            (by,) = used
            result[by][row[f"key_{by}"]] = _figures_from_row(row)
    return result


def _figures_from_row(row: Any) -> Figures:
    figures = Figures(**{name: row[name] for name in (
        "cases", "open", "accepted", "due", "on_time", "callbacks_due", "answered", "solved",
        "partly", "not_solved", "satisfied", "closed")})
    for rung in LADDER[:-1]:
        figures.ladder[rung] = row[f"ladder_{rung}"]
    figures.ladder["unknown"] = figures.closed - sum(figures.ladder.values())
    for urgency in Urgency:
        figures.tiers[str(urgency)] = Tier(*(row[f"{urgency}_{name}"] for name in (
            "due", "on_time", "on_site_due", "on_site_late")))
    for name in ("accept", "on_site", "resolve"):
        median, p90 = row[f"{name}_q"] or (None, None)
        setattr(figures, name, Spread(row[f"{name}_n"], median, p90))
    return figures
