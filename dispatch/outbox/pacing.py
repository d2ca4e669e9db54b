"""Pacing per recipient: at most one message a minute per phone, five alert SMS per quarter hour,
and alerts that pile up for one phone go out together as one SMS listing them.

This is the outbox's gate, called by `dispatch.outbox.delivery.send` on a claimed row right
before the provider is called (`before_send`), and right after its answer is stored
(`after_send`):

- **hold**: a row that would break a limit goes back to pending, due when the limit allows,
  without counting as an attempt;
- **bundle**: when an alert SMS goes out, the other alerts pending for the same phone are
  claimed with it (`bundled_into_id` names the carrier row) and listed in its text; GoAlert's
  scheme, since a burst of reports about one building should not buzz a volunteer six times;
- **reply codes** are given here, under the same lock (see `dispatch.outbox.replies`).

The provider id rule still holds: bundled rows take the carrier's message id once it has one,
so a receipt moves them all, and a bundled row found later with a carrier that already has an
id adopts it instead of being sent again (the process may have died in between).
Concurrent senders for one phone serialise on a row lock of its contacts; a row in flight with
a lower id makes a later one wait its minute.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from dispatch import channels, jobs
from dispatch.case import lifecycle
from dispatch.channels.base import UNCERTAIN
from dispatch.db import UTCDateTime, db
from dispatch.models import Case, CaseStatus, Channel, Contact, Notification, NotificationStatus
from dispatch.outbox import Purpose, fallback, replies

#: Channels that ring or buzz a phone, when their sender says it is `paced` (real providers;
#: the console sender is not, so the demo and the engine's tests see every message at once).
PACED = (Channel.SMS, Channel.VOICE)
CONTACT_GAP = timedelta(minutes=1)
ALERT_LIMIT = 5
ALERT_WINDOW = timedelta(minutes=15)
#: At most this many cases in one bundled SMS (the rest wait for the next one).
BUNDLE_MAX = 6
#: A work group's robot takes at most this many messages a rolling window; more wait, and go
#: out together, up to `GROUP_BUNDLE_MAX` in one message.
GROUP_LIMIT, GROUP_WINDOW, GROUP_BUNDLE_MAX = 20, timedelta(minutes=1), 10
#: `session.info` key: the rows riding in each message being sent (see `bundled`).
_RIDERS = "linli.riders"


def limits() -> tuple[timedelta, int, timedelta]:
    """(gap per phone, alert SMS allowed, per window), overridable in the app config."""
    config = current_app.config
    return (timedelta(seconds=float(config.get("THROTTLE_GAP_SECONDS",
                                               CONTACT_GAP.total_seconds()))),
            int(config.get("THROTTLE_ALERTS", ALERT_LIMIT)),
            timedelta(seconds=float(config.get("THROTTLE_ALERT_WINDOW_SECONDS",
                                               ALERT_WINDOW.total_seconds()))))


def before_send(notification: Notification, now: datetime) -> NotificationStatus | None:
    """Prepare a claimed row for sending; a status instead when it must not be sent now.

    A status means it was settled here (held, or adopted from its carrier) and committed.
    None means it goes out: the claim and these decisions are left uncommitted, for the
    sender to commit with the text it composes from them (`delivery.send`), in one commit
    before the provider is called.
    """
    if notification.bundled_into_id is not None:
        carrier = db.session.get(Notification, notification.bundled_into_id)
        if carrier is not None and carrier.provider_id is not None:
            _adopt(notification, carrier, now)
            db.session.commit()
            return notification.status
        notification.bundled_into_id = None  # the carrier did not make it: go on alone
    if notification.channel == Channel.ROBOT:
        return _pace_group(notification, now)
    sender = channels.sender_for(notification.channel)
    # A push subscription's code is asked for on the phone's own screen and is useless once
    # late; it is neither held nor counted (`_pacing`), so an alert never waits behind it.
    if notification.channel not in PACED or not getattr(sender, "paced", False) \
            or notification.purpose == Purpose.PUSH_CODE:
        _keep_riders(notification, bundled_now=False)
        return None
    _lock_phone(notification.to_address)
    hold = hold_until(notification, now)
    if hold is not None:
        _hold(notification, hold, now)
        db.session.commit()
        return notification.status
    took = (notification.channel == Channel.SMS and notification.purpose == Purpose.ALERT
            and notification.sent_text is None  # a retry resends its first bundle unchanged
            and _bundle(notification, now))
    riders = _keep_riders(notification, bundled_now=took)
    if notification.channel == Channel.SMS and getattr(sender, "two_way", False):
        for row in [notification, *riders]:
            replies.assign_code(row)
    return None


def _pace_group(notification: Notification, now: datetime) -> NotificationStatus | None:
    """A group robot's message: held while its robot had `GROUP_LIMIT` messages in the last
    `GROUP_WINDOW` (committed), else sent with the group's other waiting messages riding in
    it (left for the sender to commit, as `before_send` says)."""
    oldest = db.session.scalar(
        sa.select(Notification.sent_at)
        .where(Notification.to_address == notification.to_address,
               Notification.channel == Channel.ROBOT, Notification.bundled_into_id.is_(None),
               Notification.sent_at > now - GROUP_WINDOW)
        .order_by(Notification.sent_at.desc()).offset(GROUP_LIMIT - 1).limit(1))
    if oldest is not None:
        _hold(notification, oldest + GROUP_WINDOW, now)
        db.session.commit()
        return notification.status
    # A retry resends its first bundle unchanged: only a first attempt takes riders.
    riders = [] if notification.sent_text is not None else list(db.session.scalars(
        sa.select(Notification.id)
        .where(Notification.to_address == notification.to_address,
               Notification.channel == Channel.ROBOT,
               Notification.status == NotificationStatus.PENDING,
               Notification.sent_text.is_(None), Notification.id != notification.id)
        .order_by(Notification.id).limit(GROUP_BUNDLE_MAX - 1)
        .with_for_update(skip_locked=True)))
    if riders:
        db.session.execute(
            sa.update(Notification)
            .where(Notification.id.in_(riders),
                   Notification.status == NotificationStatus.PENDING)
            .values(status=NotificationStatus.SENDING, bundled_into_id=notification.id,
                    updated_at=now)
            .execution_options(synchronize_session=False))
    _keep_riders(notification, bundled_now=bool(riders))
    return None


def _keep_riders(notification: Notification, *, bundled_now: bool) -> list[Notification]:
    """Find the rows riding in this one's message and keep them for the rest of its send.

    Riders come only from this attempt's bundle or from an earlier attempt of the row, so a
    first attempt that bundled nothing has none, without asking the database.
    """
    riders = _riders(notification.id) if bundled_now or notification.attempts > 1 else []
    db.session.info.setdefault(_RIDERS, {})[notification.id] = riders
    return riders


def after_send(notification: Notification, status: NotificationStatus, now: datetime) -> None:
    """Settle the rows bundled into this one, and react if it failed for good (commits).

    `status` is what the send made of the row, just committed: a row sent alone needs
    nothing more, and is not even read again.
    """
    companions = bundled(notification)
    if not companions and status != NotificationStatus.FAILED:
        return
    if notification.provider_id is not None:
        for row in companions:
            _adopt(row, notification, now)
    elif (notification.status == NotificationStatus.PENDING
          and notification.error_code in UNCERTAIN):
        # The provider may have the bundle already: its rows stay in it, and the carrier's
        # retry (same text) either finds that message or sends the same list once.
        for row in companions:
            row.updated_at = now
    else:
        for row in companions:
            row.status = NotificationStatus.PENDING
            row.bundled_into_id = None
            row.next_attempt_at = notification.next_attempt_at
            row.updated_at = now
    if notification.status == NotificationStatus.FAILED:
        fallback.after_failure(notification, now)
    db.session.commit()


def bundled(notification: Notification) -> list[Notification]:
    """The rows riding in this one's message, oldest first.

    While the row is being sent they are the ones `before_send` found, kept for the session
    (in `session.info`), so the sender's text and `after_send` need not look them up again:
    a rider cannot leave a carrier that is still "sending".
    """
    key = sa.inspect(notification).identity  # without reloading a row expired by a commit
    if key is None:
        return []
    known = db.session.info.get(_RIDERS, {}).get(key[0])
    return list(known) if known is not None else _riders(key[0])


def forget_riders(notification_id: int) -> None:
    """Drop the riders `before_send` kept for this row: its send is over, one way or another."""
    db.session.info.get(_RIDERS, {}).pop(notification_id, None)


def _riders(carrier_id: int) -> list[Notification]:
    return list(db.session.scalars(
        sa.select(Notification)
        .where(Notification.bundled_into_id == carrier_id,
               Notification.status == NotificationStatus.SENDING)
        .order_by(Notification.id)
        .execution_options(populate_existing=True)))


def hold_until(notification: Notification, now: datetime) -> datetime | None:
    """When this row may go out, if not now: the per-phone gap and the alert SMS quota."""
    gap, allowed, window = limits()
    quota = notification.channel == Channel.SMS and notification.purpose == Purpose.ALERT
    flying, last_sent, counted = db.session.execute(_pacing(quota), {
        "phone": notification.to_address, "row": notification.id, "since": now - window,
        "skip": max(allowed - 1, 0)}).one()
    if flying and gap:  # no gap (pacing off): a row in flight is no reason to wait
        return now + gap
    if last_sent is not None and now - last_sent < gap:
        return last_sent + gap
    if counted is not None:
        return counted + window
    return None


@functools.cache
def _pacing(quota: bool) -> sa.Select[int, datetime | None, datetime | None]:
    """What `hold_until` needs to know about a phone, in one statement built once per process
    (it runs for every paced message, and building it costs more than running it):

    - how many rows for the phone older than this one are being sent alone right now;
    - when the phone was last sent anything;
    - with `quota`: the oldest of its last `skip` + 1 alert SMS since `since` (one per provider
      message: a bundle is one SMS), or NULL if it had fewer.
    """
    same_phone = (Notification.to_address == sa.bindparam("phone"),
                  Notification.channel.in_(PACED), Notification.purpose != Purpose.PUSH_CODE)
    in_flight = (sa.select(sa.func.count(Notification.id))
                 .where(*same_phone, Notification.status == NotificationStatus.SENDING,
                        Notification.bundled_into_id.is_(None),
                        Notification.id < sa.bindparam("row")))
    last = sa.select(sa.func.max(Notification.sent_at)).where(
        *same_phone, Notification.sent_at.is_not(None))
    first = sa.func.min(Notification.sent_at)
    oldest_counted = (sa.select(first)
                      .where(Notification.to_address == sa.bindparam("phone"),
                             Notification.channel == Channel.SMS,
                             Notification.purpose == Purpose.ALERT,
                             Notification.sent_at > sa.bindparam("since", type_=UTCDateTime()),
                             Notification.provider_id.is_not(None))
                      .group_by(Notification.provider_id)
                      .order_by(first.desc())
                      .offset(sa.bindparam("skip")).limit(1))
    return sa.select(in_flight.scalar_subquery(), last.scalar_subquery(),
                     oldest_counted.scalar_subquery() if quota else sa.null())


def _lock_phone(phone: str) -> None:
    db.session.execute(sa.select(Contact.id).where(Contact.address == phone)
                       .order_by(Contact.id).with_for_update())


def _hold(notification: Notification, until: datetime, now: datetime) -> None:
    """Back to pending until `until`; the claim's attempt does not count."""
    notification.status = NotificationStatus.PENDING
    notification.attempts = max(notification.attempts - 1, 0)
    notification.next_attempt_at = until
    notification.updated_at = now
    jobs.enqueue_after_commit(jobs.Job.SEND, notification.id, at=until,
                              job_id=jobs.held_job_id(notification.id, until))


def _bundle(carrier: Notification, now: datetime) -> bool:
    """Claim the other alerts pending for this phone into the carrier's SMS; whether any."""
    ids = list(db.session.scalars(_waiting(), {"phone": carrier.to_address,
                                               "carrier": carrier.id}))
    if not ids:
        return False
    db.session.execute(
        sa.update(Notification)
        .where(Notification.id.in_(ids), Notification.status == NotificationStatus.PENDING)
        .values(status=NotificationStatus.SENDING, bundled_into_id=carrier.id, updated_at=now)
        .execution_options(synchronize_session=False))
    return True


@functools.cache
def _waiting() -> sa.Select[int]:
    """The other alerts pending for `phone` that can ride with `carrier`, locked; built once
    per process (it runs for every alert SMS)."""
    return (sa.select(Notification.id)
            .join(Case, Case.id == Notification.case_id)
            .where(Notification.to_address == sa.bindparam("phone"),
                   Notification.channel == Channel.SMS,
                   Notification.purpose == Purpose.ALERT,
                   Notification.status == NotificationStatus.PENDING,
                   # a row awaiting a retry after an uncertain failure is resent alone, as
                   # it was (its own text and riders): the provider may already have it
                   Notification.sent_text.is_(None),
                   # an alert rides only while it is wanted (`lifecycle.why_stale`)
                   Notification.id != sa.bindparam("carrier"), Case.status == CaseStatus.OPEN)
            .order_by(Notification.id)
            .limit(BUNDLE_MAX - 1)
            .with_for_update(of=Notification, skip_locked=True))


def _adopt(row: Notification, carrier: Notification, now: datetime) -> None:
    """The row went out inside the carrier's message: it shares its provider id and state."""
    row.provider_id = carrier.provider_id
    row.status = carrier.status
    row.sent_at = carrier.sent_at or now
    row.delivered_at = carrier.delivered_at
    row.error_code = None
    row.updated_at = now
    if row.case_id is not None and row.purpose == Purpose.ALERT:
        lifecycle.first_notified(row.case_id, row.sent_at)
