"""The sweeper: re-drives from the database whatever a lost job missed.

Redis may lose a queued job (a flush, a restart without persistence); the database never
loses the row that says the work is due. Every few seconds (`SWEEP_SECONDS`, at most 5) the
sweeper looks for due work:

- cases whose `next_step_at` has passed: their step;
- outbox rows stuck in "sending" past `outbox.SENDING_TIMEOUT`: handed back, to be sent again;
- pending outbox rows past due: their send;
- delivery receipts kept for a provider id that a row has since adopted: applied.

Work younger than `GRACE` is left to the fast path (RQ's scheduler moves a job on whole
seconds), so the sweeper only steps in when a job really went missing. On RQ it does not do
the work itself but puts a job of its own back on the queue (`jobs.requeue`): under load a
backlog older than the grace is normal, and a sweeper working through it would compete with
the workers for the processors while ignoring the queues' order (new cases' steps first).

It does the work itself, through the same functions the jobs call, when no worker would take
it and on the embedded runner. No worker means none beating (`jobs.WORKER_GONE_AFTER`), not
none registered: every worker killed or hung (a SIGKILLed worker stays registered for
minutes), Redis down, or restarted without its data. Then no grace is left to the fast path,
which no longer exists; with one sweeper and no worker the service keeps sending, slower:
a step with `lifecycle.advance`, one case per transaction, claimed with FOR UPDATE SKIP
LOCKED on PostgreSQL, so a worker or another sweeper busy with a case is skipped rather than
waited for (SQLite has one writer at a time and no such clause); a message with
`outbox.delivery.send`, which claims its row itself.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from dispatch import clock, jobs
from dispatch.case import lifecycle
from dispatch.db import db
from dispatch.metrics import daily, totals
from dispatch.models import Case
from dispatch.outbox import delivery, receipts

log = logging.getLogger(__name__)

GRACE = timedelta(seconds=3)
#: At most this many cases and rows per sweep, so one sweep never runs for long.
BATCH = 500


def sweep(now: datetime | None = None, *, grace: timedelta = GRACE) -> int:
    """Run one sweep at `now` (default: the clock's); returns how many items it re-drove."""
    now = now or clock.now()
    queue = jobs.workers_listening()
    if not queue and jobs.on_rq():
        # Every worker is gone (or Redis is): the jobs the fast path queued wait for nobody,
        # so waiting out their grace would only add to the delay. A step taken here writes
        # its messages due now, and this same sweep sends them.
        grace = timedelta(0)
    steps = sweep_steps(now, grace=grace, queue=queue)
    recovered = delivery.recover_interrupted(now)
    receipts.apply_adopted_receipts(now)
    sent = 0
    # No job waits for these: theirs died.
    due: list[tuple[int, list[str]]] = [(row_id, []) for row_id in recovered]
    for notification_id, queued_as in [*due, *delivery.due(now, grace=grace, limit=BATCH)]:
        job_id = job_id_for("send", notification_id, at=now)
        if ((queue and jobs.requeue(jobs.Job.SEND, notification_id, job_id=job_id,
                                    queued_as=queued_as))
                or delivery.send(notification_id, now) is not None):
            sent += 1
    if steps or sent:
        log.info("sweep: %d due step(s), %d message(s) re-driven", steps, sent)
    totals.fold()  # keeps the changes /metrics adds up few, whenever it is scraped
    daily.fold()  # … and those the district's figures add up
    return steps + sent


def sweep_steps(now: datetime | None = None, *, grace: timedelta = GRACE,
                queue: bool | None = None) -> int:
    """Re-drive every case step that is overdue by more than `grace`; returns how many.
    `queue`: hand them to the workers (default: if any listen), else take them here."""
    if queue is None:
        queue = jobs.workers_listening()
    now = now or clock.now()
    cutoff = now - grace
    due = db.session.execute(
        sa.select(Case.id, Case.token)
        .where(Case.next_step_at.is_not(None), Case.next_step_at <= cutoff)
        .order_by(Case.next_step_at)
        .limit(BATCH)).all()
    db.session.rollback()
    taken = 0
    for case_id, token in due:
        queued = queue and jobs.requeue(
            jobs.Job.STEP, case_id, token, job_id=job_id_for("step", case_id, token, at=now),
            queued_as=[jobs.step_job_id(case_id, token),
                       jobs.step_job_id(case_id, token, at_once=True)])
        if queued or _take_step(case_id, now, grace):
            taken += 1
    return taken


def job_id_for(kind: str, *item: int, at: datetime) -> str:
    """The id of the sweeper's job for an overdue item: the same for every sweep within a
    minute, so an item is queued once however many sweeps (and sweepers) see it, and new each
    minute, so a job a dead worker left "started" holds its item back for a minute at most.
    An item that waits longer in a backlog gets one more job a minute; the extra ones find the
    work done (the row claimed, the token moved on) and do nothing.

    The minute is written "m29943796", not bare: after a row id that is also an area code
    (row 523, Taizhou's 0523), a bare minute reads as a telephone number, and the log masking
    (`security.mask_phones_in_logs`) put "[电话]" in place of the id in every line naming it."""
    return f"sweep-{kind}-{'-'.join(map(str, item))}-m{int(at.timestamp() // 60)}"


def _take_step(case_id: int, at: datetime, grace: timedelta) -> bool:
    """Take an overdue step here, unless a worker holds the case (skipped, not waited for)."""
    case = db.session.scalar(lifecycle.locking(
        sa.select(Case).where(Case.id == case_id, Case.next_step_at.is_not(None),
                              Case.next_step_at <= at - grace),
        skip_locked=True))
    if case is None:
        db.session.rollback()
        return False
    assert case.next_step_at is not None  # the WHERE compared it
    log.warning("sweep: case %s step due %s was not taken by a job; taking it now",
                case.id, case.next_step_at.isoformat())
    lifecycle.advance(case, at)
    db.session.commit()
    return True
