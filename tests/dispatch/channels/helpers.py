"""Plain functions the channel tests share: open a case and find its outbox rows."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from dispatch import clock, links, outbox
from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.case.timeline import EventKind
from dispatch.db import db
from dispatch.models import Case, Channel, Contact, Notification, NotificationStatus
from dispatch.outbox import delivery
from tests.factories import member, place


def open_case(place_code: str = "TS-B1-U1-E1", category: str = "elevator") -> Case:
    """A resident's report, and the ladder's first step taken: its alerts are in the outbox."""
    filed = file_report(place(place_code), category)
    lifecycle.run_step(filed.case.id, filed.case.token, now=clock.now())
    return db.session.get(Case, filed.case.id)


def row_for(case: Case, member_code: str, purpose: str = outbox.Purpose.ALERT,
            channel: Channel | None = None) -> Notification:
    """The newest outbox row of `case` for a member."""
    query = (sa.select(Notification)
             .where(Notification.case_id == case.id,
                    Notification.member_id == member(member_code).id,
                    Notification.purpose == purpose)
             .order_by(Notification.id.desc()))
    if channel is not None:
        query = query.where(Notification.channel == channel)
    found = db.session.scalars(query).first()
    assert found is not None, f"no {purpose} row for {member_code}"
    return found


def send(row: Notification) -> Notification:
    """Send the row now through the outbox, and reload it."""
    delivery.send(row.id, clock.now())
    db.session.expire_all()
    return db.session.get(Notification, row.id)


def subscribe_push(app: Flask, member_code: str, subscription: dict[str, Any]) -> Any:
    """Turn push on as the member does: post the browser's subscription from the push page,
    read the code the outbox texts to their phone, and type it in. The last answer."""
    client = app.test_client()
    token = links.sign(links.Purpose.MEMBER, member(member_code).id)
    asked = client.post(f"/m/push/{token}/subscribe", json=subscription)
    if asked.status_code != 202:
        return asked
    row = db.session.scalars(
        sa.select(Notification).where(Notification.member_id == member(member_code).id,
                                      Notification.purpose == outbox.Purpose.PUSH_CODE)
        .order_by(Notification.id.desc())).first()
    assert send(row).status == NotificationStatus.SENT, row.last_error
    code = re.search(r"\d{6}", row.body)[0]
    return client.post(f"/m/push/{token}/confirm",
                       json={"endpoint": subscription["endpoint"], "code": code})


def contact(member_code: str, channel: Channel = Channel.SMS) -> Contact:
    return next(c for c in member(member_code).contacts if c.channel == channel)


def events(case: Case, kind: EventKind) -> list[str]:
    db.session.expire_all()
    fresh = db.session.get(Case, case.id)
    return [e.message for e in fresh.events if e.kind == kind]


def link_names(url: str) -> tuple[str, int, int | None]:
    """What a member link in a message names: (purpose, member id, case id).

    Links carry the second they were signed in, so a test reads them back instead of signing
    its own and comparing strings, which fails whenever the clock ticks in between.
    """
    base = current_app.config["PUBLIC_BASE_URL"] + "/m/"
    assert url.startswith(base), url
    purpose, token = url.removeprefix(base).split("/")
    return (purpose, *links.read(links.Purpose(purpose), token))
