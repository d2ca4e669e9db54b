"""The one table of jobs: each name in `dispatch.jobs.Job` and the function it runs.

It sits above the work it names (the ladder step, the outbox send, the receipts, the sweeper),
so the runner below it imports none of them: the app registers this table when it is built
(`init_app`), and a worker process gets it with the app `flask worker` builds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from dispatch import jobs
from dispatch.case import lifecycle
from dispatch.jobs import sweeper
from dispatch.outbox import delivery, receipts

TABLE: dict[str, Callable[..., Any]] = {
    jobs.Job.STEP: lifecycle.run_step,
    jobs.Job.SEND: delivery.send,
    jobs.Job.EARLY_RECEIPTS: receipts.apply_early_receipts,
    jobs.Job.SWEEP: sweeper.sweep,
}


def init_app(app: Flask) -> None:
    """Register the table and choose the app's runner."""
    jobs.register(TABLE)
    jobs.init_app(app)
