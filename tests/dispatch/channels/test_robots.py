"""Group robots against a local WeCom/DingTalk robot: signed, paced to 20 a minute, no phones."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from dispatch.channels.robots import (
    DingTalkRobot,
    Robot,
    RobotPacer,
    WeComRobot,
    contains_phone,
    deliver,
)
from tests.fakes.robot_server import DINGTALK_SECRET, DINGTALK_TOKEN, WECOM_KEY, FakeRobots

NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)


@pytest.fixture
def fake_robots() -> Iterator[FakeRobots]:
    with FakeRobots(now_ms=int(NOW.timestamp() * 1000)) as fake:
        yield fake


def robots(fake: FakeRobots) -> dict[str, Robot]:
    return {"wecom": WeComRobot(WECOM_KEY, base_url=fake.url),
            "dingtalk": DingTalkRobot(DINGTALK_TOKEN, DINGTALK_SECRET, base_url=fake.url)}


@pytest.mark.parametrize("name", ["wecom", "dingtalk"])
def test_a_robot_posts_markdown_to_its_group(fake_robots: FakeRobots, name: str) -> None:
    result = robots(fake_robots)[name].send("### 1栋 电梯故障\n3 位居民反映，王师傅已接单", NOW)
    assert result.ok
    [message] = fake_robots.messages
    assert message.robot == name and message.payload["msgtype"] == "markdown"
    assert message.text == "### 1栋 电梯故障\n3 位居民反映，王师傅已接单"


@pytest.mark.parametrize(("secret", "at"), [
    ("SECwrong", NOW), (DINGTALK_SECRET, NOW - timedelta(hours=2))],
    ids=["wrong-secret", "stale-timestamp"])
def test_dingtalk_refuses_a_message_not_signed_now_with_the_robots_secret(
        fake_robots: FakeRobots, secret: str, at: datetime) -> None:
    result = DingTalkRobot(DINGTALK_TOKEN, secret, base_url=fake_robots.url).send("测试", at)
    assert not result.ok and not result.retryable and result.error_code == "dingtalk-310000"
    assert fake_robots.messages == [] and fake_robots.refused == [("dingtalk", 310000)]


@pytest.mark.parametrize("text", [
    "请联系 13800138000", "电话 +86 138-0013-8000", "１３８００１３８０００", "138 0013 8000",
    "call +1 415 555 2671", "物业 0571-88888888", "8613800138000",
])
def test_a_text_with_a_phone_number_never_reaches_a_group(fake_robots: FakeRobots,
                                                         text: str) -> None:
    assert contains_phone(text)
    for robot in robots(fake_robots).values():
        result = robot.send(f"1栋 电梯故障 {text}", NOW)
        assert not result.ok and not result.retryable and result.error_code == "phone-in-text"
    assert fake_robots.messages == []


@pytest.mark.parametrize("text", [
    "案件 L-20261130-003", "2026-11-30 09:30 报修", "3 位居民反映", "1栋 2单元 · 1号电梯",
    "已由 王师傅 接单（用时 12 分钟）",
])
def test_case_numbers_dates_and_places_are_not_taken_for_phones(text: str) -> None:
    assert not contains_phone(text)


@pytest.mark.parametrize(("name", "status", "errcode"), [
    ("wecom", 429, 0), ("wecom", 200, 45009), ("dingtalk", 429, 0), ("dingtalk", 200, 130101)])
def test_a_robot_saying_too_many_is_retried_after_a_back_off_and_nothing_is_lost(
        fake_robots: FakeRobots, name: str, status: int, errcode: int) -> None:
    robot, pacer = robots(fake_robots)[name], RobotPacer()
    texts = [f"事项 {n}" for n in range(3)]
    fake_robots.answer_next(http_status=status, errcode=errcode)
    first = deliver(robot, pacer, texts, NOW)
    [refused] = first.results
    assert not refused.ok and refused.retryable and refused.error_code == "rate-limited"
    assert first.sent == [] and first.pending == texts and first.refused == []
    # Backing off: nothing is sent before the minute is up, not even a single request.
    waiting = deliver(robot, pacer, first.pending, NOW + timedelta(seconds=59))
    assert waiting.results == [] and waiting.pending == texts
    later = deliver(robot, pacer, waiting.pending, NOW + timedelta(seconds=60))
    assert later.sent == texts and later.pending == []
    assert [m.text for m in fake_robots.messages] == texts


def test_back_off_doubles_while_the_robot_keeps_refusing(fake_robots: FakeRobots) -> None:
    robot, pacer = robots(fake_robots)["wecom"], RobotPacer()
    for _ in range(3):
        fake_robots.answer_next(errcode=45009)
    at = NOW
    for wait in (60, 120, 240):
        assert deliver(robot, pacer, ["事项"], at).pending == ["事项"]
        assert pacer.blocked_until == at + timedelta(seconds=wait)
        at = pacer.blocked_until
    assert deliver(robot, pacer, ["事项"], at).sent == ["事项"]


@pytest.mark.parametrize("name", ["wecom", "dingtalk"])
def test_more_than_twenty_a_minute_go_as_nineteen_and_one_combined(
        fake_robots: FakeRobots, name: str) -> None:
    robot, pacer = robots(fake_robots)[name], RobotPacer()
    texts = [f"事项 {n}：{n}栋 电梯故障" for n in range(25)]
    done = deliver(robot, pacer, texts, NOW)
    assert done.sent == texts and done.pending == [] and fake_robots.refused == []
    assert len(fake_robots.messages) == 20
    combined = fake_robots.messages[-1].text
    assert combined.startswith("**6 条消息**") and all(t in combined for t in texts[19:])
    # The minute is used up: more waits (kept, not sent) until it has passed.
    held = deliver(robot, pacer, ["事项 25"], NOW + timedelta(seconds=30))
    assert held.results == [] and held.pending == ["事项 25"]
    fake_robots.advance(61)
    assert deliver(robot, pacer, held.pending, NOW + timedelta(seconds=61)).sent == ["事项 25"]
    assert fake_robots.refused == []


def test_a_combined_message_stays_under_the_robots_size_and_the_rest_waits(
        fake_robots: FakeRobots) -> None:
    robot, pacer = robots(fake_robots)["wecom"], RobotPacer(limit=1)
    texts = [f"事项 {n} " + "楼" * 400 for n in range(10)]  # ~1.2 kB each
    done = deliver(robot, pacer, texts, NOW)
    assert 0 < len(done.sent) < 10 and done.sent + done.pending == texts
    assert len(fake_robots.messages[0].text.encode()) <= 4096


def test_a_message_with_a_phone_is_refused_alone_and_the_others_still_go(
        fake_robots: FakeRobots) -> None:
    robot, pacer = robots(fake_robots)["dingtalk"], RobotPacer()
    done = deliver(robot, pacer, ["事项 1", "请打 13800138000", "事项 2"], NOW)
    assert done.sent == ["事项 1", "事项 2"] and done.refused == ["请打 13800138000"]
    assert [m.text for m in fake_robots.messages] == ["事项 1", "事项 2"]
