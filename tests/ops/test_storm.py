"""A broken lift at rush hour: 500 scans of one elevator's sticker in well under a minute,
over real HTTP to `scripts/deploy-local`'s gunicorn, with SMS through the fake Twilio.

One case with 500 reports; each on-duty member gets one SMS (the per-phone gap is the
bundling window: a minute); and the resident page keeps answering, quickly, throughout."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from dispatch.db import db
from dispatch.jobs import reconcile
from dispatch.metrics import percentile
from dispatch.models import Case, Notification, NotificationStatus, Report
from qr import codes
from tests import factories
from tests.fakes.fixtures import TWILIO_FROM
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.ops.deployment import Deployment, Resident, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SCANS = 500
CLIENTS = 8


def twilio_env(fake: FakeTwilio) -> dict[str, str]:
    """The deployment's environment for SMS through the fake Twilio."""
    return {"SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM": TWILIO_FROM,
            "TWILIO_API_BASE_URL": fake.url}


def test_500_scans_of_one_lift_make_one_case_one_sms_each_and_the_page_keeps_answering(
        rq_app: Flask, deploy: Callable[..., Deployment], fake_twilio: FakeTwilio) -> None:
    factories.import_community(factories.dispatch_community())
    lift = codes.issue(factories.place("TS-B1-U1-E1")).code
    db.session.commit()
    deployment = deploy(**twilio_env(fake_twilio))
    page_times: list[float] = []
    page_status: Counter[int] = Counter()
    storming = threading.Event()
    storming.set()

    def watch_the_page() -> None:
        """A resident reading the sticker page every 100 ms while the storm goes on."""
        http = requests.Session()
        while storming.is_set() and len(page_times) < 2000:
            started = time.perf_counter()
            status = http.get(f"{deployment.url}/s/{lift}", timeout=10).status_code
            page_times.append(time.perf_counter() - started)
            page_status[status] += 1
            time.sleep(0.1)

    def scan(n: int) -> int:
        """One resident: open the page, then leave a message."""
        return Resident(deployment.url, lift).report("elevator", f"电梯困人 #{n}").status_code

    watcher = threading.Thread(target=watch_the_page)
    watcher.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = Counter(pool.map(scan, range(SCANS)))
    finally:
        storming.clear()
        watcher.join(30)
    storm = time.monotonic() - started
    assert answers == {303: SCANS}, answers
    assert storm < 60

    db.session.rollback()
    [case] = db.session.scalars(sa.select(Case)).all()
    assert case.report_count == SCANS
    assert db.session.scalar(sa.select(sa.func.count(Report.id))) == SCANS
    expected = {"+8613800138001", "+8613800138005"}  # L1, the building leader; E1, the maintainer
    wait_until("the building rung's SMS", lambda: {r.form["To"] for r in fake_twilio.sent()}
               == expected, timeout=20)
    time.sleep(2)  # anything that would go out twice has had time to
    per_phone = Counter(r.form["To"] for r in fake_twilio.sent())
    assert per_phone == {phone: 1 for phone in expected}, per_phone
    db.session.rollback()
    assert {n.status for n in db.session.scalars(sa.select(Notification))} == {
        NotificationStatus.SENT}
    assert reconcile.problems(reconcile.reconcile()) == []
    assert page_status == {200: len(page_times)}, page_status
    p50, p99 = percentile(page_times, 0.5), percentile(page_times, 0.99)
    print(f"\n{SCANS} scans in {storm:.1f} s; resident page during the storm: "
          f"{len(page_times)} requests, p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {max(page_times) * 1000:.0f} ms")
    assert p99 < 1.0
