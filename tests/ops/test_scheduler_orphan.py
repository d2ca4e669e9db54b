"""A worker killed outright takes its RQ scheduler with it, so the next worker schedules.

`flask worker` forks RQ's scheduler as a child holding the scheduler locks of both queues. A
SIGKILL of the worker alone (an OOM kill, `kill -9` of the pid a supervisor knows) used to
leave that child running as an orphan, still holding the locks, and a replacement worker then
ran without a scheduler for as long as the orphan lived.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from dispatch import jobs
from tests.dispatch.jobs.test_reliability import FLASK, ROOT, SECRET_KEY, descendants
from tests.ops.deployment import schema_url, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

LOCKS = [f"rq:scheduler-lock:{name}" for name in (jobs.QUEUE_NAME, jobs.STEPS_QUEUE_NAME)]


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _scheduler_pid(redis: Redis) -> int | None:
    """The pid of the scheduler holding the `linli` lock, from its registration."""
    name = redis.get(LOCKS[0])
    pid = redis.hget(f"rq:scheduler:{name.decode()}", "pid") if name else None
    return int(pid) if pid else None


@pytest.fixture
def workers(pg_schema: str, redis_url: str, tmp_path: Path
            ) -> Iterator[tuple[list[subprocess.Popen[bytes]], set[int]]]:
    """Started worker processes, and every pid they forked: all killed in the end, orphans
    included (they are no longer anyone's descendants)."""
    started: list[subprocess.Popen[bytes]] = []
    forked: set[int] = set()
    yield started, forked
    for process in started:
        forked.update(descendants(process.pid))
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    for pid in forked:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _start(pg_schema: str, redis_url: str, tmp_path: Path, name: str
           ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SECRET_KEY": SECRET_KEY,
           "DATABASE_URL": schema_url(pg_schema), "REDIS_URL": redis_url,
           "PUBLIC_BASE_URL": "http://linli.test", "SMS_BACKEND": "console"}
    with open(tmp_path / f"{name}.log", "wb") as log:
        return subprocess.Popen([FLASK, "--app", "app", "worker", "--worker-class", "simple"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_a_sigkilled_workers_scheduler_exits_and_the_next_worker_takes_the_locks(
        workers: tuple[list[subprocess.Popen[bytes]], set[int]], pg_schema: str,
        redis_url: str, tmp_path: Path) -> None:
    started, forked = workers
    redis = Redis.from_url(redis_url)
    first = _start(pg_schema, redis_url, tmp_path, "first")
    started.append(first)
    old = wait_until("the first worker's scheduler", lambda: _scheduler_pid(redis), timeout=30)
    assert old in descendants(first.pid)
    forked.add(old)

    first.kill()  # SIGKILL to the worker's own pid only, as `kill -9 <pid>` does
    first.wait(10)
    killed = time.monotonic()
    wait_until("the orphaned scheduler to exit", lambda: not _alive(old), timeout=5)
    print(f"\nthe scheduler exited {time.monotonic() - killed:.1f} s after its worker's SIGKILL")
    assert all(redis.get(lock) is None for lock in LOCKS)  # released on the way out

    second = _start(pg_schema, redis_url, tmp_path, "second")
    started.append(second)
    new = wait_until("the new worker's scheduler", lambda: _scheduler_pid(redis), timeout=30)
    assert new != old and new in descendants(second.pid)
    assert redis.get(LOCKS[0]) == redis.get(LOCKS[1])  # one scheduler holds both queues
