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
        jobs.runner(current_app).redis.ping()
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
    except Exception as exc:
        return {"ok": False, "kind": runner.kind, "error": type(exc).__name__}
    result = {"ok": bool(workers), "kind": runner.kind, "workers": len(workers),
              "queued": sum(queue.count for queue in runner.queues)}
    if workers:
        result.update(_heartbeat(workers))
    return result


#: An idle RQ worker beats about every `worker_ttl` − 15 s and its key expires 60 s after
#: `worker_ttl`; a beat older than this means the worker is hung, not merely idle.
HEARTBEAT_STALE_SECONDS = 420 + 60


def _heartbeat(workers: list[Any]) -> dict[str, Any]:
    """The freshest worker heartbeat: `ok` only if some worker has beaten recently."""
    beats = [w.last_heartbeat for w in workers if w.last_heartbeat is not None]
    if not beats:
        return {"ok": False, "last_heartbeat": None}
    latest = max(beats)
    age = (clock.now() - latest).total_seconds()
    return {"ok": age <= HEARTBEAT_STALE_SECONDS, "last_heartbeat": latest.isoformat(),
            "heartbeat_age_s": round(age, 1)}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
