"""The clock the tests hold: a test that needs a date moves it, and never reads the calendar.

`START` is a fixed Monday morning in Shanghai: inside the duty desk's working hours and outside
anyone's do-not-disturb. `frozen()` (the `frozen_clock` fixture) stops the process clock there
with time-machine, so `dispatch.clock.now()` — and every job, sweep and page that takes its
time from it — answers `START` until the test moves it with `move_to(at)`.
Times in a test are written relative to `START` (`START + 5 * MIN`), never to today.
Monotonic time keeps running, so timeouts and sleeps behave as usual.

`.ci/run` runs the time-sensitive tests again with the real process clock moved years ahead
and into the night (faketime), so a test that reads the calendar anyway fails there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 30, 10, 0, tzinfo=SHANGHAI)  # a Monday, 10:00 in Shanghai
MIN = timedelta(minutes=1)

_held: list[time_machine.Coordinates] = []


@contextmanager
def frozen(at: datetime = START) -> Iterator[time_machine.Coordinates]:
    """Stop the process clock at `at` for the block."""
    with time_machine.travel(at, tick=False) as coordinates:
        _held.append(coordinates)
        try:
            yield coordinates
        finally:
            _held.pop()


def move_to(at: datetime) -> None:
    """Move the held clock to `at` (forwards or back); it stays stopped there."""
    _held[-1].move_to(at)
