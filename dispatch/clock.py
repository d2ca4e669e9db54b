"""The one clock, and the community's local time.

Every time the service decides or writes is read here, once per decision, and passed down as
`now` to everything that decision touches: the case's milestones, its timeline events, its
outbox rows and their send jobs all carry the same instant. No column has a default time and no
other module reads the wall clock, so a job that runs with a case's `now` (the sweeper, a retry,
a replayed step) is judged by the time it was given, never by a second clock that happens to
agree.

Times are stored and passed in UTC; people see them in the community's zone. `zone()` builds
the zone objects (once per name) and `local()`/`format_local()`/`parse_local()` convert, so no
other module builds a `ZoneInfo`. A community file without a `timezone` takes the `TIME_ZONE`
setting (`default_zone_name()`).

Tests move this clock with `time-machine` (it moves `datetime.now`, which `now()` reads) or
pass `now` explicitly; README "How time flows" says how to write a test that needs a date.
Elapsed-time measurements (timeouts, sleeps) use `time.monotonic()`, which is not a clock of
the calendar.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, has_app_context

#: The zone of a community that names none, when `TIME_ZONE` is not set.
DEFAULT_ZONE = "Asia/Shanghai"

Zone = ZoneInfo | str


def now() -> datetime:
    """The current time, aware, in UTC: the only place the service reads the wall clock."""
    return datetime.now(UTC)


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone(where: Zone) -> ZoneInfo:
    """The zone object for a name like "Asia/Shanghai" (built once per name); a zone as is.

    Raises `ZoneInfoNotFoundError` (a `KeyError`) or `ValueError` for a name that is no zone.
    """
    return where if isinstance(where, ZoneInfo) else _zone(where)


def is_zone(name: str) -> bool:
    """Whether `name` names a time zone this machine knows."""
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def default_zone_name() -> str:
    """The `TIME_ZONE` setting: the zone of a community whose file names none."""
    if has_app_context():
        return str(current_app.config.get("TIME_ZONE") or DEFAULT_ZONE)
    return DEFAULT_ZONE


def local(at: datetime, where: Zone) -> datetime:
    """`at` (aware) as the wall-clock time in the zone."""
    return at.astimezone(zone(where))


def today(where: Zone, at: datetime) -> date:
    """The local date in the zone at the moment `at`."""
    return local(at, where).date()


def next_midnight(at: datetime, where: Zone) -> datetime:
    """The next local midnight after `at`, in UTC: when "today" and "周一" mean other days."""
    tomorrow = today(where, at) + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), zone(where)).astimezone(UTC)


def format_local(at: datetime | None, where: Zone, fmt: str = "%m-%d %H:%M",
                 empty: str = "—") -> str:
    """A moment as people in the zone read it (`strftime` format); `empty` for none."""
    return empty if at is None else local(at, where).strftime(fmt)


def as_local_naive(at: datetime | None, where: Zone) -> datetime | None:
    """A moment as a naive local datetime: what a spreadsheet cell can hold."""
    return None if at is None else local(at, where).replace(tzinfo=None)


def parse_local(text: str, where: Zone,
                formats: Iterable[str] = ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d")
                ) -> datetime | None:
    """A local date and time typed by a person (a form, a roster cell), as aware UTC; None if
    it matches none of `formats`."""
    value = text.strip()
    for fmt in formats:
        try:
            moment = datetime.strptime(value, fmt)
        except ValueError:
            continue
        try:
            return moment.replace(tzinfo=zone(where)).astimezone(UTC)
        except (OverflowError, ValueError):  # year 1 in a zone east of UTC
            return None
    return None
