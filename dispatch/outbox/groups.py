"""Work groups: a grid's (and a building's) group hears about its cases through its robot.

A new case, an escalation and a resolution post a short markdown message into the group of
every grid and building above the case's place that has a robot in the community file
(`robots`). One-way and seen by the whole group: never a substitute for paging a person
(the ladder does that), and never a resident's words or anyone's phone number, only the place,
the category, the case number and a link to the case in the console. The messages are outbox
rows like any other (written in the deciding transaction, sent after it), paced per robot by
`pacing`: at most 20 a minute, the rest bundled into one.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from dispatch import outbox, words
from dispatch.community import settings
from dispatch.models import Case, Channel

#: Group messages name their place so the outbox can find its robot: robot:<place code>.
PREFIX = "robot:"


def robot_for(case: Case, address: str) -> dict[str, str]:
    """The robot a group message goes to, from the case's community file (empty: removed)."""
    place = address.removeprefix(PREFIX)
    return next((dict(robot) for robot in case.community.settings.get("robots", [])
                 if robot.get("place") == place), {})


def post(case: Case, event: str, title: str, line: str, now: datetime) -> None:
    """Queue `title` and `line` for the groups above the case's place, once per `event`."""
    robots = case.community.settings.get("robots") or []
    if not robots:
        return
    above = {place.code for place in case.place.lineage()}
    found = settings.category(case.community, case.category)
    link = f"{current_app.config['PUBLIC_BASE_URL']}/staff/cases/{case.id}"
    text = (f"### {title}\n{case.place.label} · {found.name if found else case.category}"
            f"（{words.URGENCY_NAMES.get(case.urgency, '')}，{case.number}）\n{line}\n"
            f"[在控制台查看]({link})")
    drafts = [outbox.Draft(None, None, outbox.Purpose.GROUP, text,
                           dedupe_key=f"group:c{case.id}:{event}:{robot['place']}",
                           address=PREFIX + str(robot["place"]), channel=Channel.ROBOT)
              for robot in robots if robot.get("place") in above]
    outbox.add_all(case, drafts, now=now)
