"""Group robots (群机器人): a grid's WeCom or DingTalk group hears about its cases.

Both take markdown at a webhook URL and allow 20 messages a minute per robot; past that they
answer HTTP 429 or their own code (WeCom 45009, DingTalk 130101), and the message is a retryable
failure. `RobotPacer` keeps one robot under the limit: it lets out at most 20 messages a rolling
minute, folds whatever is waiting beyond that into one combined message, and backs off after a
refusal; `deliver` hands back what did not go, so nothing is lost. A group is not private: a
text that looks like a phone number is refused before it reaches the robot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
import urllib.parse
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from dispatch.channels import webapi
from dispatch.channels.base import Form, OutgoingMessage, SendResult

TIMEOUT = 10.0
#: Robots return no message id; this stands for "taken".
ACCEPTED = "robot-accepted"
#: Each robot's own "too many messages" code.
WECOM_RATE_LIMITED, DINGTALK_RATE_LIMITED = 45009, 130101
#: WeCom caps a markdown message at 4096 bytes; DingTalk allows more, the smaller serves both.
MAX_BYTES = 4000
LIMIT, WINDOW = 20, timedelta(minutes=1)
BACKOFF, MAX_BACKOFF = timedelta(minutes=1), timedelta(minutes=10)
SEPARATOR = "\n\n---\n\n"

# A mainland mobile (with or without +86), a mainland landline with its area code, or any
# international number written with "+": digits may be split by spaces or dashes. Kept here
# rather than taken from `dispatch.resident.phones`, which parses single numbers with the
# `phonenumbers` library and imports the database: this guard scans free text and must stay
# domain-free.
_PHONE = re.compile(r"""
    (?<!\d)(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}(?!\d)     # mainland mobile
  | (?<!\d)0[1-9]\d{1,2}[\s-]?\d{3,4}[\s-]?\d{4}(?!\d)       # landline 0571-8888 8888
  | \+\d(?:[\s-]?\d){6,14}(?!\d)                             # +<country> …
""", re.VERBOSE)


def contains_phone(text: str) -> bool:
    """Whether `text` holds something that looks like a phone number (full-width digits too)."""
    return _PHONE.search(unicodedata.normalize("NFKC", text)) is not None


def _refused_phone() -> SendResult:
    return SendResult.failed("phone-in-text", "a group message must not carry a phone number",
                             retryable=False)


class Robot(Protocol):
    """A group robot: one markdown message in, the robot's answer out."""

    def send(self, text: str, now: datetime) -> SendResult: ...


@dataclass(frozen=True, slots=True)
class WeComRobot:
    """A WeCom group robot, by the key in its webhook URL."""

    key: str
    base_url: str
    timeout: float = TIMEOUT

    def send(self, text: str, now: datetime) -> SendResult:
        if contains_phone(text):
            return _refused_phone()
        url = f"{self.base_url.rstrip('/')}/cgi-bin/webhook/send?" + \
            urllib.parse.urlencode({"key": self.key})
        return _answer(url, {"msgtype": "markdown", "markdown": {"content": text}},
                       WECOM_RATE_LIMITED, "wecom-robot", self.timeout)


@dataclass(frozen=True, slots=True)
class DingTalkRobot:
    """A DingTalk group robot with 加签 (signing) on: its access token and `SEC…` secret."""

    access_token: str
    secret: str
    base_url: str
    timeout: float = TIMEOUT

    def send(self, text: str, now: datetime) -> SendResult:
        if contains_phone(text):
            return _refused_phone()
        timestamp = str(int(now.timestamp() * 1000))
        query = urllib.parse.urlencode({"access_token": self.access_token,
                                        "timestamp": timestamp,
                                        "sign": dingtalk_sign(self.secret, timestamp)})
        title = text.strip().splitlines()[0].lstrip("# ")[:30] if text.strip() else "邻里"
        return _answer(f"{self.base_url.rstrip('/')}/robot/send?{query}",
                       {"msgtype": "markdown", "markdown": {"title": title, "text": text}},
                       DINGTALK_RATE_LIMITED, "dingtalk", self.timeout)


def dingtalk_sign(secret: str, timestamp: str) -> str:
    """DingTalk's signature: HMAC-SHA256 of "timestamp\\nsecret" keyed by the secret, base64."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def _answer(url: str, payload: dict[str, object], rate_limited: int, name: str,
            timeout: float) -> SendResult:
    try:
        answer = webapi.call("POST", url, payload, timeout=timeout)
    except webapi.Unreachable as error:
        return SendResult.failed(error.code, str(error), retryable=True)
    try:
        errcode = int(answer.body.get("errcode", 0 if answer.status == 200 else -1))
    except (TypeError, ValueError):
        errcode = -1
    if answer.status == 429 or errcode == rate_limited:
        return SendResult.failed("rate-limited", f"{name}: HTTP {answer.status}, {errcode}",
                                 retryable=True)
    if answer.status >= 500:
        return SendResult.failed(f"http-{answer.status}", f"{name}: HTTP {answer.status}",
                                 retryable=True)
    if errcode != 0:
        return SendResult.failed(f"{name}-{errcode}"[:16],
                                 f"{name}: {errcode} {answer.body.get('errmsg', '')}",
                                 retryable=errcode == -1)
    return SendResult.sent(ACCEPTED)


@dataclass
class RobotPacer:
    """One robot's sending record: at most `limit` messages per rolling `window`, and a
    back-off (doubling up to ten minutes) after the robot refused one as too many or failed."""

    limit: int = LIMIT
    window: timedelta = WINDOW
    backoff: timedelta = BACKOFF
    sent_at: deque[datetime] = field(default_factory=deque)
    blocked_until: datetime | None = None
    failures: int = 0

    def free(self, now: datetime) -> int:
        """How many messages may go now."""
        if self.blocked_until is not None and now < self.blocked_until:
            return 0
        while self.sent_at and self.sent_at[0] <= now - self.window:
            self.sent_at.popleft()
        return max(0, self.limit - len(self.sent_at))

    def batches(self, pending: Sequence[str], now: datetime) -> list[list[str]]:
        """The messages to send now, in order: one each while there is room, and the last free
        slot carrying everything left, combined (up to `MAX_BYTES`; the rest waits)."""
        slots = self.free(now)
        if slots == 0 or not pending:
            return []
        if len(pending) <= slots:
            return [[text] for text in pending]
        single = [[text] for text in pending[:slots - 1]]
        combined: list[str] = []
        for text in pending[slots - 1:]:
            if combined and len(combine([*combined, text]).encode()) > MAX_BYTES:
                break
            combined.append(text)
        return [*single, combined]

    def record(self, result: SendResult, now: datetime) -> None:
        """Count a message the robot took, or back off after a retryable refusal."""
        if result.ok:
            self.sent_at.append(now)
            self.failures = 0
            self.blocked_until = None
        elif result.retryable:
            self.failures += 1
            wait = min(self.backoff * 2 ** (self.failures - 1), MAX_BACKOFF)
            self.blocked_until = now + wait


def combine(texts: Sequence[str]) -> str:
    """Several messages as one: a count, then each of them."""
    if len(texts) == 1:
        return texts[0]
    return f"**{len(texts)} 条消息**{SEPARATOR}" + SEPARATOR.join(texts)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What `deliver` did: the messages sent, those still waiting (send them later), those
    refused for good (a phone number, a robot that rejects them), and the robot's answers."""

    sent: list[str]
    pending: list[str]
    refused: list[str]
    results: list[SendResult]


def deliver(robot: Robot, pacer: RobotPacer, pending: Sequence[str], now: datetime) -> Delivery:
    """Send what the pacer allows now; stop at the first retryable failure."""
    refused = [text for text in pending if contains_phone(text)]
    waiting = [text for text in pending if not contains_phone(text)]
    sent: list[str] = []
    results: list[SendResult] = []
    done = 0  # batches are consecutive runs of `waiting`, taken from its start
    for batch in pacer.batches(waiting, now):
        result = robot.send(combine(batch), now)
        pacer.record(result, now)
        results.append(result)
        if result.retryable:
            break
        (sent if result.ok else refused).extend(batch)
        done += len(batch)
    return Delivery(sent, waiting[done:], refused, results)


class RobotSender:
    """The group channel: one outbox message (several, combined by the outbox's pacing) to a
    work group's robot. Paced by the outbox per robot (`LIMIT` a `WINDOW`), not by phone."""

    form: Form = "robot"
    paced = False
    two_way = False
    looks_up = False

    def __init__(self, wecom_base_url: str, dingtalk_base_url: str) -> None:
        self.wecom_base_url, self.dingtalk_base_url = wecom_base_url, dingtalk_base_url

    def send(self, message: OutgoingMessage) -> SendResult:
        kind, key = message.robot.get("kind"), message.robot.get("key", "")
        robot: Robot
        if kind == "wecom" and key:
            robot = WeComRobot(key, self.wecom_base_url)
        elif kind == "dingtalk" and key:
            robot = DingTalkRobot(key, message.robot.get("secret", ""), self.dingtalk_base_url)
        else:
            return SendResult.failed("no-robot", f"no robot for {message.to}", retryable=False)
        if message.at is None:
            raise ValueError("a robot message needs the time it is sent (its signature)")
        result = robot.send(message.text, message.at)
        # Robots answer no message id: the row's own stands for it.
        return SendResult.sent(f"robot-{message.id}") if result.ok else result
