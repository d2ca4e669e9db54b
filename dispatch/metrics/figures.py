"""Response figures, defined once: pure functions over plain `CaseFacts`.

How fast cases were answered, 三率, and ladder retention: every figure is defined by the
functions here, over one case's milestones and its resident callback (`CaseFacts`). The
README section "Response figures" states the same definitions in words; `queries` fetches the
facts, or computes the very same figures inside PostgreSQL, and tests hold the two to the same
answers. Cases closed as duplicates (merged into another) are left out of every figure; a case
closed "not fixed" because its complaint joined another open case still counts.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from dispatch import clock
from dispatch.models import (
    OPEN_STATUSES,
    CaseStatus,
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
