"""Two workers and two sweepers at once, 500 cases climbing their whole ladders: every step
fires exactly once, every message is written once and handed to the provider once, nothing
is lost. The workers and sweepers are `scripts/deploy-local`'s, on the real PostgreSQL and
Redis; the ladder runs in seconds (two seconds per rung)."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch.case.report import file_report
from dispatch.case.timeline import EventKind
from dispatch.db import db
from dispatch.jobs import reconcile
from dispatch.models import Case, CaseEvent, Notification, NotificationStatus
from tests import factories
from tests.ops.deployment import Deployment, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

CASES = 500
#: Two seconds per rung, the district's referral deadline two seconds, no repeat at the top.
FAST_LADDER = {"rung_minutes": 2 / 60, "referral_hours": 2 / 3600, "repeat_last": 0}


def many_units(count: int) -> list[dict[str, str]]:
    """The small community's places plus `count` units in building 1 (one case each)."""
    places = factories.small_community()["places"]
    return [*places, *({"code": f"TS-B1-M{n}", "kind": "unit", "name": f"{n}单元",
                        "parent": "TS-B1"} for n in range(1, count + 1))]


def provider_counts(deployment: Deployment) -> Counter[int]:
    """How many times the console provider took each notification, across every process."""
    logs = deployment.log_text("*.log")
    return Counter(int(n) for n in re.findall(r"console \w+ notification=(\d+) ", logs))


def count(query: sa.Select[tuple[int]]) -> int:
    db.session.rollback()
    return int(db.session.scalar(query) or 0)


def test_two_workers_and_two_sweepers_take_every_step_of_500_ladders_exactly_once(
        rq_app: Flask, deploy: Callable[..., Deployment]) -> None:
    community = factories.import_community(
        factories.dispatch_community(places=many_units(CASES)))
    factories.set_policy(community, "normal", **FAST_LADDER)
    deployment = deploy(WORKERS="2", SWEEPERS="2", WEB_PROCESSES="1")
    started = time.monotonic()
    for n in range(1, CASES + 1):
        file_report(factories.place(f"TS-B1-M{n}"), "noise", text=f"第{n}户楼上装修")
    filed = time.monotonic() - started

    stuck = sa.select(sa.func.count(Case.id)).where(Case.stuck_at.is_not(None))
    wait_until("every case to climb to the top and be stuck", lambda: count(stuck) == CASES,
               timeout=150, interval=1)
    unsent = sa.select(sa.func.count(Notification.id)).where(
        Notification.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]))
    wait_until("every message to be sent", lambda: count(unsent) == 0, timeout=60, interval=1)
    climbed = time.monotonic() - started

    findings = reconcile.reconcile()
    assert findings == [], "\n".join(map(str, findings))
    steps = Counter()
    for case_id, data in db.session.execute(
            sa.select(CaseEvent.case_id, CaseEvent.data)
            .where(CaseEvent.kind == str(EventKind.NOTIFIED))):
        steps[(case_id, data["rung"], data["step"])] += 1
    assert set(steps.values()) == {1}, "a rung was notified twice"
    rungs = Counter(rung for _, rung, _ in steps)
    assert rungs == {1: CASES, 2: CASES, 3: CASES, 4: CASES}
    assert count(sa.select(sa.func.count(CaseEvent.id))
                 .where(CaseEvent.kind == str(EventKind.STUCK))) == CASES
    ids = list(db.session.scalars(sa.select(Notification.id)))
    sent = provider_counts(deployment)
    assert sorted(sent) == sorted(ids), "a message missing at the provider, or unknown there"
    assert set(sent.values()) == {1}, [n for n, c in sent.items() if c > 1][:20]
    # Both kinds of process did the work: the workers most of it, the sweepers what was late.
    workers = [len(re.findall(r"console \w+ notification=", deployment.log_text(f"worker-{n}.log")))
               for n in (1, 2)]
    assert all(workers), workers
    late = re.findall(r"sweep: (\d+) due step", deployment.log_text("sweeper-*.log"))
    print(f"\n{CASES} cases filed in {filed:.1f} s, all stuck and sent after {climbed:.1f} s; "
          f"{len(ids)} messages, workers sent {workers}, sweepers took "
          f"{sum(map(int, late))} late steps")
