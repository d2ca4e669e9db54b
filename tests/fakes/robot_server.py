"""Local stand-ins for group robots: WeCom's `webhook/send?key=…` and DingTalk's `robot/send`.

One server answers both (point `WECOM_API_BASE_URL` and `DINGTALK_API_BASE_URL` at it). Like the
real robots it allows 20 messages a minute per robot and then answers with the robot's own
"too many" code (WeCom 45009, DingTalk 130101); its minute runs on a clock the test moves with
`advance`. DingTalk's 加签 is checked as DingTalk documents it: the `sign` must be the base64
HMAC-SHA256 of "timestamp\\nsecret", and the timestamp (milliseconds) within an hour of the
fake's clock; otherwise errcode 310000.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.local_server import LocalServer

DINGTALK_TOKEN = "dt-access-token"
DINGTALK_SECRET = "SECfake0123456789abcdef"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
LIMIT, WINDOW = 20, 60.0


@dataclass
class RobotMessage:
    """One message a robot took."""

    robot: str
    payload: dict[str, Any]

    @property
    def text(self) -> str:
        markdown = self.payload.get("markdown", {})
        return str(markdown.get("content") or markdown.get("text") or "")


class FakeRobots(LocalServer):
    """Both robots; `answer_next` queues an answer (HTTP status and errcode) for the next call."""

    def __init__(self, now_ms: int | None = None) -> None:
        self.messages: list[RobotMessage] = []
        self.refused: list[tuple[str, int]] = []
        self.now_ms = now_ms  # DingTalk's clock for the timestamp check (None: the wall clock)
        self._offset = 0.0
        self._taken: dict[str, list[float]] = {}
        self._answers: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def advance(self, seconds: float) -> None:
        """Move the robots' rate-limit clock (and DingTalk's) on."""
        self._offset += seconds
        if self.now_ms is not None:
            self.now_ms += int(seconds * 1000)

    def answer_next(self, *, http_status: int = 200, errcode: int = 0) -> None:
        self._answers.append((http_status, errcode))

    def handle(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        with self._lock:
            if parts.path == "/cgi-bin/webhook/send" and query.get("key") == WECOM_KEY:
                robot, too_many = "wecom", 45009
            elif parts.path == "/robot/send" and query.get("access_token") == DINGTALK_TOKEN:
                robot, too_many = "dingtalk", 130101
                if not self._signed(query):
                    self.refused.append((robot, 310000))
                    return 200, {"errcode": 310000, "errmsg": "sign not match"}
            else:
                return 404, {"errcode": 93000, "errmsg": "invalid webhook url"}
            if self._answers:
                status, errcode = self._answers.pop(0)
                self.refused.append((robot, errcode or status))
                return status, {"errcode": errcode, "errmsg": "queued answer"}
            now = time.monotonic() + self._offset
            taken = [t for t in self._taken.get(robot, []) if t > now - WINDOW]
            if len(taken) >= LIMIT:
                self.refused.append((robot, too_many))
                return 200, {"errcode": too_many, "errmsg": "send too fast"}
            self._taken[robot] = [*taken, now]
            self.messages.append(RobotMessage(robot, json.loads(body)))
            return 200, {"errcode": 0, "errmsg": "ok"}

    def _signed(self, query: dict[str, str]) -> bool:
        timestamp = query.get("timestamp", "")
        if not timestamp.isdigit():
            return False
        now_ms = self.now_ms if self.now_ms is not None else int(time.time() * 1000)
        if abs(now_ms - int(timestamp)) > 3600 * 1000:
            return False
        mac = hmac.new(DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(),
                       hashlib.sha256)
        return hmac.compare_digest(base64.b64encode(mac.digest()).decode(),
                                   query.get("sign", ""))


class _Handler(BaseHTTPRequestHandler):
    fake: FakeRobots

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload = self.fake.handle(self.path, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


FakeRobots.handler = _Handler  # defined below the class it serves
