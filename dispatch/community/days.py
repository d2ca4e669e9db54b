"""Weekdays in community files: 'Mon-Fri', 'Sat,Sun', 'daily', '周一至周五'.

Shifts, overrides and working hours name days this way; `parse_days` reads them and
`format_days` writes them back when a community is exported.
"""

from __future__ import annotations

import re

from dispatch.words import WEEKDAYS as CN_WEEKDAYS

#: The file's weekday codes, Monday first, as `date.weekday()` counts.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_days(value: str) -> list[int]:
    """'Mon-Fri' → [0..4]; also 'Sat,Sun', 'daily', '周一至周五'. Raises ValueError."""
    text = value.strip().lower()
    if text in ("daily", "every day", "每天", "每日"):
        return list(range(7))
    for index, char in enumerate(CN_WEEKDAYS):
        text = text.replace(f"周{char}", WEEKDAYS[index]).replace(f"星期{char}", WEEKDAYS[index])
    text = text.replace("至", "-").replace("到", "-")
    days: list[int] = []
    for part in re.split(r"[,，、\s]+", text):
        if not part:
            continue
        ends = [p.strip()[:3] for p in part.split("-")]
        if len(ends) > 2 or any(e not in WEEKDAYS for e in ends):
            raise ValueError(value)
        first, last = WEEKDAYS.index(ends[0]), WEEKDAYS.index(ends[-1])
        span = range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)]
        days.extend(d for d in span if d not in days)
    if not days:
        raise ValueError(value)
    return days


def format_days(days: list[int]) -> str:
    """The inverse of `parse_days` for a set of weekdays: [0,1,2,3,4] → 'Mon-Fri'."""
    days = sorted(set(days))
    if days == list(range(7)):
        return "daily"
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    name = [d.capitalize() for d in WEEKDAYS]
    return ",".join(name[r[0]] if len(r) == 1 else f"{name[r[0]]}-{name[r[-1]]}" for r in runs)
