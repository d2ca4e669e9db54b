"""The outbox: one function sends one row, claims it once, retries with backoff, never twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch import outbox
from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.case.timeline import EventKind
from dispatch.channels import SendResult
from dispatch.db import db
from dispatch.models import Case, CaseStatus, Notification, NotificationStatus
from dispatch.outbox import delivery
from tests import factories
from tests.factories import place

MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
SEC = timedelta(seconds=1)


class FlakyProvider:
    """A stand-in provider that answers with the given failures first, then takes messages."""

    def __init__(self, *failures: SendResult | Exception) -> None:
        self.failures = list(failures)
        self.received: list[int] = []

    def send(self, notification: Notification) -> SendResult:
        self.received.append(notification.id)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return SendResult.sent(f"SM{len(self.received):032d}")


@pytest.fixture
def ctx(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        yield app


def pending_alert() -> Notification:
    """Open an elevator case and take its first step: two alerts wait in the outbox."""
    filed = file_report(place("TS-B1-U1-E1"), "elevator", now=MONDAY)
    lifecycle.run_step(filed.case.id, filed.case.token, now=MONDAY)
    return db.session.scalars(sa.select(Notification).order_by(Notification.id)).first()


def use_provider(app: Flask, provider: FlakyProvider) -> FlakyProvider:
    app.extensions["linli.sender"] = provider
    return provider


def case_events(notification: Notification, kind: EventKind) -> list[str]:
    case = db.session.get(Case, notification.case_id)
    return [e.message for e in case.events if e.kind == kind]


def test_rows_are_written_once_per_decision_however_often_it_is_made(ctx: Flask) -> None:
    first = pending_alert()
    case, member, contact = first.case, first.member, first.contact
    drafts = [outbox.Draft(member, contact, "taken", "有人接单了", dedupe_key=key)
              for key in (first.dedupe_key, "taken:1", "taken:1", "taken:2")]
    written = outbox.add_all(case, drafts, now=first.created_at)
    assert [row and row.dedupe_key for row in written] == [None, "taken:1", None, "taken:2"]
    assert written[1].id and written[3].id and written[1].to_address == contact.address
    db.session.commit()
    assert outbox.add(case, member, contact, "taken", "再说一次", dedupe_key="taken:2",
                      now=first.created_at) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 4


def test_a_row_is_sent_once_with_the_provider_id_and_the_console_keeps_the_message(
        ctx: Flask) -> None:
    row = pending_alert()
    assert delivery.send(row.id) == NotificationStatus.SENT
    db.session.refresh(row)
    assert row.status == NotificationStatus.SENT and row.provider_id.startswith("console-")
    assert row.attempts == 1 and row.sent_at is not None
    console = ctx.extensions["linli.sender"]
    assert [m.notification_id for m in console.sent] == [row.id]
    assert "电梯故障" in console.sent[0].body
    assert delivery.send(row.id) is None  # already sent: nobody can claim it again
    assert len(console.sent) == 1


def test_a_retryable_failure_waits_longer_each_time_then_is_sent(ctx: Flask) -> None:
    provider = use_provider(ctx, FlakyProvider(
        SendResult.failed("30003", "Unreachable destination handset", retryable=True),
        TimeoutError("read timed out")))
    row = pending_alert()
    assert delivery.send(row.id, MONDAY) == NotificationStatus.PENDING
    db.session.refresh(row)
    assert (row.error_code, row.next_attempt_at) == ("30003", MONDAY + 10 * SEC)
    assert delivery.send(row.id, MONDAY + 9 * SEC) is None  # not due yet
    assert delivery.send(row.id, MONDAY + 10 * SEC) == NotificationStatus.PENDING
    db.session.refresh(row)
    assert (row.error_code, row.next_attempt_at) == ("exception", MONDAY + 40 * SEC)
    assert delivery.send(row.id, MONDAY + 40 * SEC) == NotificationStatus.SENT
    assert provider.received == [row.id] * 3
    assert case_events(row, EventKind.SEND_FAILED) == [
        "短信（发给李建国）发送失败（30003），10 秒后重试",
        "短信（发给李建国）发送失败（exception），30 秒后重试"]


def test_a_permanent_failure_or_too_many_attempts_gives_up(ctx: Flask) -> None:
    use_provider(ctx, FlakyProvider(SendResult.failed("21211", "Invalid 'To'", retryable=False)))
    row = pending_alert()
    assert delivery.send(row.id, MONDAY) == NotificationStatus.FAILED
    assert case_events(row, EventKind.SEND_FAILED) == [
        "短信（发给李建国）发送失败（21211），不再重试"]

    failing = SendResult.failed("500", "Server error", retryable=True)
    use_provider(ctx, FlakyProvider(*[failing] * delivery.MAX_ATTEMPTS))
    other = db.session.scalars(sa.select(Notification).where(Notification.id != row.id)).one()
    at = MONDAY
    for _ in range(delivery.MAX_ATTEMPTS):
        status = delivery.send(other.id, at)
        at += timedelta(minutes=10)
    assert status == NotificationStatus.FAILED and other.attempts == delivery.MAX_ATTEMPTS


def test_an_alert_for_a_case_taken_meanwhile_is_cancelled_right_before_sending(
        ctx: Flask) -> None:
    provider = use_provider(ctx, FlakyProvider())
    row = pending_alert()
    db.session.execute(sa.update(Case).values(status=CaseStatus.ACCEPTED))
    db.session.commit()
    assert delivery.send(row.id) == NotificationStatus.CANCELLED
    assert provider.received == []


def test_an_interrupted_send_is_sent_again_and_the_timeline_warns_of_a_duplicate(
        ctx: Flask) -> None:
    provider = use_provider(ctx, FlakyProvider())
    row = pending_alert()
    row.status, row.attempts, row.updated_at = NotificationStatus.SENDING, 1, MONDAY
    db.session.commit()
    assert delivery.recover_interrupted(MONDAY + delivery.SENDING_TIMEOUT) == []  # not long enough
    recovered = delivery.recover_interrupted(MONDAY + delivery.SENDING_TIMEOUT + SEC)
    assert recovered == [row.id]
    assert delivery.send(row.id) == NotificationStatus.SENT and provider.received == [row.id]
    [warning] = case_events(row, EventKind.RESENT)
    assert warning == "发给李建国的短信在发送途中中断（处理进程退出），重新发送：对方可能收到两条"


def test_a_row_the_provider_already_has_is_never_sent_again(ctx: Flask) -> None:
    provider = use_provider(ctx, FlakyProvider())
    row = pending_alert()
    row.status, row.provider_id, row.updated_at = NotificationStatus.SENDING, "SM1", MONDAY
    db.session.commit()
    assert delivery.recover_interrupted(MONDAY + timedelta(hours=1)) == []
    db.session.refresh(row)
    assert row.status == NotificationStatus.SENT
    assert delivery.send(row.id) is None and provider.received == []


@pytest.mark.postgres
def test_a_row_locked_by_another_sender_is_skipped_not_waited_for(pg_app: Flask) -> None:
    with pg_app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        row = pending_alert()
        with db.engine.connect() as other:
            other.execute(sa.select(Notification).where(Notification.id == row.id)
                          .with_for_update())
            assert delivery.send(row.id) is None  # SKIP LOCKED: returns at once
            other.rollback()
        assert delivery.send(row.id) == NotificationStatus.SENT


@pytest.mark.postgres
def test_while_the_provider_has_the_message_no_lock_is_held_on_its_row(pg_app: Flask) -> None:
    """A sender that dies mid-send must leave nothing the sweeper's SKIP LOCKED would skip:
    its row is handed back as soon as its timeout is over, not once PostgreSQL notices."""
    locked: list[bool] = []

    class Probe(FlakyProvider):
        def send(self, notification: Notification) -> SendResult:
            with db.engine.connect() as other:
                row = other.execute(sa.select(Notification.id)
                                    .where(Notification.id == notification.id)
                                    .with_for_update(skip_locked=True)).scalar()
                locked.append(row is None)
                other.rollback()
            return super().send(notification)

    with pg_app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        use_provider(pg_app, Probe())
        row = pending_alert()
        assert delivery.send(row.id) == NotificationStatus.SENT
        assert locked == [False]


@pytest.mark.postgres
def test_the_claim_and_the_text_go_in_one_commit_before_the_provider_and_its_answer_in_one_after(
        pg_app: Flask) -> None:
    """Two commits an SMS answered by reply code: should the sender die while the provider has
    it, the row is "sending" with exactly the text a provider that can be asked would be asked
    about."""
    during: list[tuple[str, str | None]] = []
    commits: list[object] = []

    def committed(connection: object) -> None:
        commits.append(connection)

    class LooksUp(FlakyProvider):  # as Twilio SMS: paced, answered by reply codes
        looks_up = True
        two_way = True
        paced = True

        def send(self, message: Notification) -> SendResult:
            with db.engine.connect() as other:
                status, text = other.execute(
                    sa.select(Notification.status, Notification.sent_text)
                    .where(Notification.id == message.id)).one()
            during.append((str(status), text))
            return super().send(message)

    with pg_app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        use_provider(pg_app, LooksUp())
        row = pending_alert()
        sa.event.listen(db.engine, "commit", committed)
        try:
            assert delivery.send(row.id) == NotificationStatus.SENT
        finally:
            sa.event.remove(db.engine, "commit", committed)
        sent = db.session.get(Notification, row.id)
        assert during == [(NotificationStatus.SENDING, sent.sent_text)]
        assert sent.sent_text is not None and len(commits) == 2


@pytest.mark.postgres
def test_an_acceptance_while_a_message_of_the_case_is_being_claimed_waits_and_deadlocks_nobody(
        pg_app: Flask) -> None:
    """A send writes its claimed row twice in one transaction (the claim, then a reply code),
    and the second write checks the row's foreign keys: a KEY SHARE lock on the case. An
    acceptance locks the case, then cancels the case's pending messages, so it waits for the
    claimed row. Were the case locked FOR UPDATE, the sender would wait for it in turn: a
    deadlock, one of the two aborted (the member's acceptance, maybe)."""
    import threading

    with pg_app.app_context():
        factories.import_community(factories.small_community(overrides=[]))
        row = pending_alert()
        row_id, case_id, member_id = row.id, row.case_id, row.member_id
        db.session.rollback()
        accepted: list[object] = []

        def accept() -> None:
            with pg_app.app_context():
                try:
                    accepted.append(lifecycle.accept(case_id, member_id, MONDAY + SEC).id)
                except Exception as exc:  # the deadlock's loser, on the old locks
                    accepted.append(exc)

        with db.engine.connect() as sender:
            sender.execute(sa.update(Notification).where(Notification.id == row_id)
                           .values(status=NotificationStatus.SENDING))  # the claim
            acceptance = threading.Thread(target=accept)
            acceptance.start()
            with db.engine.connect() as watch:  # until the acceptance waits for the claim
                for _ in range(100):
                    if watch.execute(sa.text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND datname = current_database() "
                            "AND query LIKE 'UPDATE notification SET status%'")).scalar():
                        break
                    watch.rollback()
                    threading.Event().wait(0.05)
                else:
                    pytest.fail("the acceptance never waited for the claimed row")
            sender.execute(sa.update(Notification).where(Notification.id == row_id)
                           .values(updated_at=MONDAY))  # the reply code's write
            sender.commit()
            acceptance.join(10)
        assert accepted == [case_id]
        assert db.session.get(Notification, row_id).status == NotificationStatus.SENDING
