"""Every worker dead and nothing restarting them: the sweeper carries on alone, and /healthz
says so. The deployment is `scripts/deploy-local`'s (gunicorn, two RQ workers, one sweeper)
on the real PostgreSQL and Redis, sending through the fake Twilio."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable

import pytest
import requests
from flask import Flask

from dispatch.db import db
from qr import codes
from tests import factories
from tests.fakes.twilio_server import FakeTwilio
from tests.ops.deployment import Deployment, Resident, wait_until
from tests.ops.test_storm import twilio_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

#: The documented default: the test allows the sweeper one interval and five seconds more.
SWEEP_SECONDS = 5


def kill_group(pid: int) -> None:
    """SIGKILL a process and everything in its process group (deploy-local starts each in
    a session of its own): an RQ worker, its scheduler, its work horse."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def test_with_every_worker_killed_the_sweeper_sends_a_new_reports_sms_and_healthz_fails(
        rq_app: Flask, deploy: Callable[..., Deployment], fake_twilio: FakeTwilio) -> None:
    factories.import_community(factories.dispatch_community())
    lift = codes.issue(factories.place("TS-B1-U1-E1")).code
    db.session.commit()
    deployment = deploy(**twilio_env(fake_twilio), WORKERS="2",
                        SWEEP_SECONDS=str(SWEEP_SECONDS))
    resident = Resident(deployment.url, lift)
    workers = [pid for name, pid in deployment.pids().items() if name.startswith("worker-")]
    assert len(workers) == 2
    for pid in workers:
        kill_group(pid)
    killed = time.monotonic()

    filed = time.monotonic()
    assert resident.report("elevator", "电梯困人").status_code == 303
    wait_until("the report's SMS at the provider", fake_twilio.sent,
               timeout=SWEEP_SECONDS + 5)
    took = time.monotonic() - filed
    print(f"\nevery worker SIGKILLed: the first SMS reached the provider {took:.1f} s "
          f"after the report")

    def unhealthy() -> dict[str, object] | None:
        answer = requests.get(f"{deployment.url}/healthz", timeout=5)
        return answer.json()["checks"]["jobs"] if answer.status_code == 503 else None

    jobs_check = wait_until("/healthz to answer 503", unhealthy, timeout=60, interval=1)
    print(f"/healthz answered 503 {time.monotonic() - killed:.1f} s after the kill: {jobs_check}")
    assert jobs_check["workers"] == 0
    assert "registration removed" in deployment.log_text("sweeper-*.log")
