"""The 回访: the resident's answer after a case is resolved, which settles the case.

"Solved" and "partly solved" close the case as fixed (the answer itself keeps "partly" apart
for the 解决率); "not solved" reopens it, as Beijing's 12345 does. A case takes one answer per
resolution: once it is closed or reopened, the form is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from dispatch import cases, clock
from dispatch.cases import EventKind
from dispatch.db import db
from dispatch.models import Callback, Case, CaseStatus, Resolution, Solved

SOLVED_WORDS = {Solved.YES: "已解决", Solved.PARTLY: "部分解决", Solved.NO: "未解决"}


class NotAwaitingCallback(Exception):
    """The case is not resolved-and-waiting: it was answered already, or is still open."""


@dataclass(frozen=True, slots=True)
class Answered:
    """What a 回访 did: its row, and the case that now carries the problem.

    `follow` is the case itself, or, when "not solved" found another case already open for
    the same problem, that case (the complaint was added to it).
    """

    callback: Callback
    follow: Case
    reopened: bool

    @property
    def joined(self) -> bool:
        return self.follow.id != self.callback.case_id


def answer(case: Case, *, solved: Solved, contacted: bool | None = None,
           satisfaction: int | None = None, comment: str | None = None,
           now: datetime | None = None) -> Answered:
    """Record the resident's 回访 on a resolved case and close or reopen it. Commits."""
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise ValueError("satisfaction is 1 to 5")
    now = now or clock.now()
    locked = db.session.scalar(sa.select(Case).where(Case.id == case.id).with_for_update()
                               .execution_options(populate_existing=True))
    if locked is None or locked.status != CaseStatus.RESOLVED:
        raise NotAwaitingCallback
    case = locked
    callback = Callback(case_id=case.id, contacted=contacted, solved=solved,
                        satisfaction=satisfaction, comment=comment or None, at=now)
    db.session.add(callback)
    case.callback_at = now
    stars = f"，满意度 {satisfaction}" if satisfaction else ""
    cases.record(case, EventKind.CALLBACK, f"居民回访：{SOLVED_WORDS[solved]}{stars}", at=now,
                 solved=str(solved), satisfaction=satisfaction, contacted=contacted)
    if solved == Solved.NO:
        follow = cases.reopen(case, f"居民回访：未解决{'：' + comment if comment else ''}",
                              now=now)
        return Answered(callback, follow, reopened=follow.id == case.id)
    case.status = CaseStatus.CLOSED
    case.resolution = Resolution.FIXED
    case.closed_at = now
    case.closed_rung = case.closed_rung or case.accepted_rung or case.rung
    cases.record(case, EventKind.CLOSED, "回访后办结", at=now, public="已办结", public_en="Closed")
    db.session.commit()
    return Answered(callback, case, reopened=False)
