"""Checking a community file whole before anything is written: every problem, with its cell.

Importing is two steps: `validate` reads every table into a `Plan` or raises
`CommunityFileError` listing each problem with its file, sheet, row and column; `apply`
writes the plan in one transaction. Codes are the keys, so re-importing an edited file
updates rows in place.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from dispatch import clock, phones, security
from dispatch.community import settings as community_settings
from dispatch.community.days import parse_days
from dispatch.community.files import CommunityData, Location, Row
from dispatch.models import (
    PLACE_PARENTS,
    ROLE_RUNGS,
    Channel,
    MemberKind,
    OverrideKind,
    PlaceKind,
    Role,
    Rung,
    Urgency,
)

E = TypeVar("E", bound=enum.Enum)

#: Channels the file manages; push subscriptions come from the member's own phone.
FILE_CHANNELS = (Channel.SMS, Channel.VOICE)


class CommunityFileError(Exception):
    """The file has problems; nothing was imported. `problems` lists each with its cell."""

    def __init__(self, problems: list[tuple[Location, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{where}: {message}" for where, message in problems))


# ---------------------------------------------------------------------------------------------
# Validation: rows → a typed plan, collecting every problem rather than stopping at the first.


@dataclass(slots=True)
class PlaceSpec:
    row: Row
    code: str
    kind: PlaceKind
    name: str
    parent: str | None
    org_name: str | None
    floors: int | None
    households: int | None
    notes: str | None
    position: int


@dataclass(slots=True)
class MemberSpec:
    row: Row
    code: str
    name: str
    public_name: str | None
    kind: MemberKind
    organisation: str | None
    is_party_member: bool
    grid: str | None
    phones: list[str]
    #: The member's WeCom (企业微信) userid, for alert cards.
    wecom: str | None
    channels: list[Channel]
    dnd: tuple[time, time] | None
    active: bool
    notes: str | None


@dataclass(slots=True)
class Plan:
    community: dict[str, Any]
    settings: dict[str, Any]
    places: list[PlaceSpec] = field(default_factory=list)
    members: list[MemberSpec] = field(default_factory=list)
    responsibilities: list[dict[str, Any]] = field(default_factory=list)
    shifts: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)


class _Checker:
    """Reads typed values out of rows, noting a problem (and returning None) for bad ones."""

    def __init__(self, problems: list[tuple[Location, str]]) -> None:
        self.problems = problems

    def fail(self, row: Row, column: str | None, message: str) -> None:
        self.problems.append((row.where(column), message))

    def text(self, row: Row, column: str, *, required: bool = False, max_len: int = 100,
             ) -> str | None:
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(row, column, "is required")
            return None
        if isinstance(value, (dict, list)):
            self.fail(row, column, "expected text")
            return None
        value = str(value).strip()
        if security.CONTROL.search(value):
            self.fail(row, column, "contains a control character (invisible): retype it")
            return None
        if len(value) > max_len:
            self.fail(row, column, f"is longer than {max_len} characters")
            return None
        return value

    def integer(self, row: Row, column: str, *, low: int, high: int,
                default: int | None = None) -> int | None:
        value = row.get(column)
        if value in (None, ""):
            return default
        try:
            number = int(str(value).strip())
        except ValueError:
            self.fail(row, column, f"expected a whole number, got {value!r}")
            return default
        if not low <= number <= high:
            self.fail(row, column, f"expected a number from {low} to {high}, got {number}")
            return default
        return number

    def boolean(self, row: Row, column: str, *, default: bool) -> bool:
        value = row.get(column)
        if value in (None, ""):
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("yes", "y", "true", "1", "是", "√"):
            return True
        if text in ("no", "n", "false", "0", "否", "×"):
            return False
        self.fail(row, column, f"expected yes or no, got {value!r}")
        return default

    def choice(self, row: Row, column: str, kind: type[E], *, required: bool = True) -> E | None:
        value = self.text(row, column, required=required)
        if value is None:
            return None
        try:
            return kind(value.lower())
        except ValueError:
            allowed = ", ".join(str(m) for m in kind)
            self.fail(row, column, f"{value!r} is not one of: {allowed}")
            return None

    def items(self, row: Row, column: str) -> list[str]:
        value = row.get(column)
        if value in (None, ""):
            return []
        if isinstance(value, list):
            return [str(v).strip() for v in value if str(v).strip()]
        return [part.strip() for part in re.split(r"[,，、;；]", str(value)) if part.strip()]

    def phone(self, row: Row, column: str, value: str) -> str | None:
        try:
            return phones.e164(value)
        except phones.PhoneError:
            self.fail(row, column, f"{value!r} is not a valid phone number")
            return None

    def clock(self, row: Row, column: str, value: str) -> time | None:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        hour, minute = (int(match[1]), int(match[2])) if match else (99, 99)
        if minute > 59 or hour > 24 or (hour == 24 and minute):
            self.fail(row, column, f"expected a time like 08:30, got {value!r}")
            return None
        # A shift ending at 24:00 ends at midnight: 00:00, which wraps like any night shift.
        return time(hour % 24, minute)

    def time_range(self, row: Row, column: str) -> tuple[time, time] | None:
        value = self.text(row, column)
        if value is None:
            return None
        parts = re.split(r"\s*[-–~至]\s*", value)
        if len(parts) != 2:
            self.fail(row, column, f"expected a range like 22:00-07:00, got {value!r}")
            return None
        start, end = self.clock(row, column, parts[0]), self.clock(row, column, parts[1])
        return (start, end) if start is not None and end is not None else None

    def days(self, row: Row, column: str) -> list[int]:
        value = self.text(row, column, required=True)
        if value is None:
            return []
        try:
            return parse_days(value)
        except ValueError:
            self.fail(row, column, f"expected days like Mon-Fri or Sat,Sun, got {value!r}")
            return []

    def moment(self, row: Row, column: str, zone: ZoneInfo) -> datetime | None:
        value = self.text(row, column, required=True)
        if value is None:
            return None
        moment = clock.parse_local(value, zone, ("%Y-%m-%d %H:%M", "%Y-%m-%d"))
        if moment is not None:
            return moment
        self.fail(row, column, f"expected a date and time like 2026-12-01 08:00, got {value!r}")
        return None

    def rung(self, row: Row, column: str) -> int | None:
        value = row.get(column)
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text.isdigit() and int(text) in tuple(Rung):
            return int(text)
        try:
            return int(Rung[text.upper()])
        except KeyError:
            self.fail(row, column, f"expected building, grid, community or district, got {value!r}")
            return None


def validate(data: CommunityData) -> Plan:
    """Check every row of the file; raise `CommunityFileError` listing all problems."""
    problems = list(data.problems)
    check = _Checker(problems)
    community, zone = _community_row(data, check)
    plan = Plan(community=community, settings=_settings(data, check))
    _places(data, check, plan)
    # Rows with a bad field still define their code, so one mistake is reported once rather
    # than again in every row that refers to it.
    members = _members(data, check, plan)
    places = {str(r.get("code")) for r in data.rows("places") if r.get("code")}
    categories = {c["code"] for c in plan.settings["categories"]}
    _responsibilities(data, check, plan, members, places, categories)
    _shifts(data, check, plan, members)
    _overrides(data, check, plan, members, zone)
    _robots(data, check, plan)
    if problems:
        raise CommunityFileError(problems)
    return plan


#: Group robots, by their kind in the file: what each needs besides the key.
ROBOT_KINDS = ("wecom", "dingtalk")


def _robots(data: CommunityData, check: _Checker, plan: Plan) -> None:
    """A grid's or building's work-group robot: WeCom by its webhook key, DingTalk by its
    access token and signing secret (`SEC…`)."""
    groups = {p.code for p in plan.places if p.kind in (PlaceKind.GRID, PlaceKind.BUILDING)}
    robots = []
    for row in data.rows("robots"):
        place = check.text(row, "place", required=True, max_len=48)
        if place and place not in groups:
            check.fail(row, "place", f"{place!r} is not a grid or building of this file")
        kind = (check.text(row, "kind", required=True, max_len=16) or "").lower()
        if kind and kind not in ROBOT_KINDS:
            check.fail(row, "kind", f"{kind!r} is not one of wecom, dingtalk")
        key = check.text(row, "key", required=True, max_len=200)
        secret = check.text(row, "secret", max_len=200)
        if kind == "dingtalk" and not secret:
            check.fail(row, "secret", "a DingTalk robot needs its signing secret (SEC…)")
        robots.append({"place": place, "kind": kind, "key": key, "secret": secret})
    plan.settings["robots"] = robots


def _community_row(data: CommunityData, check: _Checker) -> tuple[dict[str, Any], ZoneInfo]:
    rows = data.rows("community")
    if len(rows) != 1:
        check.problems.append((Location(data.file, "community"),
                               "expected exactly one community row"))
        return {}, clock.zone(clock.default_zone_name())
    row = rows[0]
    timezone = check.text(row, "timezone", max_len=64) or clock.default_zone_name()
    values = {
        "code": check.text(row, "code", required=True, max_len=32),
        "name": check.text(row, "name", required=True),
        "hotline": check.text(row, "hotline", required=True, max_len=32),
        "timezone": timezone,
    }
    if clock.is_zone(timezone):
        zone = clock.zone(timezone)
    else:
        check.fail(row, "timezone", f"unknown time zone {timezone!r}")
        zone = clock.zone(clock.default_zone_name())
    if values["code"] and not re.fullmatch(r"[A-Z0-9][A-Z0-9-]*", values["code"]):
        check.fail(row, "code", "use upper-case letters, digits and '-'")
    return values, zone


def _settings(data: CommunityData, check: _Checker) -> dict[str, Any]:
    defaults = community_settings.default_settings()
    result: dict[str, Any] = {"categories": [], "policies": {}, "routing": []}
    seen: set[str] = set()
    for row in data.rows("categories"):
        code = check.text(row, "code", required=True, max_len=32)
        if code in seen:
            check.fail(row, "code", f"duplicate category {code!r}")
        seen.add(code or "")
        urgency = check.choice(row, "urgency", Urgency)
        minutes = check.integer(row, "respond_minutes", low=1, high=60 * 24 * 60)
        name = check.text(row, "name", required=True, max_len=40)
        if code and urgency and minutes and name:
            entry: dict[str, Any] = {
                "code": code, "name": name, "name_en": check.text(row, "name_en") or name,
                "urgency": str(urgency), "respond_minutes": minutes}
            for column in ("example", "example_en"):  # the line under it on the sticker page
                if text := check.text(row, column, max_len=80):
                    entry[column] = text
            result["categories"].append(entry)
    for row in data.rows("policies"):
        urgency = check.choice(row, "urgency", Urgency)
        if urgency is None:
            continue
        working_hours = check.text(row, "working_hours")
        policy = {
            "rung_minutes": check.integer(row, "rung_minutes", low=1, high=7 * 24 * 60),
            "repeat_last": check.integer(row, "repeat_last", low=0, high=10),
            "on_site_minutes": check.integer(row, "on_site_minutes", low=1, high=30 * 24 * 60),
            "referral_hours": check.integer(row, "referral_hours", low=1, high=90 * 24),
            # 0: never call; otherwise a member asked by another channel is rung after this.
            "call_after_minutes": check.integer(row, "call_after_minutes", low=0, high=24 * 60),
            "working_hours": working_hours,
        }
        if working_hours:
            _working_hours(check, row, working_hours)
        result["policies"][str(urgency)] = {k: v for k, v in policy.items() if v is not None}
    category_codes = {c["code"] for c in result["categories"] or defaults["categories"]}
    for row in data.rows("routing"):
        category = check.text(row, "category", required=True, max_len=32)
        if category and category != "*" and category not in category_codes:
            check.fail(row, "category", f"unknown category {category!r}")
        rung = check.rung(row, "rung")
        if rung is None and row.get("rung") in (None, ""):
            check.fail(row, "rung", "is required")
        roles = []
        for value in check.items(row, "roles"):
            try:
                roles.append(str(Role(value.lower())))
            except ValueError:
                check.fail(row, "roles", f"{value!r} is not a role")
        if category and rung and roles:
            result["routing"].append({"category": category, "rung": rung, "roles": roles})
    urgent = {c["code"] for c in result["categories"] or defaults["categories"]
              if c["urgency"] == str(Urgency.URGENT)}
    words: list[dict[str, str]] = []
    for row in data.rows("urgent_words"):
        word = check.text(row, "word", required=True, max_len=20)
        suggested = check.text(row, "category", required=True, max_len=32)
        if suggested and suggested not in urgent:
            check.fail(row, "category", f"{suggested!r} is not an urgent category")
        elif word and suggested:
            words.append({"word": word, "category": suggested})
    settings = {key: result[key] or defaults[key] for key in result}
    if words:  # none: the resident pages' own list (dispatch/resident/help.py)
        settings["urgent_words"] = words
    return settings


def _working_hours(check: _Checker, row: Row, value: str) -> None:
    days, _, hours = value.partition(" ")
    try:
        parse_days(days)
    except ValueError:
        check.fail(row, "working_hours", f"expected like 'Mon-Fri 08:30-17:30', got {value!r}")
        return
    probe = Row({"working_hours": hours}, row.file, row.sheet, row.number, row.columns)
    check.time_range(probe, "working_hours")


def _places(data: CommunityData, check: _Checker, plan: Plan) -> None:
    kinds: dict[str, PlaceKind] = {}
    rows = data.rows("places")
    for position, row in enumerate(rows):
        code = check.text(row, "code", required=True, max_len=48)
        if code and code in kinds:
            check.fail(row, "code", f"duplicate place code {code!r}")
            continue
        kind = check.choice(row, "kind", PlaceKind)
        if code and kind:
            kinds[code] = kind
        spec = PlaceSpec(
            row=row, code=code or "", kind=kind or PlaceKind.AREA,
            name=check.text(row, "name", required=True) or "",
            parent=check.text(row, "parent", max_len=48),
            org_name=check.text(row, "org_name"),
            floors=check.integer(row, "floors", low=1, high=200),
            households=check.integer(row, "households", low=0, high=100000),
            notes=check.text(row, "notes", max_len=2000),
            position=position,
        )
        if code and kind:
            plan.places.append(spec)
    for spec in plan.places:
        wanted = PLACE_PARENTS[spec.kind]
        if wanted is None:
            if spec.parent:
                check.fail(spec.row, "parent", f"a {spec.kind} has no parent place")
        elif not spec.parent:
            check.fail(spec.row, "parent", f"a {spec.kind} needs a parent {wanted}")
        elif spec.parent not in kinds:
            check.fail(spec.row, "parent", f"unknown place code {spec.parent!r}")
        elif kinds[spec.parent] != wanted:
            check.fail(spec.row, "parent",
                       f"a {spec.kind} belongs under a {wanted}, not a {kinds[spec.parent]}")
    plan.places.sort(key=lambda s: (_depth(s.kind), s.position))


def _depth(kind: PlaceKind) -> int:
    depth = 0
    parent = PLACE_PARENTS[kind]
    while parent is not None:
        depth, parent = depth + 1, PLACE_PARENTS[parent]
    return depth


def _members(data: CommunityData, check: _Checker, plan: Plan) -> set[str]:
    seen: set[str] = set()
    grids = {p.code for p in plan.places if p.kind == PlaceKind.GRID}
    for row in data.rows("members"):
        code = check.text(row, "code", required=True, max_len=32)
        if code and code in seen:
            check.fail(row, "code", f"duplicate member code {code!r}")
            continue
        seen.add(code or "")
        phones = [p for p in (check.phone(row, "phones", v) for v in check.items(row, "phones"))
                  if p]
        channels: list[Channel] = []
        for value in check.items(row, "channels") or ["sms"]:
            try:
                channels.append(Channel(value.lower()))
            except ValueError:
                check.fail(row, "channels", f"{value!r} is not one of sms, voice, push, wecom")
        grid = check.text(row, "grid", max_len=48)
        if grid and grid not in grids:
            check.fail(row, "grid", f"unknown grid code {grid!r}")
        kind = check.choice(row, "kind", MemberKind)
        name = check.text(row, "name", required=True)
        if code and kind and name:
            plan.members.append(MemberSpec(
                row=row, code=code, name=name,
                public_name=check.text(row, "public_name", max_len=50),
                kind=kind, organisation=check.text(row, "organisation"),
                is_party_member=check.boolean(row, "party_member", default=False),
                grid=grid, phones=phones, channels=channels,
                wecom=check.text(row, "wecom", max_len=64),
                dnd=check.time_range(row, "dnd"), active=check.boolean(row, "active", default=True),
                notes=check.text(row, "notes", max_len=2000),
            ))
    return seen - {""}


def _responsibilities(data: CommunityData, check: _Checker, plan: Plan, members: set[str],
                      places: set[str], categories: set[str]) -> None:
    seen: set[tuple[Any, ...]] = set()
    for row in data.rows("responsibilities"):
        member = check.text(row, "member", required=True, max_len=32)
        if member and member not in members:
            check.fail(row, "member", f"unknown member code {member!r}")
        place = check.text(row, "place", max_len=48)
        if place and place not in places:
            check.fail(row, "place", f"unknown place code {place!r}")
        role = check.choice(row, "role", Role)
        rung = check.rung(row, "rung") or (ROLE_RUNGS[role] if role else None)
        cats = check.items(row, "categories")
        for cat in cats:
            if cat not in categories:
                check.fail(row, "categories", f"unknown category {cat!r}")
        key = (member, place, role)
        if key in seen:
            check.fail(row, None, f"{member} is already {role} for {place or 'the community'}")
        seen.add(key)
        plan.responsibilities.append({
            "member": member, "place": place, "role": role, "rung": rung,
            "position": check.integer(row, "order", low=0, high=999, default=0), "categories": cats,
        })


def _shifts(data: CommunityData, check: _Checker, plan: Plan, members: set[str]) -> None:
    for row in data.rows("shifts"):
        member = check.text(row, "member", required=True, max_len=32)
        if member and member not in members:
            check.fail(row, "member", f"unknown member code {member!r}")
        days = check.days(row, "days")
        start = check.clock(row, "start", str(row.get("start") or ""))
        end = check.clock(row, "end", str(row.get("end") or ""))
        for day in days:
            plan.shifts.append({"member": member, "weekday": day, "starts": start, "ends": end})


def _overrides(data: CommunityData, check: _Checker, plan: Plan, members: set[str],
               zone: ZoneInfo) -> None:
    for row in data.rows("overrides"):
        member = check.text(row, "member", required=True, max_len=32)
        stand_in = check.text(row, "stand_in", max_len=32)
        for column, code in (("member", member), ("stand_in", stand_in)):
            if code and code not in members:
                check.fail(row, column, f"unknown member code {code!r}")
        starts, ends = check.moment(row, "starts", zone), check.moment(row, "ends", zone)
        if starts and ends and ends <= starts:
            check.fail(row, "ends", "must be after starts")
        plan.overrides.append({
            "member": member, "kind": check.choice(row, "kind", OverrideKind),
            "starts_at": starts, "ends_at": ends, "stand_in": stand_in,
            "note": check.text(row, "note", max_len=200),
        })
