"""Running background jobs: RQ on Redis when `REDIS_URL` is set, an in-process runner otherwise.

Jobs are named by their dotted path and take plain arguments, so the same job can run in an
RQ worker, in the embedded runner, or be called directly by the sweeper. The database holds
what must happen and when; a job is only the fast path, and losing one delays the work by at
most one sweep (see `dispatch.sweeper`).
"""

from __future__ import annotations

import heapq
import importlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask, current_app, has_app_context
from rq.exceptions import DuplicateJobError

from dispatch.db import utcnow

log = logging.getLogger(__name__)

QUEUE_NAME = "linli"
#: Called by the runner every sweep interval; `dispatch.sweeper` registers itself here.
SWEEP_JOB = "dispatch.sweeper.sweep"

_worker_app: Flask | None = None


def run(path: str, *args: Any) -> Any:
    """Run the job at `path` inside an app context; the entry point RQ workers execute."""
    func = _resolve(path)
    if has_app_context():
        return func(*args)
    with worker_app().app_context():
        return func(*args)


def worker_app() -> Flask:
    """The app of a worker process, built once per process (before RQ forks per job)."""
    global _worker_app
    if _worker_app is None:
        from app import create_app

        _worker_app = create_app()
    return _worker_app


def set_worker_app(app: Flask) -> None:
    """Use `app` for jobs run outside a request (worker processes, tests)."""
    global _worker_app
    _worker_app = app


def _resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def enqueue(path: str, *args: Any, at: datetime | None = None, job_id: str | None = None) -> None:
    """Queue the job at `path` to run now or at `at` (aware UTC) on this app's runner.

    Call this only after the transaction that decided the work has committed, so a worker
    never looks for a row that is not there yet.
    """
    runner(current_app).enqueue(path, args, at=at, job_id=job_id)


def runner(app: Flask) -> EmbeddedRunner | RQRunner:
    return app.extensions["linli.jobs"]


@dataclass(order=True)
class _Scheduled:
    when: float
    seq: int
    path: str = field(compare=False)
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
        self.last_sweep: float | None = None
        self.errors = 0

    def enqueue(self, path: str, args: tuple[Any, ...], *, at: datetime | None = None,
                job_id: str | None = None) -> None:
        when = at.timestamp() if at else time.time()
        with self._lock:
            heapq.heappush(self._heap, _Scheduled(when, next(self._seq), path, args))
            self._lock.notify()

    def drain(self, until: float | None = None) -> int:
        """Run every job due by `until` (default: now) on this thread; returns how many ran."""
        limit = time.time() if until is None else until
        ran = 0
        while True:
            with self._lock:
                if not self._heap or self._heap[0].when > limit:
                    return ran
                job = heapq.heappop(self._heap)
            self._run(job.path, job.args)
            ran += 1

    def pending(self) -> int:
        with self._lock:
            return len(self._heap)

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
        interval = float(self.app.config["SWEEP_SECONDS"])
        next_sweep = time.time()
        while not self._stop.is_set():
            if time.time() >= next_sweep:
                self._run(SWEEP_JOB, ())
                self.last_sweep = time.time()
                next_sweep = time.time() + interval
            self.drain()
            with self._lock:
                wake = min([next_sweep, *(j.when for j in self._heap[:1])])
                self._lock.wait(timeout=max(0.0, min(wake - time.time(), interval)))

    def _run(self, path: str, args: tuple[Any, ...]) -> None:
        try:
            with self.app.app_context():
                _resolve(path)(*args)
        except Exception:
            # A failed job must not kill the runner; the sweeper retries from the database.
            self.errors += 1
            log.exception("job %s%r failed", path, args)


class RQRunner:
    """Enqueue jobs on RQ; workers started with `flask --app app worker` run them."""

    kind = "rq"

    def __init__(self, app: Flask) -> None:
        from redis import Redis
        from rq import Queue

        self.app = app
        self.redis = Redis.from_url(app.config["REDIS_URL"])
        self.queue = Queue(QUEUE_NAME, connection=self.redis)

    def enqueue(self, path: str, args: tuple[Any, ...], *, at: datetime | None = None,
                job_id: str | None = None) -> None:
        options: dict[str, Any] = {"job_id": job_id, "result_ttl": 0, "failure_ttl": 86400}
        if job_id:
            # Without unique=True an id already queued is overwritten and can run twice.
            options["unique"] = True
        try:
            if at is not None and at > utcnow():
                self.queue.enqueue_at(at, run, path, *args, **options)
            else:
                self.queue.enqueue(run, path, *args, **options)
        except DuplicateJobError:
            return  # the same step is already queued
        except Exception as exc:
            # Redis is only the fast path: the sweeper finds the due row in the database.
            log.warning("could not enqueue %s%r (%s); the sweeper will pick it up", path, args, exc)

    def start(self) -> None:
        """Nothing to start in the web process: workers are separate processes."""

    @property
    def alive(self) -> bool:
        return True


def init_app(app: Flask) -> None:
    """Choose the runner from the configuration.

    The embedded runner starts with the first request rather than at import or in CLI
    commands, so `flask db upgrade` never races a sweeper against a half-made schema.
    """
    if app.config.get("REDIS_URL"):
        app.extensions["linli.jobs"] = RQRunner(app)
        return
    embedded = app.extensions["linli.jobs"] = EmbeddedRunner(app)
    app.config.setdefault("JOBS_AUTOSTART", not app.testing)
    if app.config["JOBS_AUTOSTART"]:
        app.before_request(embedded.start)
