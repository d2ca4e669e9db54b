"""Sending the outbox: every message is a row written in the transaction that decided it.

A row moves pending → sending → sent (with the provider's id) → delivered or failed. `send()`
is the one function that sends a row, whether an RQ worker, the embedded runner or the sweeper
calls it:

- it **claims** the row with one conditional update (pending and due → sending), committed
  before the provider is called, so two callers can never both send it;
- it checks the stop conditions again right before sending (an alert for a case someone has
  meanwhile accepted is cancelled, not sent);
- it calls the channel holding no row lock (the claim is already committed) and stores the
  provider's id at once; a row with a provider id is never sent again;
- a retryable failure goes back to pending with a growing delay (`next_attempt_at`).

A process killed between the claim and storing the provider's id leaves the row "sending".
`recover_interrupted()` (run by the sweeper) hands such rows back after `SENDING_TIMEOUT`,
longer than any provider call may take, marked `interrupted`: the provider may or may not have
the message, so a sender that can ask (Twilio SMS) looks it up first, as after a timeout, and
adopts its id; with the others the recipient may get it twice — at most once more per
interruption — and the timeline says so.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import aliased, joinedload

from dispatch import channels, clock, jobs, words
from dispatch.case import lifecycle
from dispatch.case.timeline import EventKind, record
from dispatch.channels import Sender, SendResult
from dispatch.channels.base import INTERRUPTED, OutgoingMessage
from dispatch.db import UTCDateTime, db
from dispatch.models import EarlyReceipt, Notification, NotificationStatus
from dispatch.outbox import Purpose, pacing, texts

MAX_ATTEMPTS = 5
#: Waits before the 2nd, 3rd… attempt after a retryable failure.
BACKOFF = (timedelta(seconds=10), timedelta(seconds=30), timedelta(seconds=90),
           timedelta(seconds=270))
#: A row still "sending" after this long belongs to a process that died mid-send.
SENDING_TIMEOUT = timedelta(minutes=2)

def send(notification_id: int, now: datetime | None = None) -> NotificationStatus | None:
    """Send one outbox row if it is pending and due; returns its new status, None if not ours."""
    now = now or clock.now()
    if not _claim(notification_id, now):
        return None
    notification = db.session.scalars(_claimed(), {"row": notification_id}).one()
    # Whether this may be the case's first alert out (a case, once notified, stays so).
    first = (notification.purpose == Purpose.ALERT and notification.case is not None
             and notification.case.first_notified_at is None)
    stale = lifecycle.why_stale(notification.purpose, notification.case,
                                notification.member_id)
    if stale:
        notification.status = NotificationStatus.CANCELLED
        notification.last_error = stale
        notification.updated_at = now
        db.session.commit()
        return notification.status
    # From the claim's commit on, the row is this sender's alone ("sending"), so what the
    # session holds of it stays true across the commits below: reading it all again after
    # each one would cost a SELECT per commit, on every message.
    session = db.session()
    expiring, session.expire_on_commit = session.expire_on_commit, False
    try:
        held = pacing.before_send(notification, now)
        if held is not None:
            return held
        sender: Sender = channels.sender_for(notification.channel)
        message = _commit_before_sending(notification, sender, now)
        result = _deliver(sender, message)
        status = _store(notification, result, now, first=first)
        pacing.after_send(notification, status, now)
    finally:
        session.expire_on_commit = expiring
        pacing.forget_riders(notification_id)
    return status


def _claim(notification_id: int, now: datetime) -> bool:
    """pending and due → sending, in one statement: only one caller can win.

    The claim is committed with the pacing decisions (`pacing.before_send`), before the
    provider is called; a row someone else is claiming is skipped, not waited for.
    """
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as
    # returning the general Result whatever the statement.
    result = cast(sa.CursorResult[Any], db.session.execute(
        _claiming(), {"row": notification_id, "now": now}))
    if result.rowcount != 1:
        db.session.rollback()
        return False
    return True


@functools.cache
def _claiming() -> sa.Update:
    """The claim's statement, built once per process: every message runs it, and building it
    costs more than running it. Parameters: `row`, `now`."""
    now = sa.bindparam("now", type_=UTCDateTime())
    due = sa.or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now)
    claimable = (sa.select(Notification.id)
                 .where(Notification.id == sa.bindparam("row"),
                        Notification.status == NotificationStatus.PENDING, due)
                 .with_for_update(skip_locked=True))
    return (sa.update(Notification)
            .where(Notification.id.in_(claimable.scalar_subquery()))
            .values(status=NotificationStatus.SENDING, attempts=Notification.attempts + 1,
                    updated_at=now)
            .execution_options(synchronize_session=False))


@functools.cache
def _claimed() -> sa.Select[Notification]:
    """The row as claimed, its case (where the stop conditions are) and its contact (the
    message reads it), in one statement built once per process. Parameter: `row`."""
    return (sa.select(Notification).where(Notification.id == sa.bindparam("row"))
            .options(joinedload(Notification.case), joinedload(Notification.contact))
            .execution_options(populate_existing=True))


def _commit_before_sending(notification: Notification, sender: Sender, now: datetime
                           ) -> OutgoingMessage:
    """Commit the claim and pacing's decisions, and compose the message; a sender that looks
    messages up has the text kept on the row (`sent_text`) committed too, before it is called:
    should this process die mid-send, the row's recovery looks for exactly that text.

    The text goes in the claim's own commit only when that transaction writes the row again
    anyway (its reply code): a second UPDATE of a row this transaction already changed makes
    PostgreSQL check the row's foreign keys (FOR KEY SHARE on its case and contact). Before
    the lifecycle locked cases FOR NO KEY UPDATE that lock waited on an acceptance holding the
    case, while the acceptance waited on this row: a deadlock (`test_an_acceptance_while_a_
    message_of_the_case_is_being_claimed…`). Other senders still commit the claim first, as
    they always did, and the text after it (a sender that looks up) or with the provider's
    answer (the others), and take no such lock.
    """
    first_attempt = notification.sent_text is None
    if db.session.is_modified(notification):
        message = _compose(notification, sender, now)
        db.session.commit()
        return message
    db.session.commit()
    message = _compose(notification, sender, now)
    if first_attempt and getattr(sender, "looks_up", False):
        db.session.commit()
    return message


def _compose(notification: Notification, sender: Sender, now: datetime) -> OutgoingMessage:
    """The message as `sender` gets it; a first attempt's text is set on the row
    (`sent_text`): a sender that looks up an uncertain send recognises it by that text (a
    bundle's signed link differs each time), and a retry resends it unchanged.

    Composing reads (riders, the case, the contact) without flushing: what is pending is
    flushed by the commit that follows, together."""
    with db.session.no_autoflush:
        return dataclasses.replace(texts.message_for(notification, sender), at=now)


def _deliver(sender: Sender, message: OutgoingMessage) -> SendResult:
    """Hand the composed message to its channel, holding no row lock (everything before it
    is committed); an exception is a retryable failure, not a crash."""
    # Nothing is flushed on the way either: an UPDATE here would hold the row's lock for as
    # long as the provider takes, and a sender that dies mid-send would leave its row locked
    # (skipped by the sweeper's SKIP LOCKED) until PostgreSQL notices the connection is gone.
    try:
        with db.session.no_autoflush:
            return sender.send(message)
    except Exception as exc:  # a provider SDK may raise anything; the row must not stay stuck
        return SendResult.failed("exception", f"{type(exc).__name__}: {exc}", retryable=True)


def _store(notification: Notification, result: SendResult, now: datetime, *, first: bool
           ) -> NotificationStatus:
    """Record the provider's answer (commits) and return the row's new status; the `first`
    alert sent is the case's first-notified time."""
    notification.updated_at = now
    if result.ok:
        if first:
            # The case row first, as every other writer does, so two writers never deadlock:
            # the row's own changes (its text, too) are flushed after it, in one UPDATE.
            assert notification.case_id is not None  # `first` says it has a case
            with db.session.no_autoflush:
                lifecycle.first_notified(notification.case_id, now)
        notification.status = NotificationStatus.SENT
        notification.provider_id = result.provider_id
        notification.follow_up = result.follow_up
        notification.sent_at = now
        notification.error_code = None
        if db.session.scalar(sa.select(EarlyReceipt.id)
                             .where(EarlyReceipt.provider_id == result.provider_id).limit(1)):
            # Its receipts came while the provider's answer was lost (a look-up found it).
            jobs.enqueue_after_commit(jobs.Job.EARLY_RECEIPTS, result.provider_id)
        db.session.commit()
        return NotificationStatus.SENT
    notification.error_code = result.error_code
    notification.last_error = result.error
    who = f"{words.channel(notification.channel)}（发给"
    who += f"{notification.member.name if notification.member else '居民'}）"
    if result.retryable and notification.attempts < MAX_ATTEMPTS:
        wait = BACKOFF[min(notification.attempts, len(BACKOFF)) - 1]
        notification.status = NotificationStatus.PENDING
        notification.next_attempt_at = now + wait
        message = f"{who}发送失败（{result.error_code}），{int(wait.total_seconds())} 秒后重试"
        jobs.enqueue_after_commit(jobs.Job.SEND, notification.id,
                                  at=notification.next_attempt_at,
                                  job_id=jobs.send_job_id(notification.id, notification.attempts))
    else:
        notification.status = NotificationStatus.FAILED
        message = f"{who}发送失败（{result.error_code}），不再重试"
    status = notification.status
    if notification.case is not None:
        record(notification.case, EventKind.SEND_FAILED, message, at=now,
               member_id=notification.member_id, notification=notification.id,
               error_code=result.error_code, attempts=notification.attempts)
    db.session.commit()
    return status


def recover_interrupted(now: datetime | None = None, limit: int = 100) -> list[int]:
    """Hand rows stuck in "sending" back to pending, noting the possible duplicate; returns ids.

    Rows are claimed with FOR UPDATE SKIP LOCKED, so two sweepers never take the same row.
    """
    now = now or clock.now()
    rows = list(db.session.scalars(
        sa.select(Notification)
        .where(Notification.status == NotificationStatus.SENDING,
               Notification.updated_at < now - SENDING_TIMEOUT,
               ~_riding_in_live_carrier())
        .order_by(Notification.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)))
    recovered: list[int] = []
    for notification in rows:
        notification.updated_at = now
        if notification.provider_id is not None:
            notification.status = NotificationStatus.SENT  # the provider has it: never again
            continue
        notification.status = NotificationStatus.PENDING
        notification.next_attempt_at = None
        # As after a timeout: a sender that can ask its provider looks the message up before
        # sending it again (`channels.base.UNCERTAIN`).
        notification.error_code = INTERRUPTED
        recovered.append(notification.id)
        if notification.case is not None:
            name = notification.member.name if notification.member else "—"
            record(notification.case, EventKind.RESENT,
                   f"发给{name}的{words.channel(notification.channel)}在发送途中中断"
                   f"（处理进程退出），重新发送：对方可能收到两条", at=now,
                   member_id=notification.member_id, notification=notification.id,
                   attempts=notification.attempts)
    db.session.commit()
    return recovered


def _riding_in_live_carrier() -> sa.ColumnElement[bool]:
    """The row is bundled into a message whose carrier is still pending or sending.

    Such a row is settled with its carrier (it adopts the carrier's provider id, or is freed if
    the carrier fails for good); sending it alone could duplicate a bundle that went out.
    """
    carrier = aliased(Notification)
    return sa.exists().where(
        carrier.id == Notification.bundled_into_id,
        carrier.status.in_((NotificationStatus.PENDING, NotificationStatus.SENDING)))


def due(now: datetime | None = None, *, grace: timedelta = timedelta(0),
        limit: int = 500) -> list[tuple[int, list[str]]]:
    """Pending rows whose send is overdue by more than `grace` (their job was lost or failed,
    or is still waiting in a queue), each with the ids its send job may be queued under."""
    now = now or clock.now()
    cutoff = now - grace
    rows = db.session.execute(
        sa.select(Notification.id, Notification.attempts, Notification.next_attempt_at)
        .where(Notification.status == NotificationStatus.PENDING,
               sa.func.coalesce(Notification.next_attempt_at, Notification.created_at) <= cutoff)
        .order_by(Notification.id)
        .limit(limit)).all()
    return [(row_id, [jobs.send_job_id(row_id, attempts),
                      *([jobs.held_job_id(row_id, until)] if until is not None else [])])
            for row_id, attempts, until in rows]
