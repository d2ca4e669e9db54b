"""`GET /healthz`: is the database answering, is Redis answering, are jobs being run."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from dispatch import clock, jobs
from dispatch.db import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """Report each part as JSON; 200 when all are healthy, 503 otherwise."""
    checks = {"database": _database(), "jobs": _jobs()}
    if current_app.config.get("REDIS_URL"):
        checks["redis"] = _redis()
    healthy = all(check["ok"] for check in checks.values())
    return jsonify(status="ok" if healthy else "unhealthy", checks=checks), 200 if healthy else 503


def _database() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        db.session.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any driver error means "down" to a health check
        db.session.rollback()
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "backend": db.engine.dialect.name, "ms": _ms(started)}


def _redis() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        runner = jobs.runner(current_app)
        assert isinstance(runner, jobs.RQRunner)  # REDIS_URL is set, so jobs.init_app chose it
        runner.redis.ping()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": _ms(started)}


def _jobs() -> dict[str, Any]:
    runner = jobs.runner(current_app)
    if isinstance(runner, jobs.EmbeddedRunner):
        expected = current_app.config.get("JOBS_AUTOSTART", True)
        return {
            "ok": runner.alive or not expected,
            "kind": runner.kind,
            "running": runner.alive,
            "pending": runner.pending(),
            "errors": runner.errors,
        }
    try:
        from rq import Worker

        workers = Worker.all(connection=runner.redis)
        queued = sum(queue.count for queue in runner.queues)
    except Exception as exc:
        return {"ok": False, "kind": runner.kind, "error": type(exc).__name__}
    now = clock.now()
    beats = [w.last_heartbeat for w in workers if w.last_heartbeat is not None]
    live = [beat for beat in beats if (now - beat).total_seconds() <= HEARTBEAT_STALE_SECONDS]
    result: dict[str, Any] = {"ok": bool(live), "kind": runner.kind, "workers": len(live),
                              "queued": queued}
    if len(workers) != len(live):
        result["registered"] = len(workers)
    if beats:
        latest = max(beats)
        result.update(last_heartbeat=latest.isoformat(),
                      heartbeat_age_s=round((now - latest).total_seconds(), 1))
    return result


#: Workers beat every `jobs.HEARTBEAT_SECONDS`, idle or busy; a worker silent for this long
#: is dead or hung, even while RQ still lists it (a SIGKILLed worker's registration outlives it
#: by minutes). With no worker left the service is unhealthy: the sweeper keeps the cases
#: moving, but slower, and a supervisor should start workers again.
HEARTBEAT_STALE_SECONDS = 30


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
