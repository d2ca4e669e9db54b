"""Response figures: how fast cases were answered, 三率, and ladder retention.

Every figure is defined once, by the pure functions at the top of this module, over plain
`CaseFacts` (one case's milestones and its resident callback). The README section "Response
figures" states the same definitions in words. The queries at the bottom fetch those facts,
or, on PostgreSQL, compute the very same counts and percentiles inside the database
(`percentile_cont`, `count(*) FILTER`), so a year of a district's cases never crosses the wire.
Tests hold the two paths to the same answers.

A period holds the cases *reported* in it; everything about those cases (acceptance,
callbacks) is counted as known at `now`, so a month's report is a snapshot taken when it is
run. Cases closed as duplicates (merged into another) are left out of every figure; a case
closed "not fixed" because its complaint joined another open case still counts.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased

from dispatch import clock
from dispatch.db import UTCDateTime, db
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

#: Breakdowns a figure can be split by (`breakdown(..., by=...)`).
DIMENSIONS = ("community", "grid", "building", "member", "category", "rung", "urgency", "hour",
              "week")
#: Where closed cases ended on the ladder, in the order reports show them.
LADDER = ("building", "grid", "community", "referred", "unknown")
#: Upper edges (minutes) of the time-to-accept histogram; the last bucket is open-ended.
ACCEPT_EDGES_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 1440)
#: Satisfaction scores (1–5) counted as 满意 or 基本满意 for 满意率.
SATISFIED_FROM = 4


# ---------------------------------------------------------------------------------------------
# Pure definitions


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-quantile (0 ≤ q ≤ 1) by linear interpolation between closest ranks; None for none.

    The one percentile of the project (figures, benchmarks, load tests): the same method as
    PostgreSQL's `percentile_cont`, Excel's PERCENTILE.INC and numpy's default. For n sorted
    values the rank is h = (n − 1)·q and the result lies between the values at floor(h) and
    ceil(h); one value is every percentile of itself. `statistics.quantiles(method="inclusive")`
    cuts at exactly these ranks, so q is taken as a fraction k/m and the k-th of its m-quantiles
    returned (it needs two values on Python 3.11, hence the single value apart).
    """
    data = list(values)
    if not 0 <= q <= 1:
        raise ValueError(f"a percentile's q lies in [0, 1], not {q}")
    if not data:
        return None
    if len(data) == 1 or q in (0, 1):
        return float(min(data) if q < 1 else max(data))
    share = Fraction(q).limit_denominator(10_000)
    return statistics.quantiles(data, n=share.denominator,
                                method="inclusive")[share.numerator - 1]


@dataclass(frozen=True, slots=True)
class Spread:
    """How a duration is distributed: how many cases had it, the median and the 90th percentile.

    Never a mean: resolve times have no upper bound, and one forgotten case would drag it.
    """

    n: int = 0
    median: float | None = None
    p90: float | None = None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Spread:
        return cls(len(seconds), percentile(seconds, 0.5), percentile(seconds, 0.9))


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """One case as the figures see it: milestones, its deadlines and its latest answered callback.

    `accept_minutes` and `on_site_minutes` come from the policy snapshot the case carries, so
    editing the community's policy never changes how an old case is judged.
    """

    reported_at: datetime
    urgency: str = Urgency.NORMAL
    accept_minutes: float | None = None
    on_site_minutes: float | None = None
    status: str = CaseStatus.OPEN
    resolution: str | None = None
    accepted_at: datetime | None = None
    on_site_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    accepted_rung: int | None = None
    closed_rung: int | None = None
    solved: str | None = None
    satisfaction: int | None = None
    community_id: int | None = None
    grid_id: int | None = None
    building_id: int | None = None
    member_id: int | None = None
    category: str | None = None
    timezone: str = "Asia/Shanghai"


def seconds_between(later: datetime | None, earlier: datetime | None) -> float | None:
    return None if later is None or earlier is None else (later - earlier).total_seconds()


def accept_seconds(case: CaseFacts) -> float | None:
    """Time to accept: from the first report to the first acceptance."""
    return seconds_between(case.accepted_at, case.reported_at)


def on_site_seconds(case: CaseFacts) -> float | None:
    """Time to on site: from the first report to the responder saying they are there."""
    return seconds_between(case.on_site_at, case.reported_at)


def resolve_seconds(case: CaseFacts) -> float | None:
    """Time to resolve: from the first report to the responder (or staff) saying it is fixed."""
    return seconds_between(case.resolved_at, case.reported_at)


def accepted_on_time(case: CaseFacts) -> bool:
    """Accepted within the tier deadline: `rung_minutes` of the case's own policy snapshot.

    That is the time the first rung is given before the ladder climbs (5 min urgent, 30 min
    normal, 4 h low by default): a case accepted in it never needed the ladder.
    """
    took = accept_seconds(case)
    return took is not None and case.accept_minutes is not None and took <= 60 * case.accept_minutes


def accept_due(case: CaseFacts, now: datetime) -> bool:
    """Whether the case counts for 响应率: accepted, or its deadline passed while it was open.

    A case closed (withdrawn, spam) before its deadline without anyone accepting was never due.
    """
    if case.accepted_at is not None:
        return True
    if case.accept_minutes is None:
        return False
    limit = 60 * case.accept_minutes
    passed = seconds_between(now, case.reported_at)
    closed = seconds_between(case.closed_at, case.reported_at)
    return passed is not None and passed >= limit and (closed is None or closed >= limit)


def _arrived_at(case: CaseFacts) -> datetime | None:
    """When the responder got there: on site, or failing that resolved or closed."""
    return case.on_site_at or case.resolved_at or case.closed_at


def on_site_due(case: CaseFacts, now: datetime) -> bool:
    """Accepted, with an on-site deadline that has passed or been met."""
    if case.accepted_at is None or case.on_site_minutes is None:
        return False
    waited = seconds_between(now, case.accepted_at) or 0.0
    return _arrived_at(case) is not None or waited >= 60 * case.on_site_minutes


def on_site_late(case: CaseFacts, now: datetime) -> bool:
    """Not on site within `on_site_minutes` of acceptance (policy snapshot), or not yet at all."""
    if not on_site_due(case, now):
        return False
    took = seconds_between(_arrived_at(case), case.accepted_at)
    return took is None or took > 60 * (case.on_site_minutes or 0)


def ladder_bucket(case: CaseFacts) -> str | None:
    """Where a closed case ended: building / grid / community rung, referred up, or unknown."""
    if case.status != CaseStatus.CLOSED:
        return None
    if case.resolution == Resolution.REFERRED or (case.closed_rung or 0) >= Rung.DISTRICT:
        return "referred"
    rungs: dict[int, str] = {Rung.BUILDING: "building", Rung.GRID: "grid",
                             Rung.COMMUNITY: "community"}
    return rungs.get(case.closed_rung or 0, "unknown")


def callback_due(case: CaseFacts) -> bool:
    """A callback (回访) is due once the case was resolved or closed, or has been answered."""
    return case.resolved_at is not None or case.closed_at is not None or case.solved is not None


def accept_bucket(seconds: float) -> int:
    """The histogram bucket a time to accept falls in (edges are inclusive upper bounds)."""
    return next((i for i, edge in enumerate(ACCEPT_EDGES_MINUTES) if seconds <= 60 * edge),
                len(ACCEPT_EDGES_MINUTES))


def ratio(part: int, whole: int) -> float | None:
    """A rate, or None when there is nothing to divide by (shown as "—", never as 0 %)."""
    return part / whole if whole else None


@dataclass(slots=True)
class Tier:
    """SLA figures for one urgency tier."""

    due: int = 0
    on_time: int = 0
    on_site_due: int = 0
    on_site_late: int = 0

    @property
    def late(self) -> int:
        """Accept breaches: due but not accepted within the deadline."""
        return self.due - self.on_time


@dataclass(slots=True)
class Figures:
    """Every figure for one scope and period; rates are None when their denominator is 0."""

    cases: int = 0
    open: int = 0
    accepted: int = 0
    due: int = 0
    on_time: int = 0
    callbacks_due: int = 0
    answered: int = 0
    solved: int = 0
    partly: int = 0
    not_solved: int = 0
    satisfied: int = 0
    closed: int = 0
    ladder: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LADDER, 0))
    tiers: dict[str, Tier] = field(default_factory=lambda: {str(u): Tier() for u in Urgency})
    accept: Spread = field(default_factory=Spread)
    on_site: Spread = field(default_factory=Spread)
    resolve: Spread = field(default_factory=Spread)

    @property
    def response_rate(self) -> float | None:
        """响应率: accepted within the tier deadline ÷ cases due."""
        return ratio(self.on_time, self.due)

    @property
    def callback_rate(self) -> float | None:
        """回访率: cases with an answered callback ÷ cases due a callback."""
        return ratio(self.answered, self.callbacks_due)

    @property
    def solve_rate(self) -> float | None:
        """解决率: callbacks answered "solved" ÷ callbacks answered."""
        return ratio(self.solved, self.answered)

    @property
    def partly_rate(self) -> float | None:
        """Callbacks answered "partly solved" ÷ callbacks answered, shown beside 解决率."""
        return ratio(self.partly, self.answered)

    @property
    def satisfaction_rate(self) -> float | None:
        """满意率: callbacks with satisfaction ≥ 4 (satisfied, basically satisfied) ÷ answered."""
        return ratio(self.satisfied, self.answered)

    def retention(self) -> dict[str, float | None]:
        """Share of closed cases closed at each rung, or referred up."""
        return {rung: ratio(count, self.closed) for rung, count in self.ladder.items()}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form: counts, rates (0–1) and durations in seconds."""
        return {
            "cases": self.cases, "open": self.open, "accepted": self.accepted,
            "due": self.due, "accepted_on_time": self.on_time,
            "response_rate": self.response_rate,
            "callbacks_due": self.callbacks_due, "callbacks_answered": self.answered,
            "callback_rate": self.callback_rate,
            "solved": self.solved, "partly": self.partly, "not_solved": self.not_solved,
            "solve_rate": self.solve_rate, "partly_rate": self.partly_rate,
            "satisfied": self.satisfied, "satisfaction_rate": self.satisfaction_rate,
            "closed": self.closed, "ladder": dict(self.ladder), "retention": self.retention(),
            "sla": {u: {"due": t.due, "on_time": t.on_time, "late": t.late,
                        "on_site_due": t.on_site_due, "on_site_late": t.on_site_late}
                    for u, t in self.tiers.items()},
            "seconds": {name: {"n": s.n, "median": s.median, "p90": s.p90}
                        for name, s in (("accept", self.accept), ("on_site", self.on_site),
                                        ("resolve", self.resolve))},
        }


def tally(cases: Iterable[CaseFacts], now: datetime) -> Figures:
    """Every figure over `cases` as known at `now`: the definition the SQL path mirrors."""
    figures = Figures()
    accept: list[float] = []
    on_site: list[float] = []
    resolve: list[float] = []
    for case in cases:
        if case.resolution == Resolution.DUPLICATE:
            continue
        figures.cases += 1
        figures.open += case.status in OPEN_STATUSES
        figures.accepted += case.accepted_at is not None
        tier = figures.tiers.setdefault(case.urgency, Tier())
        if accept_due(case, now):
            figures.due += 1
            tier.due += 1
            if accepted_on_time(case):
                figures.on_time += 1
                tier.on_time += 1
        tier.on_site_due += on_site_due(case, now)
        tier.on_site_late += on_site_late(case, now)
        figures.callbacks_due += callback_due(case)
        if case.solved is not None:
            figures.answered += 1
            figures.solved += case.solved == Solved.YES
            figures.partly += case.solved == Solved.PARTLY
            figures.not_solved += case.solved == Solved.NO
            figures.satisfied += (case.satisfaction or 0) >= SATISFIED_FROM
        bucket = ladder_bucket(case)
        if bucket is not None:
            figures.closed += 1
            figures.ladder[bucket] += 1
        for values, took in ((accept, accept_seconds(case)), (on_site, on_site_seconds(case)),
                             (resolve, resolve_seconds(case))):
            if took is not None:
                values.append(took)
    figures.accept, figures.on_site, figures.resolve = (
        Spread.of(accept), Spread.of(on_site), Spread.of(resolve))
    return figures


def local_week(moment: datetime, zone: str) -> date:
    """The Monday of the local week `moment` falls in."""
    day = clock.today(zone, moment)
    return day - timedelta(days=day.weekday())


#: How each dimension reads its key off a case.
KEYS: dict[str, Callable[[CaseFacts], Hashable]] = {
    "community": lambda c: c.community_id,
    "grid": lambda c: c.grid_id,
    "building": lambda c: c.building_id,
    "member": lambda c: c.member_id,
    "category": lambda c: c.category,
    "rung": lambda c: c.accepted_rung,
    "urgency": lambda c: c.urgency,
    "hour": lambda c: clock.local(c.reported_at, c.timezone).hour,
    "week": lambda c: local_week(c.reported_at, c.timezone),
}


def tally_by(cases: Iterable[CaseFacts], by: str, now: datetime) -> dict[Hashable, Figures]:
    """Figures per key of dimension `by` (a case without a key, e.g. no member, is under None)."""
    groups: dict[Hashable, list[CaseFacts]] = defaultdict(list)
    for case in cases:
        groups[KEYS[by](case)].append(case)
    return {key: tally(group, now) for key, group in groups.items()}


def histogram(cases: Iterable[CaseFacts]) -> list[int]:
    """How many accepted cases fall in each time-to-accept bucket (`ACCEPT_EDGES_MINUTES`)."""
    counts = [0] * (len(ACCEPT_EDGES_MINUTES) + 1)
    for case in cases:
        took = accept_seconds(case)
        if took is not None and case.resolution != Resolution.DUPLICATE:
            counts[accept_bucket(took)] += 1
    return counts


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


def _cases(scope: Scope, period: Period, *, by: str | None = None) -> _From:
    """FROM the scope's cases in the period (duplicates left out), columns still to choose."""
    query = sa.select().select_from(Case).where(
        Case.reported_at >= period.start, Case.reported_at < period.end,
        sa.or_(Case.resolution.is_(None), Case.resolution != Resolution.DUPLICATE))
    if scope.community_id is not None:
        query = query.where(Case.community_id == scope.community_id)
    levels = None
    if scope.grid_id is not None or scope.building_id is not None or by in ("grid", "building"):
        levels = place_levels(scope.community_id)
        query = query.join(levels, levels.c.place_id == Case.place_id)
        if scope.grid_id is not None:
            query = query.where(levels.c.grid_id == scope.grid_id)
        if scope.building_id is not None:
            query = query.where(levels.c.building_id == scope.building_id)
    if by in ("hour", "week"):
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
    """Every figure for the scope and period."""
    return breakdown(scope, period, None, now).get(None) or Figures()


def breakdown(scope: Scope, period: Period, by: str | None,
              now: datetime | None = None) -> dict[Any, Figures]:
    """Figures per key of dimension `by` (see `DIMENSIONS`); `by=None` gives one entry, None."""
    if by is not None and by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}")
    now = now or clock.now()
    if _in_database():
        return _breakdown_sql(scope, period, by, now)
    cases = facts(scope, period)
    if by is None:
        return {None: tally(cases, now)} if cases else {}
    return tally_by(cases, by, now)


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


def _per_case(scope: Scope, period: Period, by: str | None, now: datetime) -> sa.Subquery:
    """One row per case with what the counters need, each computed once."""
    source = _cases(scope, period, by=by)
    answer, on = latest_answer()
    at_now = sa.bindparam("now", now, type_=UTCDateTime())
    arrived = sa.func.coalesce(Case.on_site_at, Case.resolved_at, Case.closed_at)
    key = _key(by, source)
    columns = [
        (key if key is not None else sa.null()).label("key"),
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
    referred = sa.and_(closed, sa.or_(c.resolution == Resolution.REFERRED,
                                      c.closed_rung >= Rung.DISTRICT))
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


def _breakdown_sql(scope: Scope, period: Period, by: str | None,
                   now: datetime) -> dict[Any, Figures]:
    without_jit()
    per_case = _per_case(scope, period, by, now)
    selected = [value.label(name) for name, value in _aggregates(per_case.c).items()]
    query = sa.select(per_case.c.key, *selected).group_by(per_case.c.key)
    result: dict[Any, Figures] = {}
    for row in db.session.execute(query).mappings():
        if row["cases"]:
            result[row["key"] if by is not None else None] = _figures_from_row(row)
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
