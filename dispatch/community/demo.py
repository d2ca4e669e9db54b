"""A Donghu-sized demo community, generated deterministically from a seed.

Modelled on the Donghu community report: 7 grids each with a party branch, a party group in
every building, 237 party members, about 8,500 households in high-rise buildings of 18–33
floors with 2–4 units and 1–2 elevators per unit, plus community staff and the outside
responders of "5+1", 一居一警, the family doctors and the elevator maintainer. The result is
the same file tables an export produces, so the demo goes through the ordinary import.
"""

from __future__ import annotations

import random
from typing import Any

from dispatch.community.settings import default_settings
from dispatch.models import Rung

GRIDS = 7
PARTY_MEMBERS = 237
TARGET_HOUSEHOLDS = 8500
CODE = "DH"
NAME = "东湖花园"
HOTLINE = "0752-2345678"

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢钟"
)
_GIVEN = "建国伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华平刚桂兰玉珍红霞志文海燕慧宁春梅云飞鹏辉"
_NUMERALS = "一二三四五六七八九十"
_MOBILE_PREFIXES = ("133", "135", "136", "137", "138", "139", "150", "151", "158", "186", "188")


def generate(seed: int = 2018) -> dict[str, list[dict[str, Any]]]:
    """The demo community's file tables; the same seed always gives the same community."""
    rng = random.Random(seed)
    tables: dict[str, list[dict[str, Any]]] = {
        "community": [{"code": CODE, "name": NAME, "timezone": "Asia/Shanghai",
                       "hotline": HOTLINE}],
        "places": [], "members": [], "responsibilities": [], "shifts": [], "overrides": [],
    }
    settings = default_settings()
    tables["categories"] = settings["categories"]
    tables["policies"] = [{"urgency": u, **p} for u, p in settings["policies"].items()]
    tables["routing"] = [{"category": r["category"], "rung": Rung(r["rung"]).name.lower(),
                          "roles": r["roles"]} for r in settings["routing"]]
    people = _People(rng)
    buildings = _places(rng, tables["places"])
    _party(rng, people, buildings, tables)
    _community_desk(rng, people, tables)
    tables["members"] = people.rows
    return tables


class _People:
    """Hands out unique names, codes and phone numbers."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rows: list[dict[str, Any]] = []
        self.names: set[str] = set()
        self.phones: set[str] = set()

    def add(self, kind: str, *, party: bool = False, grid: str | None = None,
            organisation: str | None = None, name: str | None = None,
            phone: bool = True, dnd: str | None = None, channels: str = "sms") -> str:
        code = f"M{len(self.rows) + 1:04d}"
        self.rows.append({
            "code": code, "name": name or self._name(), "kind": kind,
            "party_member": "yes" if party else "no", "grid": grid,
            "organisation": organisation, "phones": [self._phone()] if phone else [],
            "channels": channels.split(","), "dnd": dnd, "active": "yes",
        })
        return code

    def _name(self) -> str:
        while True:
            name = self.rng.choice(_SURNAMES) + "".join(
                self.rng.choice(_GIVEN) for _ in range(self.rng.choice((1, 2))))
            if name not in self.names:
                self.names.add(name)
                return name

    def _phone(self) -> str:
        while True:
            phone = "+86" + self.rng.choice(_MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if phone not in self.phones:
                self.phones.add(phone)
                return phone


def _places(rng: random.Random, places: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Grids, buildings, units, elevators and shared areas; returns (grid, building) codes."""
    grids = [f"{CODE}-G{g}" for g in range(1, GRIDS + 1)]
    for number, grid in enumerate(grids, start=1):
        numeral = _NUMERALS[number - 1]
        places.append({"code": grid, "kind": "grid", "name": f"第{numeral}网格",
                       "org_name": f"东湖社区第{numeral}网格党支部"})
    buildings: list[tuple[str, str]] = []
    households = 0
    number = 0
    while households < TARGET_HOUSEHOLDS:
        number += 1
        grid = grids[(number - 1) % GRIDS]
        code = f"{CODE}-B{number:02d}"
        floors = rng.randint(18, 33)
        units = rng.randint(2, 4)
        per_floor = rng.choice((2, 2, 3, 4))
        places.append({"code": code, "kind": "building", "name": f"{number}栋", "parent": grid,
                       "org_name": f"{number}栋党小组", "floors": floors,
                       "households": floors * per_floor * units})
        buildings.append((grid, code))
        for unit in range(1, units + 1):
            unit_code = f"{code}-U{unit}"
            places.append({"code": unit_code, "kind": "unit", "name": f"{unit}单元",
                           "parent": code, "households": floors * per_floor})
            for lift in range(1, (2 if floors > 24 or per_floor > 2 else 1) + 1):
                places.append({"code": f"{unit_code}-E{lift}", "kind": "elevator",
                               "name": f"{lift}号电梯", "parent": unit_code})
        households += floors * per_floor * units
    areas = ("北门岗亭", "南门", "地下车库", "中心广场", "垃圾分类站")
    for index, grid in enumerate(grids):
        for n, name in enumerate(rng.sample(areas, 2), start=1):
            places.append({"code": f"{grid}-A{n}", "kind": "area", "name": name,
                           "parent": grid, "notes": f"第{_NUMERALS[index]}网格公共区域"})
    return buildings


def _party(rng: random.Random, people: _People, buildings: list[tuple[str, str]],
           tables: dict[str, list[dict[str, Any]]]) -> None:
    """Grid secretaries and members, building leaders and backups: the party network."""
    resp = tables["responsibilities"]
    grids = sorted({g for g, _ in buildings})
    party_left = PARTY_MEMBERS
    for grid in grids:
        secretary = people.add("party_member", party=True, grid=grid, dnd=None)
        resp.append({"member": secretary, "place": grid, "rung": "grid", "role": "secretary",
                     "order": 0})
        party_left -= 1
    leaders: list[str] = []
    for grid, building in buildings:
        leader = people.add("party_member", party=True, grid=grid, dnd="22:30-06:30")
        leaders.append(leader)
        resp.append({"member": leader, "place": building, "rung": "building", "role": "leader",
                     "order": 0})
        party_left -= 1
    # The remaining party members back up building leaders, then serve as grid members.
    index = 0
    while party_left > 0:
        grid, building = buildings[index % len(buildings)]
        member = people.add("party_member", party=True, grid=grid,
                            dnd=rng.choice((None, "22:00-07:00")),
                            phone=rng.random() > 0.02)
        if index < len(buildings) * 2:
            resp.append({"member": member, "place": building, "rung": "building",
                         "role": "backup", "order": 1 + index // len(buildings)})
        else:
            resp.append({"member": member, "place": grid, "rung": "grid", "role": "grid_member",
                         "order": 1})
        party_left -= 1
        index += 1
    for grid, building in rng.sample(buildings, len(buildings) // 3):
        volunteer = people.add("volunteer", grid=grid, dnd="21:00-08:00")
        resp.append({"member": volunteer, "place": building, "rung": "building", "role": "backup",
                     "order": 3})
    # One leader is on leave next week, a backup standing in: duty overrides in action.
    tables["overrides"].append({"member": leaders[0], "kind": "leave",
                                "starts": "2026-12-07 00:00", "ends": "2026-12-13 23:59",
                                "stand_in": None, "note": "年休假"})


def _community_desk(rng: random.Random, people: _People,
                    tables: dict[str, list[dict[str, Any]]]) -> None:
    """Staff on duty rotas and the outside parties that answer for the whole community."""
    resp, shifts = tables["responsibilities"], tables["shifts"]
    staff = [people.add("staff", organisation="东湖社区居委会", channels="sms,voice")
             for _ in range(8)]
    day_rota = ("Mon,Thu", "Tue,Fri", "Wed,Sat", "Sun")
    for index, member in enumerate(staff):
        resp.append({"member": member, "place": None, "rung": "community", "role": "duty_desk",
                     "order": index})
        if index < 4:
            shifts.append({"member": member, "days": day_rota[index], "start": "08:30",
                           "end": "17:30"})
        else:
            shifts.append({"member": member, "days": day_rota[index - 4], "start": "17:30",
                           "end": "08:30"})
    outside = [
        ("property", "碧水湾物业·智能管家服务台", "property", None, 2, ("daily", "07:00", "22:00")),
        ("volunteer", "东湖花园业主委员会", "owners", None, 1, None),
        ("police", "桥东派出所(一居一警)", "police", None, 1, None),
        ("doctor", "桥东社区卫生服务中心(家庭医生)", "doctor", None, 2,
         ("Mon-Sat", "08:00", "18:00")),
        ("elevator", "惠州快速电梯维保", "elevator", ["elevator"], 2, ("daily", "00:00", "24:00")),
    ]
    for kind, organisation, role, categories, count, shift in outside:
        for index in range(count):
            member = people.add(kind, organisation=organisation, channels="sms,voice")
            resp.append({"member": member, "place": None, "rung": "community", "role": role,
                         "order": index, "categories": categories or []})
            if shift:
                shifts.append({"member": member, "days": shift[0], "start": shift[1],
                               "end": shift[2]})
    for organisation in ("桥东街道办事处", "惠城区住房和城乡建设局", "惠城区城市管理和综合执法局"):
        member = people.add("department", organisation=organisation, channels="sms")
        resp.append({"member": member, "place": None, "rung": "district", "role": "department",
                     "order": 0})
        shifts.append({"member": member, "days": "Mon-Fri", "start": "08:30", "end": "17:30"})
