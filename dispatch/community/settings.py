"""A community's dispatch settings: report categories, escalation policies and routing rules.

They live in the community file (sections `categories`, `policies`, `routing`) and are stored
on `Community.settings`; these defaults fill whatever a file leaves out. A case copies its
policy when it opens, so editing them never changes an open case behind its back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispatch.models import Community, Role, Rung, Urgency


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    name: str  # Chinese, as residents see it
    name_en: str
    urgency: Urgency
    #: The response promised on the receipt: a responder accepts within this many minutes.
    respond_minutes: int


DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category("repair", "维修/水电", "Repairs, water and power", Urgency.NORMAL, 24 * 60),
    Category("elevator", "电梯故障", "Elevator fault", Urgency.URGENT, 30),
    Category("safety", "安全隐患", "Safety hazard", Urgency.URGENT, 120),
    Category("noise", "噪音扰民", "Noise", Urgency.NORMAL, 24 * 60),
    Category("sanitation", "环境卫生", "Cleanliness", Urgency.LOW, 7 * 24 * 60),
    Category("dispute", "邻里纠纷", "Neighbour dispute", Urgency.NORMAL, 3 * 24 * 60),
    Category("help", "求助/独居老人", "Help, elderly living alone", Urgency.URGENT, 120),
    Category("other", "其他", "Other", Urgency.NORMAL, 7 * 24 * 60),
)

#: Per urgency: minutes to wait at each rung, how often the last rung repeats before the case
#: is declared stuck, how long an acceptor has to reach the site, and (low) the working hours
#: in which steps fire. A referral to a department gets `referral_hours` to answer.
DEFAULT_POLICIES: dict[str, dict[str, Any]] = {
    Urgency.URGENT: {"rung_minutes": 5, "repeat_last": 2, "on_site_minutes": 30,
                     "referral_hours": 24, "call_after_minutes": 2},
    Urgency.NORMAL: {"rung_minutes": 30, "repeat_last": 2, "on_site_minutes": 240,
                     "referral_hours": 72},
    Urgency.LOW: {"rung_minutes": 240, "repeat_last": 1, "on_site_minutes": 24 * 60,
                  "referral_hours": 7 * 24, "working_hours": "Mon-Fri 08:30-17:30"},
}

#: Who is asked at each rung: "*" is every category; a category's own rule replaces it.
DEFAULT_ROUTING: tuple[dict[str, Any], ...] = (
    {"category": "*", "rung": Rung.BUILDING, "roles": [Role.LEADER, Role.BACKUP]},
    {"category": "*", "rung": Rung.GRID, "roles": [Role.SECRETARY, Role.GRID_MEMBER]},
    {"category": "*", "rung": Rung.COMMUNITY,
     "roles": [Role.DUTY_DESK, Role.PROPERTY, Role.OWNERS]},
    {"category": "*", "rung": Rung.DISTRICT, "roles": [Role.DEPARTMENT]},
    {"category": "elevator", "rung": Rung.BUILDING, "roles": [Role.ELEVATOR, Role.LEADER]},
    {"category": "repair", "rung": Rung.BUILDING, "roles": [Role.PROPERTY]},
    {"category": "safety", "rung": Rung.BUILDING, "roles": [Role.POLICE, Role.LEADER]},
    {"category": "help", "rung": Rung.BUILDING, "roles": [Role.LEADER, Role.DOCTOR]},
)


def default_settings() -> dict[str, Any]:
    """The settings a community starts with, in the form stored on `Community.settings`."""
    return {
        "categories": [_category_dict(c) for c in DEFAULT_CATEGORIES],
        "policies": {str(k): dict(v) for k, v in DEFAULT_POLICIES.items()},
        "routing": [
            {"category": r["category"], "rung": int(r["rung"]),
             "roles": [str(role) for role in r["roles"]]}
            for r in DEFAULT_ROUTING
        ],
    }


def _category_dict(c: Category) -> dict[str, Any]:
    return {"code": c.code, "name": c.name, "name_en": c.name_en, "urgency": str(c.urgency),
            "respond_minutes": c.respond_minutes}


def categories(community: Community) -> list[Category]:
    """The community's report categories, in the order residents see them."""
    rows = community.settings.get("categories") or default_settings()["categories"]
    return [
        Category(r["code"], r["name"], r.get("name_en") or r["name"], Urgency(r["urgency"]),
                 int(r["respond_minutes"]))
        for r in rows
    ]


def category(community: Community, code: str) -> Category | None:
    """The category with `code`, or None if the community has no such category."""
    return next((c for c in categories(community) if c.code == code), None)


def policy(community: Community, urgency: Urgency) -> dict[str, Any]:
    """The escalation policy for `urgency`, with defaults for anything the file left out."""
    stored = community.settings.get("policies", {}).get(str(urgency), {})
    return {**DEFAULT_POLICIES[urgency], **stored}


def routing_roles(community: Community, category_code: str, rung: int) -> list[Role]:
    """The roles asked at `rung` for a category: its own rule if any, else the "*" rule."""
    rules = community.settings.get("routing") or default_settings()["routing"]
    for wanted in (category_code, "*"):
        for rule in rules:
            if rule["category"] == wanted and int(rule["rung"]) == rung:
                return [Role(r) for r in rule["roles"]]
    return []
