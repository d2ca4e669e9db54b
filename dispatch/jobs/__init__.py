"""Background jobs: RQ on Redis when `REDIS_URL` is set, an in-process runner otherwise.

A job is a name from `Job` and plain arguments, so the same job can run in an RQ worker, in
the embedded runner, or be called directly by the sweeper. What each name runs is one table,
`dispatch.jobs.table`, registered when the app is built; nothing here imports the work itself.
The database holds what must happen and when; a job is only the fast path, and losing one
delays the work by at most one sweep (see `dispatch.jobs.sweeper`).

This package's own module is the runner; `table` names the jobs, `sweeper` repairs what lost
jobs missed, `reconcile` checks the records against each other.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import heapq
import itertools
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import rq
import sqlalchemy as sa
from flask import Flask, current_app
from redis import Redis
from rq import worker_registration
from rq.exceptions import DuplicateJobError
from rq.scheduler import RQScheduler
from sqlalchemy.orm import Session

from dispatch import clock
from dispatch.db import db, on_transaction_end

log = logging.getLogger(__name__)

QUEUE_NAME = "linli"
#: Workers take jobs from this queue before any in `QUEUE_NAME`; it holds the ladder steps.
#: Steps go first because each one sends its case's first message itself; a burst of
#: messages queued for earlier cases must not hold back the first word about a new one.
STEPS_QUEUE_NAME = "linli-steps"


class Job(enum.StrEnum):
    """The jobs there are; `dispatch.jobs.table` says what each runs."""

    STEP = "step"  # a case's due ladder step (case_id, token)
    SEND = "send"  # one outbox row (notification_id)
    EARLY_RECEIPTS = "early_receipts"  # receipts that came before their row had the id
    SWEEP = "sweep"  # the sweeper: repairs what lost jobs missed


_TABLE: dict[str, Callable[..., Any]] = {}


def register(table: Mapping[str, Callable[..., Any]]) -> None:
    """Say what each job name runs (`dispatch.jobs.table`, when the app is built)."""
    _TABLE.update(table)


def step_job_id(case_id: int, token: int, *, at_once: bool = False) -> str:
    """The id a case's step job is queued under: one job per step, however often it is queued
    (the sweeper looks for it too, before queuing one of its own). `at_once` names the job
    that brings a step forward, which must not collide with the one already queued for later.
    """
    return f"step-{case_id}-{token}" + ("-now" if at_once else "")


#: The ids step and send jobs are queued under, and what they run: `step_job_id`'s,
#: `send_job_id`'s, `held_job_id`'s, and the sweeper's (`sweeper.job_id_for`:
#: "sweep-step-<case>-<token>-m<minute>", "sweep-send-<row>-m<minute>").
STEP_JOB_ID = re.compile(r"(?:sweep-)?step-(\d+)-(\d+)(?:-now|-m\d+)?")
SEND_JOB_ID = re.compile(r"(?:sweep-)?send-(\d+)-(?:\d+|m\d+|held-\d+)")


def send_job_id(notification_id: int, attempts: int) -> str:
    """The id of the job that sends a row after `attempts` attempts (the first, a retry)."""
    return f"send-{notification_id}-{attempts}"


def held_job_id(notification_id: int, until: datetime) -> str:
    """The id of the job that sends a row held back by pacing until `until`."""
    return f"send-{notification_id}-held-{int(until.timestamp())}"


_worker_app: Flask | None = None
#: Set in a work horse the forking worker made for one job (`Worker`): it ends with the job.
_forked_for_one_job = False


def run(name: str, *args: Any) -> Any:
    """Run the job `name` in an app context of its own; the entry point RQ workers execute.

    A fresh context is a fresh database session, so a job never inherits another job's
    half-finished transaction, whichever worker class runs it.

    What the job queues for right now runs here too, right after it (see `_run_follow_ups`):
    a ladder step's messages go out from the worker that decided them, without a trip through
    Redis and a job of their own each. And a step or send job goes on with the jobs waiting
    behind it (`_take_waiting_jobs`), without RQ's work around each.
    """
    result = _run_one(name, args)
    if name in (Job.STEP, Job.SEND):
        _take_waiting_jobs(sends=name == Job.SEND)
    return result


def _run_one(name: str, args: tuple[Any, ...]) -> Any:
    """`run`'s work for one job: its own app context, then its follow-ups."""
    func = _resolve(name)
    with worker_app().app_context():
        follow_ups: list[_FollowUp] = []
        db.session.info[_FOLLOW_UPS] = follow_ups
        try:
            result = func(*args)
        except BaseException:
            _run_follow_ups(follow_ups, budget=0.0)
            raise
        _run_follow_ups(follow_ups, budget=FOLLOW_UP_SECONDS)
        return result


#: Seconds a job may go on taking the jobs queued behind it (`_take_waiting_jobs`).
TAKE_WAITING_SECONDS = 1.0


def _take_waiting_jobs(*, sends: bool) -> None:
    """Take the steps queued behind this job off the queue, and (`sends`: after a send job)
    then the messages, and run them here one by one, steps first, for up to
    `TAKE_WAITING_SECONDS`, each as its own job would (its own transaction; a step's first
    message sent here, the rest queued while steps wait).

    In a storm every new case is a step job and most of its party group's messages are send
    jobs, and RQ's own work around a job (~70 Redis commands: taking it, marking it started,
    its execution, finishing and deleting it) was a quarter of a worker's CPU; a job taken off
    the queue here costs two commands. It changes who runs a job, not what it does: a step
    checks its fencing token and a send claims its row, as ever, and a job taken off the
    queue whose worker dies before it commits leaves its work due in the database with no job
    for it, which the sweeper queues again after its grace (`jobs.sweeper`).

    A step job takes no messages: it queued its own rest for the other workers to send
    meanwhile, and a slow provider must not hold back its next step.
    """
    deadline = time.monotonic() + TAKE_WAITING_SECONDS
    waiting = runner(worker_app())
    while time.monotonic() < deadline:
        job = waiting.take_waiting(sends=sends)
        if job is None:
            return
        try:
            _run_one(*job)
        except Exception:
            log.exception("job %s%r failed; the sweeper will retry it", *job)


def _run_follow_ups(follow_ups: list[_FollowUp], budget: float) -> None:
    """Run the jobs a job queued for right now, in order, for up to `budget` seconds and only
    the first while another step waits for a worker; queue the rest (and everything, once one
    fails) on the runner, together (`enqueue_now`: one round trip to Redis, not two each).

    Each is idempotent and guarded by the database (an outbox row is claimed before it is
    sent; a step checks its fencing token), so running here instead of in another worker
    changes who does the work, not what is done. Should this process die first, the rows are
    still due in the database and the sweeper sends them, as it does for a lost job. The budget
    keeps a slow provider from holding back the other messages: they go to the other workers.
    Yielding to waiting steps keeps a burst (a whole party group for each of many cases) from
    delaying the first message of the next case by more than one send.
    """
    deadline = time.monotonic() + budget
    ran = 0
    while follow_ups:
        if time.monotonic() >= deadline or (ran and runner(current_app).steps_waiting()):
            break
        name, args, _ = follow_ups.pop(0)
        ran += 1
        try:
            _resolve(name)(*args)
        except Exception:
            db.session.rollback()
            deadline = 0.0
            log.exception("job %s%r failed; the sweeper will retry it", name, args)
    if follow_ups:
        runner(current_app).enqueue_now(follow_ups)
        follow_ups.clear()


def worker_app() -> Flask:
    """The app of a worker process: `flask worker` sets it before RQ forks per job."""
    if _worker_app is None:
        raise RuntimeError("no app for jobs: run workers with `flask --app app worker`")
    return _worker_app


def forked_for_one_job() -> bool:
    """Whether this process is a work horse forked for a single job, which ends with it: a
    copy kept for the next job (`dispatch.roster.kept`) would be read for nothing."""
    return _forked_for_one_job


def set_worker_app(app: Flask) -> None:
    """Use `app` for jobs run outside a request (worker processes, tests)."""
    global _worker_app
    _worker_app = app


def _resolve(name: str) -> Callable[..., Any]:
    try:
        return _TABLE[name]
    except KeyError:
        raise LookupError(f"no job named {name!r}: see dispatch.jobs.table") from None


def enqueue(name: str, *args: Any, at: datetime | None = None, job_id: str | None = None) -> None:
    """Queue the job `name` to run now or at `at` (aware UTC) on this app's runner.

    Call this only after the transaction that decided the work has committed, so a worker
    never looks for a row that is not there yet.
    """
    runner(current_app).enqueue(name, args, at=at, job_id=job_id)


def workers_listening() -> bool:
    """Whether a live worker listens on the queues: the sweeper queues work only then.

    Live means beating (`HEARTBEAT_SECONDS`), not merely registered: a SIGKILLed worker stays
    registered until its key expires, minutes later. False without Redis, while Redis is down,
    after Redis lost its data (a restart without persistence forgets the workers too; RQ
    workers may not survive it either), and when every worker has died, so the sweeper does
    the work itself whenever a queued job might wait for nobody.
    """
    return runner(current_app).workers_listening()


def on_rq() -> bool:
    """Whether jobs go to RQ (`REDIS_URL` set) rather than to the embedded runner."""
    return isinstance(runner(current_app), RQRunner)


def requeue(name: str, *args: Any, job_id: str, queued_as: Sequence[str] = ()) -> bool:
    """Hand overdue work the sweeper found back to the workers, as a job `job_id`, unless a
    job for it is still waiting in a queue (`job_id`, or one of the fast path's `queued_as`):
    then it is only late, and a second job would only add to the backlog it is late in.
    False when the runner cannot take it and the caller should do the work itself (no Redis,
    or Redis is down).

    Workers take the work in queue order, steps first; a sweeper doing it itself would compete
    with them for the processors, the new cases' steps included, exactly when they are busy.
    """
    return runner(current_app).requeue(name, args, job_id=job_id, queued_as=queued_as)


def enqueue_after_commit(name: str, *args: Any, at: datetime | None = None,
                         job_id: str | None = None) -> None:
    """Queue the job once the current database transaction commits; drop it on rollback.

    Call it inside the transaction that decided the work (after a flush, typically).

    This is how a decision and its follow-ups stay in step: the outbox rows and the next ladder
    step are written in the deciding transaction, and their jobs only exist if it committed.
    """
    pending = db.session.info.setdefault(_AFTER_COMMIT, [])
    pending.append((name, args, at, job_id))


_AFTER_COMMIT = "linli.after_commit"
#: `session.info` key, set by `discarding`: decisions are recorded, their jobs never queued.
_DISCARD = "linli.discard"


@contextlib.contextmanager
def discarding() -> Iterator[None]:
    """Decide without queueing anything: for writing past history (the demo's), whose steps
    and messages are long overdue and must never run or be sent."""
    db.session.info[_DISCARD] = True
    try:
        yield
    finally:
        db.session.info.pop(_DISCARD, None)
        db.session.info.pop(_AFTER_COMMIT, None)
#: `session.info` key, set by `run`: jobs queued for right now, which that job runs itself.
_FOLLOW_UPS = "linli.follow_ups"
#: Seconds a job may spend on its follow-ups before the rest go to the queue.
FOLLOW_UP_SECONDS = 0.25
_FollowUp = tuple[str, tuple[Any, ...], "str | None"]


def _enqueue_committed(session: Session) -> None:
    """Queue the jobs of the transaction that just committed (`enqueue_after_commit`)."""
    if session.info.get(_DISCARD):
        session.info.pop(_AFTER_COMMIT, None)
        return
    follow_ups = session.info.get(_FOLLOW_UPS)
    for name, args, at, job_id in session.info.pop(_AFTER_COMMIT, []):
        if follow_ups is not None and at is None:
            follow_ups.append((name, args, job_id))
        else:
            enqueue(name, *args, at=at, job_id=job_id)


def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


def runner(app: Flask) -> EmbeddedRunner | RQRunner:
    chosen: EmbeddedRunner | RQRunner = app.extensions["linli.jobs"]  # by init_app
    return chosen


@dataclass(order=True)
class _Scheduled:
    when: float
    seq: int
    name: str = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)


class EmbeddedRunner:
    """A single background thread that runs due jobs and the sweeper inside the web process.

    It is the runner of the one-command demo (no Redis). `drain()` runs what is due right
    now on the caller's thread, which is how tests drive it deterministically.
    """

    kind = "embedded"

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._heap: list[_Scheduled] = []
        self._seq = itertools.count()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.errors = 0

    def enqueue(self, name: str, args: tuple[Any, ...], *, at: datetime | None = None,
                job_id: str | None = None) -> None:
        when = (at or clock.now()).timestamp()
        with self._lock:
            heapq.heappush(self._heap, _Scheduled(when, next(self._seq), name, args))
            self._lock.notify()

    def enqueue_now(self, queued: Sequence[_FollowUp]) -> None:
        """Queue several jobs for right now, in order (`_run_follow_ups`' rest)."""
        for name, args, job_id in queued:
            self.enqueue(name, args, job_id=job_id)

    def take_waiting(self, *, sends: bool) -> tuple[str, tuple[Any, ...]] | None:
        """Never: one thread runs the jobs here, in time order, so nothing waits behind one."""
        return None

    def drain(self, until: float | None = None) -> int:
        """Run every job due by `until` (a POSIX time; default: the clock's now) on this thread;
        returns how many ran."""
        limit = clock.now().timestamp() if until is None else until
        ran = 0
        while True:
            with self._lock:
                if not self._heap or self._heap[0].when > limit:
                    return ran
                job = heapq.heappop(self._heap)
            self._run(job.name, job.args)
            ran += 1

    def pending(self) -> int:
        with self._lock:
            return len(self._heap)

    def steps_waiting(self) -> bool:
        """Never: one thread runs the jobs here, in time order, so nothing can go first."""
        return False

    def workers_listening(self) -> bool:
        """No: the sweeper runs on this same thread, so it may as well do the work."""
        return False

    def requeue(self, name: str, args: tuple[Any, ...], *, job_id: str,
                queued_as: Sequence[str] = ()) -> bool:
        """Never: see `workers_listening`."""
        return False

    def start(self) -> None:
        """Start the background thread once; later calls do nothing."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="linli-jobs", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        # Job times are the clock's (they come from decisions); the sweep's rhythm is elapsed
        # time, so it is measured on the monotonic clock.
        interval = float(self.app.config["SWEEP_SECONDS"])
        next_sweep = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() >= next_sweep:
                self._run(Job.SWEEP, ())
                next_sweep = time.monotonic() + interval
            self.drain()
            with self._lock:
                next_job = (self._heap[0].when - clock.now().timestamp() if self._heap
                            else interval)
                self._lock.wait(timeout=max(0.0, min(next_sweep - time.monotonic(), next_job,
                                                     interval)))

    def _run(self, name: str, args: tuple[Any, ...]) -> None:
        try:
            with self.app.app_context():
                _resolve(name)(*args)
        except Exception:
            # A failed job must not kill the runner; the sweeper retries from the database.
            self.errors += 1
            log.exception("job %s%r failed", name, args)


class RQRunner:
    """Enqueue jobs on RQ; workers started with `flask --app app worker` run them."""

    kind = "rq"

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.redis = Redis.from_url(app.config["REDIS_URL"])
        self.steps = rq.Queue(STEPS_QUEUE_NAME, connection=self.redis)
        self.queue = rq.Queue(QUEUE_NAME, connection=self.redis)

    @property
    def queues(self) -> list[rq.Queue]:
        """The queues in the order workers take jobs from them."""
        return [self.steps, self.queue]

    def steps_waiting(self) -> bool:
        """Whether a ladder step is queued for a worker (one Redis round trip); False when
        Redis cannot say, so a job simply goes on with its own work."""
        try:
            return bool(self.redis.llen(self.steps.key))
        except Exception:
            return False

    def workers_listening(self) -> bool:
        try:
            return bool(self.live_workers())
        except Exception:
            return False

    def live_workers(self) -> list[rq.worker.BaseWorker]:
        """The workers on the queues that beat within `WORKER_GONE_AFTER`; the registrations
        of the others are removed (a live one registers again with its next beat).

        RQ counts a worker until its key expires (`worker_ttl` + 60 s after its last beat), so
        a worker killed with SIGKILL, or whose machine died, looks alive for minutes and work
        queued for it waits for nobody. Its heartbeat says it is gone within seconds.
        """
        for queue in self.queues:
            worker_registration.clean_worker_registry(queue)
        now = clock.now()
        live = []
        for worker in rq.Worker.all(connection=self.redis, queue=self.steps):
            beat = worker.last_heartbeat
            if beat is not None and now - beat <= WORKER_GONE_AFTER:
                live.append(worker)
                continue
            log.warning("worker %s has not beaten since %s: taken as gone, registration removed",
                        worker.name, beat.isoformat() if beat else "never")
            worker_registration.unregister(worker)
        return live

    def requeue(self, name: str, args: tuple[Any, ...], *, job_id: str,
                queued_as: Sequence[str] = ()) -> bool:
        """See `jobs.requeue`. The sweeper's own job may also be running (then nothing is
        queued); a finished or failed one (a database outage) is replaced. A fast-path job
        counts only while waiting in a queue: a "started" one may belong to a worker that
        died, a "scheduled" one to a scheduler that did."""
        key = rq.job.Job.key_for(job_id)
        try:
            pipe = self.redis.pipeline(transaction=False)
            for one in (job_id, *queued_as):
                pipe.hget(rq.job.Job.key_for(one), "status")
            status, *fast = pipe.execute()
            if status in _LIVE or any(s in _WAITING for s in fast):
                return True
            if status is not None:
                self.redis.delete(key)
            self._queue_for(name).enqueue(run, str(name), *args, job_id=job_id, unique=True,
                                          result_ttl=0, failure_ttl=86400)
            log.warning("%s%r was overdue and no job was left to run it: queued %s", name, args,
                        job_id)
        except DuplicateJobError:
            return True  # another sweeper queued it just now
        except Exception as exc:
            log.warning("could not requeue %s%r (%s); doing it here", name, args, exc)
            return False
        return True

    def _queue_for(self, name: str) -> rq.Queue:
        return self.steps if name == Job.STEP else self.queue

    def enqueue(self, name: str, args: tuple[Any, ...], *, at: datetime | None = None,
                job_id: str | None = None) -> None:
        queue = self._queue_for(name)
        options: dict[str, Any] = {"job_id": job_id, "result_ttl": 0, "failure_ttl": 86400}
        if job_id:
            # Without unique=True an id already queued is overwritten and can run twice.
            options["unique"] = True
        try:
            if at is not None and at > clock.now():
                # RQ's scheduler keeps whole seconds and would move a job due at 10.7 s at
                # 10 s; rounding up makes sure a step job never arrives before its row is due.
                at = datetime.fromtimestamp(math.ceil(at.timestamp()), UTC)
                queue.enqueue_at(at, run, str(name), *args, **options)
            else:
                queue.enqueue(run, str(name), *args, **options)
        except DuplicateJobError:
            return  # the same step is already queued
        except Exception as exc:
            # Redis is only the fast path: the sweeper finds the due row in the database.
            log.warning("could not enqueue %s%r (%s); the sweeper will pick it up", name, args, exc)

    def enqueue_now(self, queued: Sequence[_FollowUp]) -> None:
        """Queue several jobs for right now, in order, in one round trip to Redis: the rest of
        a step's messages, while other steps wait (`_run_follow_ups`).

        Without `unique`: RQ checks an id atomically only one job at a time. These ids are new
        (a row just written, a token just taken), and a job run twice finds its work done."""
        try:
            with self.redis.pipeline() as pipe:
                for queue in self.queues:
                    batch = [rq.Queue.prepare_data(run, (str(name), *args), job_id=job_id,
                                                   result_ttl=0, failure_ttl=86400)
                             for name, args, job_id in queued if self._queue_for(name) is queue]
                    if batch:
                        queue.enqueue_many(batch, pipeline=pipe)
                pipe.execute()
        except Exception as exc:
            log.warning("could not enqueue %d job(s) (%s); the sweeper will pick them up",
                        len(queued), exc)

    def take_waiting(self, *, sends: bool) -> tuple[str, tuple[Any, ...]] | None:
        """The next job waiting in the steps queue, or (`sends`) else in the other one, taken
        off it and deleted, as (name, args); None when none waits, or Redis cannot say.

        Only jobs whose ids say what they run are taken (`STEP_JOB_ID`, `SEND_JOB_ID`); any
        other goes back to the front of its queue, and None is returned: it is left to the
        workers as usual. A job once taken off its queue is the caller's to run, whether or
        not its record could be deleted: left "queued", the record would only keep the
        sweeper from queueing the work again, and the work is being done."""
        kinds = [(self.steps, STEP_JOB_ID, Job.STEP)]
        if sends:
            kinds.append((self.queue, SEND_JOB_ID, Job.SEND))
        for queue, ids, name in kinds:
            try:
                popped = self.redis.lpop(queue.key)  # RQ's pop_job_id raises on an empty queue
            except Exception as exc:
                log.warning("could not take a waiting job (%s); the workers will", exc)
                return None
            if popped is None:
                continue
            job_id = popped.decode() if isinstance(popped, bytes) else str(popped)
            found = ids.fullmatch(job_id)
            if found is None:
                try:
                    self.redis.lpush(queue.key, job_id)
                except Exception as exc:  # its work is due in the database: the sweeper's
                    log.warning("could not put job %s back (%s)", job_id, exc)
                return None
            try:
                self.redis.delete(rq.job.Job.key_for(job_id))
            except Exception as exc:
                log.warning("job %s taken, its record left (%s)", job_id, exc)
            return name, tuple(int(arg) for arg in found.groups())
        return None

    def start(self) -> None:
        """Nothing to start in the web process: workers are separate processes."""

    @property
    def alive(self) -> bool:
        return True


#: RQ job states in which a job waits in a queue for a worker. Not "scheduled": overdue work
#: whose job is still scheduled means the scheduler is not moving it (its worker died holding
#: the scheduler lock, say), and it may not for a minute.
_WAITING = {b"queued", b"deferred"}
#: … or is being run.
_LIVE = _WAITING | {b"started"}


#: How often a worker beats: idle, RQ beats each time it has waited `worker_ttl` − 15 s for a
#: job (so `work` passes a `worker_ttl` of this + 15); busy, the forking worker's parent beats
#: every job-monitoring interval and the simple worker beats from a thread (`SimpleWorker`).
HEARTBEAT_SECONDS = 1
#: A worker whose last beat is older than this is gone (killed, hung, its machine down): the
#: sweeper stops queueing for it and does the due work itself.
WORKER_GONE_AFTER = timedelta(seconds=HEARTBEAT_SECONDS + 2)
#: A busy worker's beats closer together than this are skipped (`_Beating.heartbeat`).
BEAT_AT_MOST_EVERY = HEARTBEAT_SECONDS / 2


#: prctl's option for "send me this signal when my parent dies" (linux/prctl.h).
PR_SET_PDEATHSIG = 1


class Scheduler(RQScheduler):
    """RQ's scheduler process, which ends with the worker that forked it.

    RQ forks the scheduler as a child of the worker; killed outright (SIGKILL, the OOM
    killer), the worker cannot stop it, and the orphan would go on holding the scheduler locks
    of both queues while a replacement worker ran without a scheduler. On Linux the kernel
    sends the child SIGTERM when the worker dies (PR_SET_PDEATHSIG); elsewhere, and should the
    worker die before that is set, each beat checks the parent is still the worker. Either way
    the scheduler stops as on a SIGTERM: it releases its locks, so the next worker takes them
    at its start.
    """

    def start(self) -> Any:
        self._worker_pid = os.getpid()
        return super().start()  # type: ignore[no-untyped-call]  # rq.scheduler: untyped

    def work(self) -> None:  # runs in the forked scheduler process
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        super().work()  # type: ignore[no-untyped-call]  # rq.scheduler: untyped

    def heartbeat(self) -> None:
        if os.getppid() != getattr(self, "_worker_pid", os.getppid()):
            self.log.warning("scheduler %s: its worker is gone; stopping", self.name)
            self.request_stop()
        super().heartbeat()  # type: ignore[no-untyped-call]  # rq.scheduler: untyped


class _Beating(rq.worker.BaseWorker):
    """Registers again with every beat, so a registration the sweeper removed while this
    worker was slow to beat (a long job, a paused machine), or that Redis lost (a restart
    without persistence, a flush), comes back by itself within a beat.

    RQ beats three times around every job (after it, and before and after taking the next),
    each beat here three round trips to Redis: under a storm of short jobs, 15 of a job's
    ~90 Redis commands were beats. A beat of its own (no pipeline, no new time-to-live) less
    than `BEAT_AT_MOST_EVERY` after the last is skipped: who reads beats (the sweeper,
    `/healthz`) reads them at a grain of seconds, and a busy simple worker still beats every
    `HEARTBEAT_SECONDS` from its thread.
    """

    _last_beat = -math.inf

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = rq.defaults.DEFAULT_LOGGING_DATE_FORMAT,
                         log_format: str = rq.defaults.DEFAULT_LOGGING_FORMAT) -> None:
        """RQ's own `_start_scheduler` (rq 2–3), with the `Scheduler` that dies with us."""
        self.scheduler = Scheduler(
            self.queues, connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format, log_format=log_format, serializer=self.serializer)
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        alone = pipeline is None and timeout is None
        if alone and time.monotonic() - self._last_beat < BEAT_AT_MOST_EVERY:
            return
        lost = pipeline is None and not self.connection.exists(self.key)
        super().heartbeat(timeout, pipeline)
        if lost:
            self.connection.hset(self.key, mapping=self.serialize())
        worker_registration.register(self, pipeline)
        if pipeline is None:
            self._last_beat = time.monotonic()


class Worker(_Beating, rq.Worker):
    """RQ's default worker, which forks a work horse per job, made safe for SQLAlchemy.

    The forked horse inherits the parent's pooled database connections; two processes talking
    over one socket corrupt each other's conversations. Each horse therefore starts with an
    empty pool (`dispose(close=False)` leaves the parent's sockets open for the parent) and a
    fresh app context, hence a fresh session.
    """

    def main_work_horse(self, job: rq.job.Job, queue: rq.Queue) -> None:
        global _forked_for_one_job
        _forked_for_one_job = True
        with worker_app().app_context():
            db.engine.dispose(close=False)
            super().main_work_horse(job, queue)


class SimpleWorker(_Beating, rq.SimpleWorker):
    """RQ's worker that runs each job in its own process: no fork per job, and the database
    connection pool is kept from job to job (each job still gets a fresh app context and
    session from `run`). Faster (docs/benchmarks.md); the price is that a job which crashes the
    interpreter takes the worker with it, which the outbox and the sweeper already survive.

    RQ's simple worker does not beat while a job runs; this one beats from a thread, so a
    send waiting on a slow provider does not make it look dead.
    """

    def execute_job(self, job: rq.job.Job, queue: rq.Queue) -> None:
        done = threading.Event()
        beating = threading.Thread(target=self._beat_until, args=(done,),
                                   name="linli-heartbeat", daemon=True)
        beating.start()
        try:
            super().execute_job(job, queue)
        finally:
            done.set()
            beating.join()

    def _beat_until(self, done: threading.Event) -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except Exception as exc:  # Redis away: the job goes on; the next beat may work
                log.warning("worker %s could not beat (%s)", self.name, exc)


#: `flask worker --worker-class` (or WORKER_CLASS) → the RQ worker class.
WORKER_CLASSES: dict[str, type[_Beating]] = {"fork": Worker, "simple": SimpleWorker}


def work(app: Flask, *, burst: bool = False, worker_class: str = "fork") -> None:
    """Run an RQ worker (forking by default) with the scheduler on the Linli queues (steps
    first), until stopped.

    The scheduler moves `enqueue_at` jobs onto their queue when due; with several workers one
    of them holds the scheduler lock and the others take over if it dies.
    """
    set_worker_app(app)
    # Work every horse would otherwise repeat after each fork: mapping the models (the caller
    # builds the senders, `channels.prepare`, for the same reason).
    sa.orm.configure_mappers()
    connection = Redis.from_url(app.config["REDIS_URL"])
    worker = WORKER_CLASSES[worker_class](
        [rq.Queue(name, connection=connection) for name in (STEPS_QUEUE_NAME, QUEUE_NAME)],
        connection=connection, worker_ttl=HEARTBEAT_SECONDS + 15,
        job_monitoring_interval=HEARTBEAT_SECONDS)
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


def init_app(app: Flask) -> None:
    """Choose the runner from the configuration.

    The embedded runner starts with the first request rather than at import or in CLI
    commands, so `flask db upgrade` never races a sweeper against a half-made schema.
    """
    on_transaction_end(_enqueue_committed, _forget_rolled_back)
    if app.config.get("REDIS_URL"):
        app.extensions["linli.jobs"] = RQRunner(app)
        return
    embedded = app.extensions["linli.jobs"] = EmbeddedRunner(app)
    app.config.setdefault("JOBS_AUTOSTART", not app.testing)
    if app.config["JOBS_AUTOSTART"]:
        app.before_request(embedded.start)
