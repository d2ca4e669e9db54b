"""The fake Twilio as a process of its own (how a load test uses it): the SDK talks to it, and
it posts signed delivery receipts back by itself."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from twilio.request_validator import RequestValidator
from twilio.rest import Client

from dispatch.channels.twilio_client import RebasedHttpClient
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN

ROOT = Path(__file__).resolve().parents[3]


class Receiver(BaseHTTPRequestHandler):
    """Collects the callbacks posted to it, with whether Twilio's signature checks out."""

    received: ClassVar[list[tuple[dict[str, str], bool]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        form = dict(urllib.parse.parse_qsl(body))
        url = f"http://{self.headers['Host']}{self.path}"
        valid = RequestValidator(AUTH_TOKEN).validate(url, form,
                                                      self.headers["X-Twilio-Signature"])
        self.received.append((form, valid))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_the_fake_runs_as_a_process_and_posts_signed_receipts_by_itself() -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.twilio_server", "--port", "0",
         "--deliver-after", "0.05"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base = line.split(" on ", 1)[1].split()[0]
        client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=RebasedHttpClient(base, 5))
        callback = f"http://127.0.0.1:{receiver.server_address[1]}/status"
        message = client.messages.create(to="+8613800138000", from_="+15005550006",
                                         body="测试", status_callback=callback)
        assert message.sid.startswith("SM") and message.status == "queued"
        deadline = time.time() + 10
        while len(Receiver.received) < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert [(f["MessageSid"], f["MessageStatus"], ok) for f, ok in Receiver.received] == [
            (message.sid, "sent", True), (message.sid, "delivered", True)]
    finally:
        process.terminate()
        process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
        receiver.shutdown()
        receiver.server_close()
