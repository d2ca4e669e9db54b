"""What staff may do to a case that the dispatch engine does not: note, close, merge.

Each change follows the case model's rules (see `dispatch.models.Case`): closing frees the
open key so the next report opens a fresh case, bumps the fencing token so every queued
ladder step dies, clears `next_step_at` so the sweeper stops looking, cancels messages not yet
handed to a provider, and writes a line on the timeline. The caller commits, together with
the audit log entry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dispatch import clock
from dispatch.cases import EventKind, record
from dispatch.db import db
from dispatch.models import (
    Case,
    CaseStatus,
    Member,
    Notification,
    NotificationStatus,
    Resolution,
    StaffUser,
)

RUNG_NAMES = {1: "楼栋", 2: "网格", 3: "社区", 4: "街道/区"}
STATUS_NAMES = {CaseStatus.OPEN: "待接单", CaseStatus.ACCEPTED: "已接单",
                CaseStatus.ON_SITE: "已到场", CaseStatus.RESOLVED: "待回访",
                CaseStatus.CLOSED: "已办结"}
RESOLUTION_NAMES = {Resolution.FIXED: "已解决", Resolution.NOT_FIXED: "未解决",
                    Resolution.DUPLICATE: "重复", Resolution.REFERRED: "已转办"}


class CaseActionError(Exception):
    """The action does not apply to the case as it is now; the message says why."""


def overdue(case: Case, now: datetime) -> str | None:
    """Why an open case is overdue, or None: the board lists these first.

    Not accepted within the first rung's time (`rung_minutes` of its policy snapshot), not on
    site within `on_site_minutes` of acceptance, or declared stuck by the ladder.
    """
    if case.stuck_at is not None and case.accepted_at is None:
        return "无人接单"
    minutes = case.policy.get("rung_minutes")
    if case.accepted_at is None:
        if minutes is not None and now - case.reported_at > timedelta(minutes=minutes):
            return "超时未接单"
        return None
    site = case.policy.get("on_site_minutes")
    if (case.status == CaseStatus.ACCEPTED and site is not None
            and now - case.accepted_at > timedelta(minutes=site)):
        return "超时未到场"
    return None


def board_order(cases: list[Case], now: datetime) -> list[Case]:
    """Overdue cases first, then the rest; oldest first within each."""
    return sorted(cases, key=lambda c: (overdue(c, now) is None, c.reported_at, c.id))


def add_note(case: Case, staff: StaffUser, text: str, *, now: datetime | None = None) -> None:
    """Write a staff note on the timeline (staff only: never shown to residents)."""
    text = text.strip()
    if not text:
        raise CaseActionError("备注不能为空 / A note needs some text")
    record(case, EventKind.NOTE, text[:2000], at=now or clock.now(), staff_id=staff.id)


def close(case: Case, staff: StaffUser, *, fixed: bool, note: str = "",
          now: datetime | None = None) -> None:
    """Close the case as fixed or, honestly, as not fixed.

    Closing as fixed also marks it resolved if nobody had, so its time to resolve counts.
    The rung it closed at is the rung that accepted it, else where the ladder stood.
    """
    if case.status == CaseStatus.CLOSED:
        raise CaseActionError("案件已办结 / The case is already closed")
    now = now or clock.now()
    if fixed and case.resolved_at is None:
        case.resolved_at = now
    _finish(case, Resolution.FIXED if fixed else Resolution.NOT_FIXED, now)
    words = "已解决" if fixed else "未解决"
    why = f"：{note.strip()}" if note.strip() else ""
    record(case, EventKind.CLOSED, f"工作人员办结（{words}）{why}", at=now, staff_id=staff.id,
           fixed=fixed, public="已办结", public_en="Closed")


def merge(duplicate: Case, into: Case, staff: StaffUser, *, now: datetime | None = None) -> None:
    """Close `duplicate` as a duplicate of `into`; its reports count on `into` from now on.

    The reports stay on the duplicate (the record of what each resident said is never
    rewritten); `into` counts them and its page lists them.
    """
    if duplicate.id == into.id:
        raise CaseActionError("不能合并到自身 / A case cannot be merged into itself")
    if duplicate.community_id != into.community_id:
        raise CaseActionError("不是同一社区的案件 / Not a case of this community")
    if duplicate.status == CaseStatus.CLOSED:
        raise CaseActionError("案件已办结 / The case is already closed")
    if into.resolution == Resolution.DUPLICATE:
        raise CaseActionError(f"{into.number} 本身是重复案件 / That case is itself a duplicate")
    now = now or clock.now()
    _finish(duplicate, Resolution.DUPLICATE, now)
    duplicate.merged_into_id = into.id
    into.report_count += duplicate.report_count
    record(duplicate, EventKind.MERGED, f"与 {into.number} 重复，已合并", at=now,
           staff_id=staff.id, into=into.id,
           public=f"与正在处理的 {into.number} 是同一问题，已合并",
           public_en=f"The same problem as case {into.number}; merged into it")
    record(into, EventKind.MERGED,
           f"合并重复案件 {duplicate.number}（{duplicate.report_count} 人次）", at=now,
           staff_id=staff.id, merged=duplicate.id)


def reassign(case: Case, to: Member, staff: StaffUser, *, now: datetime | None = None) -> None:
    """Give the case to `to`. Commits.

    An accepted case is handed over through the engine's `hand_over` (the acceptor named as
    the giver). A case nobody has taken yet is assigned: `to` becomes its acceptor on the
    staff member's authority, the ladder stops for everyone, and `to` is told it is theirs.
    Either way a staff note written first, in the same transaction, says who decided.
    """
    from dispatch import escalation

    if not case.is_open:
        raise CaseActionError("案件已解决或已办结 / The case is resolved or closed")
    now = now or clock.now()
    record(case, EventKind.NOTE, f"工作人员{staff.name}改派给{to.name}", at=now,
           staff_id=staff.id, to_member=to.id)
    if case.accepted_by_id is not None:
        _engine_call(escalation.hand_over, case.id, case.accepted_by_id, to.id, now)
        return
    _tell_assigned(case, to, staff, now)
    _engine_call(escalation.accept, case.id, to.id, now)


def _tell_assigned(case: Case, to: Member, staff: StaffUser, now: datetime) -> None:
    """Queue the message telling `to` that staff gave them the case (sent after commit)."""
    from dispatch import links, outbox
    from dispatch.roster import duty

    contact = duty.working_contact(to)
    if contact is None:
        record(case, EventKind.SKIPPED, f"{to.name}没有可用的联系方式，未能通知改派", at=now,
               member_id=to.id)
        return
    link = links.url(links.Purpose.CASE, to.id, case.id)
    outbox.add(case, to, contact, "assigned",
               f"【邻里】工作人员{staff.name}把{case.place.full_name}的事项"
               f"（{case.number}）指派给您，请尽快处理：{link}",
               dedupe_key=f"assigned:{case.id}:{to.id}:{case.token}", now=now)


def refer_up(case: Case, staff: StaffUser, *, now: datetime | None = None) -> None:
    """Send the case up one rung now, through the engine, which names the staff member. Commits.

    An accepted case goes back on the ladder one rung up, as when its acceptor escalates.
    """
    from dispatch import escalation

    if not case.is_open:
        raise CaseActionError("案件已解决或已办结 / The case is resolved or closed")
    now = now or clock.now()
    record(case, EventKind.NOTE, f"工作人员{staff.name}要求立即上报上一级", at=now,
           staff_id=staff.id)
    _engine_call(escalation.escalate_for_staff, case.id, staff.name, now)


def _engine_call(action: Any, *args: Any) -> None:
    """Run an engine action (it commits), turning its refusal into a `CaseActionError`."""
    from dispatch import escalation

    try:
        action(*args)
    except escalation.ActionRefused as exc:
        db.session.rollback()
        raise CaseActionError(str(exc)) from None


def _finish(case: Case, resolution: Resolution, now: datetime) -> None:
    """Take the case off its ladder for good."""
    case.status = CaseStatus.CLOSED
    case.resolution = resolution
    case.closed_at = now
    case.closed_rung = case.closed_rung or case.accepted_rung or case.rung
    case.open_key = None
    case.token += 1
    case.next_step_at = None
    db.session.execute(
        sa.update(Notification)
        .where(Notification.case_id == case.id,
               Notification.status == NotificationStatus.PENDING,
               Notification.provider_id.is_(None))
        .values(status=NotificationStatus.CANCELLED, updated_at=now))
