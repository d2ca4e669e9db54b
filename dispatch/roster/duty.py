"""Who is on duty at an instant: the one place that decides it.

`on_duty()` is asked each time a ladder step fires, never when a case opens, because rosters,
leave and do-not-disturb change in between. It is a pure function of the members (with their
shifts, overrides and contacts loaded) and a clock, so it is tested without a database.

The rules, in the order they are applied to each member, all in the community's local time:

1. An inactive member is skipped.
2. A dated override wins over everything below. `leave`: skipped, and the stand-in named on the
   override (if any) is asked in the member's place, whatever the stand-in's own shifts or
   do-not-disturb hours say. `on_duty`: on duty.
3. A member with weekly shifts is on duty only inside one of them. A shift whose end is at or
   before its start runs past midnight into the next day; 00:00–00:00 (a file's 00:00–24:00)
   is the whole day. Being rostered is consent to be called, so a shift beats do-not-disturb.
4. A member without shifts is available at any hour, except inside their do-not-disturb hours
   (which may wrap past midnight; equal start and end mean the whole day). **Urgent cases break
   do-not-disturb** (elevator entrapment, a safety hazard, an elderly neighbour in trouble): a
   neighbour one floor away is the fastest help there is, the categories marked urgent are few,
   and like PagerDuty's high-urgency rule an emergency is worth waking someone for. Normal and
   low cases respect it; the ladder moves on to the next rung (whose duty desk has night shifts).
5. Whoever is left needs a working contact (status `ok`), chosen by the member's own channel
   order; without one they are skipped, and the reason tells staff to fix the contact.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from dispatch import clock, words
from dispatch.models import Contact, ContactStatus, DutyOverride, Member, OverrideKind, Shift


@dataclass(frozen=True, slots=True)
class Duty:
    """One member's answer at an instant: reachable through `contact`, or skipped, and why."""

    member: Member
    contact: Contact | None
    #: Staff-facing, in Chinese: "在班 08:30–17:30", "免打扰时段 22:00–07:00"…
    reason: str
    #: Set when this member stands in for a colleague on leave.
    covering_for: Member | None = None

    @property
    def reachable(self) -> bool:
        return self.contact is not None

    def __repr__(self) -> str:
        state = "reachable" if self.reachable else "skipped"
        return f"<Duty {self.member.code} {state}: {self.reason}>"


def on_duty(members: Sequence[Member], at: datetime, zone: str | ZoneInfo, *,
            urgent: bool = False) -> list[Duty]:
    """Decide, for each member in order, whether they can be asked at `at` (aware).

    A member on leave is followed by their stand-in. A member listed twice keeps their first
    answer, unless a later one reaches them where the first did not.
    """
    local = clock.local(at, zone)
    answers: dict[int, Duty] = {}
    order: list[int] = []
    for member in members:
        for duty in _evaluate(member, at, local, urgent):
            key = duty.member.id if duty.member.id is not None else id(duty.member)
            if key not in answers:
                order.append(key)
                answers[key] = duty
            elif duty.reachable and not answers[key].reachable:
                answers[key] = duty
    return [answers[key] for key in order]


def _evaluate(member: Member, at: datetime, local: datetime, urgent: bool) -> list[Duty]:
    """The member's own answer, followed by their stand-in's when they are on leave."""
    if not member.active:
        return [Duty(member, None, "已停用")]
    override = _override_at(member, at)
    if override is not None and override.kind == OverrideKind.LEAVE:
        stand_in = override.stand_in
        if stand_in is None:
            return [Duty(member, None, f"请假中{_note(override)}")]
        return [Duty(member, None, f"请假中{_note(override)}，由{stand_in.name}代班"),
                _standing_in(stand_in, member, at)]
    if override is not None:
        return [_with_contact(member, f"临时值班{_note(override)}")]
    if member.shifts:
        shift = next((s for s in member.shifts if in_shift(s, local)), None)
        if shift is None:
            return [Duty(member, None, f"不在班（{_roster(member.shifts)}）")]
        return [_with_contact(member, f"在班 {_span(shift.starts, shift.ends)}")]
    if member.dnd_start is not None and member.dnd_end is not None and _within(
            member.dnd_start, member.dnd_end, local.time()):
        span = _span(member.dnd_start, member.dnd_end)
        if not urgent:
            return [Duty(member, None, f"免打扰时段 {span}")]
        return [_with_contact(member, f"免打扰时段 {span}，紧急事项照常通知")]
    return [_with_contact(member, "随时可联系")]


def _standing_in(stand_in: Member, absent: Member, at: datetime) -> Duty:
    """A stand-in covers the whole leave window: their own shifts and quiet hours do not apply."""
    if not stand_in.active:
        return Duty(stand_in, None, f"代{absent.name}值班，但已停用", covering_for=absent)
    own = _override_at(stand_in, at)
    if own is not None and own.kind == OverrideKind.LEAVE:
        return Duty(stand_in, None, f"代{absent.name}值班，但本人也在请假", covering_for=absent)
    duty = _with_contact(stand_in, f"代{absent.name}值班")
    return Duty(duty.member, duty.contact, duty.reason, covering_for=absent)


def _with_contact(member: Member, reason: str) -> Duty:
    contact = working_contact(member)
    if contact is None:
        return Duty(member, None, f"{reason}，但没有可用的联系方式（请核对号码）")
    return Duty(member, contact, reason)


def working_contact(member: Member, *, skip: Collection[str] = (),
                    channels: Sequence[str] | None = None) -> Contact | None:
    """The contact to use, the one rule for it: the first working one in the member's channel
    order (or in `channels`, when the caller needs a phone that rings), then priority, leaving
    out channels in `skip` (already tried)."""
    preference = [str(c) for c in (channels if channels is not None
                                   else member.channel_order or [])]

    def rank(contact: Contact) -> tuple[int, int]:
        channel = str(contact.channel)
        return (preference.index(channel) if channel in preference else len(preference),
                contact.priority or 0)

    working = [c for c in member.contacts if c.status == ContactStatus.OK
               and str(c.channel) not in skip
               and (channels is None or str(c.channel) in preference)]
    return min(working, key=rank, default=None)


def _override_at(member: Member, at: datetime) -> DutyOverride | None:
    """The override in force at `at`; when several overlap, the one that started last wins."""
    current = [o for o in member.overrides if o.starts_at <= at < o.ends_at]
    return max(current, key=lambda o: o.starts_at, default=None)


def in_shift(shift: Shift, local: datetime) -> bool:
    """Whether the local time falls in the weekly shift, including its part after midnight."""
    day, moment = local.weekday(), local.time()
    if shift.starts < shift.ends:
        return shift.weekday == day and shift.starts <= moment < shift.ends
    return ((shift.weekday == day and moment >= shift.starts)
            or ((shift.weekday + 1) % 7 == day and moment < shift.ends))


def _within(start: time, end: time, moment: time) -> bool:
    """A daily window that may wrap past midnight; equal ends mean the whole day."""
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end


def _span(start: time, end: time) -> str:
    return f"{start:%H:%M}–{'24:00' if end == time(0) else f'{end:%H:%M}'}"


def _roster(shifts: Sequence[Shift]) -> str:
    parts = [f"{words.WEEKDAY_NAMES[s.weekday]} {_span(s.starts, s.ends)}"
             for s in sorted(shifts, key=lambda s: (s.weekday, s.starts))]
    return "值班时间：" + "、".join(parts[:3]) + ("等" if len(parts) > 3 else "")


def _note(override: DutyOverride) -> str:
    return f"（{override.note}）" if override.note else ""
