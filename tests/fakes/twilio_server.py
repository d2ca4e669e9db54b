"""A local fake of Twilio's REST API, for the real `twilio` SDK to talk to.

It is a real HTTP server on 127.0.0.1 (a thread of the test process, or a process of its own:
`python -m tests.fakes.twilio_server --port 8765`), so tests exercise the SDK's own request
building, authentication and error parsing rather than a mock of it. It answers
`POST /2010-04-01/Accounts/{sid}/Messages.json`, `…/Calls.json` and `GET …/Messages.json` with
the JSON Twilio returns, records every request, and can be told to fail the next requests the
ways Twilio does (an error code, an HTTP 500, a hang longer than the client's timeout).

Delivery receipts are the other half: `callback()` posts the status callback a message named,
signed with the account's auth token exactly as Twilio signs it. In subprocess mode the fake
can post "sent" and "delivered" by itself (`--deliver-after`), which is what a load test wants.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any

from twilio.request_validator import RequestValidator

from tests.fakes.local_server import LocalServer

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "fake-auth-token-0123456789abcdef"

#: Twilio's own wording for the errors tests inject.
ERRORS: dict[int, tuple[int, str]] = {
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by "
                 "the 'To' number: {to}."),
    20003: (401, "Authenticate"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
}

#: A sender posts (url, form, headers) and returns the HTTP status it got back.
Sender = Callable[[str, dict[str, str], dict[str, str]], int]



@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    form: dict[str, str]
    query: dict[str, str]
    auth: tuple[str, str] | None
    headers: dict[str, str]
    at: float = field(default_factory=time.time)
    #: The client's (address, port): which process sent it (`tests/ops/deployment.py`).
    peer: tuple[str, int] | None = None

    @property
    def resource(self) -> str:
        """`Messages`, `Calls`, … : the last path segment without `.json`."""
        return self.path.rsplit("/", 1)[-1].removesuffix(".json")


@dataclass
class Fault:
    """How to fail one future request: a Twilio error code, a bare HTTP status, or a hang.

    `create` makes the message anyway before hanging, the case where the client times out
    although Twilio has the message: the dangerous one for duplicates.
    """

    code: int | None = None
    http_status: int | None = None
    hang: float = 0.0
    create: bool = False
    resource: str | None = None  # only requests to this resource (Messages, Calls)


class FakeTwilio(LocalServer):
    """The fake's state: accounts, messages and calls made, requests seen, faults queued."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN,
                 sender: Sender | None = None) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sender = sender or post_form
        self.requests: list[Recorded] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.callbacks: list[tuple[str, dict[str, str], int]] = []
        self.deliver_after: float | None = None
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    # -- running -------------------------------------------------------------------------

    # -- test controls -------------------------------------------------------------------

    def fail_next(self, code: int | None = None, *, http_status: int | None = None,
                  hang: float = 0.0, create: bool = False, resource: str | None = None,
                  times: int = 1) -> None:
        """Fail the next `times` matching requests (Twilio error `code`, a status, a hang)."""
        with self._lock:
            self._faults.extend(Fault(code, http_status, hang, create, resource)
                                for _ in range(times))

    def sent(self, resource: str = "Messages") -> list[Recorded]:
        """The POSTs made to `resource`, in order."""
        return [r for r in self.requests if r.method == "POST" and r.resource == resource]

    def callback(self, sid: str, status: str, *, error_code: int | None = None,
                 url: str | None = None, **extra: str) -> int:
        """Post a signed status callback for the message or call `sid`; returns the answer."""
        resource = self.messages.get(sid) or self.calls.get(sid)
        if resource is None:
            raise KeyError(sid)
        target = url or resource.get("_status_callback")
        if not target:
            raise ValueError(f"{sid} named no status callback")
        resource["status"] = status
        if sid.startswith("SM"):
            form = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status,
                    "SmsStatus": status, "AccountSid": self.account_sid,
                    "From": resource["from"] or "", "To": resource["to"], "ApiVersion":
                    "2010-04-01"}
            if resource.get("messaging_service_sid"):
                form["MessagingServiceSid"] = resource["messaging_service_sid"]
        else:
            form = {"CallSid": sid, "CallStatus": status, "AccountSid": self.account_sid,
                    "From": resource["from"], "To": resource["to"], "ApiVersion": "2010-04-01",
                    "Direction": "outbound-api"}
        if error_code is not None:
            form["ErrorCode"] = str(error_code)
            resource["error_code"] = error_code
        form.update(extra)
        return self.post_signed(target, form)

    def post_signed(self, url: str, form: dict[str, str]) -> int:
        """POST `form` to `url` signed with the auth token, as Twilio posts its webhooks."""
        signature = RequestValidator(self.auth_token).compute_signature(url, form)
        status = self.sender(url, form, {"X-Twilio-Signature": signature})
        self.callbacks.append((url, form, status))
        return status

    def inbound_sms(self, url: str, from_: str, to: str, body: str) -> int:
        """Post an incoming SMS webhook, as Twilio does when someone texts the number."""
        sid = "SM" + secrets.token_hex(16)
        return self.post_signed(url, {
            "MessageSid": sid, "SmsSid": sid, "AccountSid": self.account_sid, "From": from_,
            "To": to, "Body": body, "NumMedia": "0", "NumSegments": "1",
            "SmsStatus": "received", "ApiVersion": "2010-04-01"})

    # -- serving -------------------------------------------------------------------------

    def _take_fault(self, resource: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.resource in (None, resource):
                    return self._faults.pop(index)
        return None

    def handle(self, record: Recorded) -> tuple[int, dict[str, Any]]:
        """Answer one API request: (HTTP status, JSON body)."""
        self.requests.append(record)
        prefix = f"/2010-04-01/Accounts/{self.account_sid}/"
        if record.auth != (self.account_sid, self.auth_token):
            return _error(20003, record.path)
        if not record.path.startswith(prefix):
            return 404, {"code": 20404, "message": "The requested resource was not found",
                         "more_info": "https://www.twilio.com/docs/errors/20404",
                         "status": 404}
        fault = self._take_fault(record.resource)
        if fault is not None:
            if fault.create:
                self._create(record)
            if fault.hang:
                time.sleep(fault.hang)
            if fault.code is not None:
                return _error(fault.code, record.path, to=record.form.get("To", ""))
            if fault.http_status is not None:
                return fault.http_status, {"code": 20500, "message": "Internal Server Error",
                                           "status": fault.http_status}
        if record.method == "GET" and record.resource == "Messages":
            return 200, self._list_messages(record)
        if record.method == "POST" and record.resource in ("Messages", "Calls"):
            return 201, _public(self._create(record))
        return 405, {"code": 20004, "message": "Method not allowed", "status": 405}

    def _create(self, record: Recorded) -> dict[str, Any]:
        form = record.form
        if record.resource == "Messages":
            if not form.get("To") or not (form.get("From") or form.get("MessagingServiceSid")):
                raise ValueError("a message needs To and From or MessagingServiceSid")
            resource = _message(self.account_sid, form)
            self.messages[resource["sid"]] = resource
        else:
            resource = _call(self.account_sid, form)
            self.calls[resource["sid"]] = resource
        if self.deliver_after is not None and resource["_status_callback"]:
            timer = threading.Timer(self.deliver_after, self._auto_deliver, [resource["sid"]])
            timer.daemon = True
            timer.start()
        return resource

    def _auto_deliver(self, sid: str) -> None:
        try:
            self.callback(sid, "sent" if sid.startswith("SM") else "ringing")
            self.callback(sid, "delivered" if sid.startswith("SM") else "completed")
        except Exception as exc:  # the app may be gone; the fake keeps serving
            print(f"fake twilio: callback for {sid} failed: {exc}", flush=True)

    def _list_messages(self, record: Recorded) -> dict[str, Any]:
        found = [_public(m) for m in reversed(self.messages.values())
                 if record.query.get("To") in (None, m["to"])]
        uri = record.path
        return {"messages": found, "first_page_uri": uri, "next_page_uri": None,
                "previous_page_uri": None, "page": 0, "page_size": 50, "start": 0,
                "end": max(len(found) - 1, 0), "uri": uri}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio
    protocol_version = "HTTP/1.1"

    def handle(self) -> None:
        with contextlib.suppress(ConnectionResetError):  # a client killed between requests
            super().handle()

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        parts = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        record = Recorded(method=method, path=parts.path,
                          form=dict(urllib.parse.parse_qsl(body, keep_blank_values=True)),
                          query=dict(urllib.parse.parse_qsl(parts.query)),
                          auth=_basic_auth(self.headers.get("Authorization")),
                          headers=dict(self.headers.items()),
                          peer=(str(self.client_address[0]), int(self.client_address[1])))
        try:
            status, payload = self.fake.handle(record)
        except ValueError as exc:
            status, payload = 400, {"code": 21604, "message": str(exc), "status": 400}
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `fake.requests` instead of a log."""


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


def _error(code: int, path: str, **fields: str) -> tuple[int, dict[str, Any]]:
    status, message = ERRORS.get(code, (400, "Error {code}"))
    return status, {"code": code, "message": message.format(code=code, **fields),
                    "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


def _now() -> str:
    return formatdate(usegmt=True)


def _message(account_sid: str, form: dict[str, str]) -> dict[str, Any]:
    sid = "SM" + secrets.token_hex(16)
    service = form.get("MessagingServiceSid")
    return {
        "sid": sid, "account_sid": account_sid, "api_version": "2010-04-01",
        "body": form.get("Body", ""), "to": form["To"],
        "from": form.get("From") or None, "messaging_service_sid": service,
        "status": "accepted" if service and not form.get("From") else "queued",
        "direction": "outbound-api", "num_segments": "1", "num_media": "0",
        "date_created": _now(), "date_updated": _now(), "date_sent": None,
        "error_code": None, "error_message": None, "price": None, "price_unit": "USD",
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        "subresource_uris": {
            "media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"},
        "_status_callback": form.get("StatusCallback"),
        "_validity_period": form.get("ValidityPeriod"),
    }


def _call(account_sid: str, form: dict[str, str]) -> dict[str, Any]:
    sid = "CA" + secrets.token_hex(16)
    return {
        "sid": sid, "account_sid": account_sid, "api_version": "2010-04-01",
        "to": form["To"], "from": form.get("From"), "status": "queued",
        "direction": "outbound-api", "date_created": _now(), "date_updated": _now(),
        "start_time": None, "end_time": None, "duration": None, "price": None,
        "uri": f"/2010-04-01/Accounts/{account_sid}/Calls/{sid}.json",
        "_status_callback": form.get("StatusCallback"),
        "_twiml": form.get("Twiml"), "_url": form.get("Url"),
    }


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as the API shows it (without the fake's own `_` bookkeeping)."""
    return {k: v for k, v in resource.items() if not k.startswith("_")}


def post_form(url: str, form: dict[str, str], headers: dict[str, str]) -> int:
    """POST a form over real HTTP; the default way the fake delivers webhooks."""
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def main(argv: list[str] | None = None) -> None:
    """Run the fake as a process of its own, e.g. beside a load test."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-sid", default=ACCOUNT_SID)
    parser.add_argument("--auth-token", default=AUTH_TOKEN)
    parser.add_argument("--deliver-after", type=float, default=None, metavar="SECONDS",
                        help="post signed 'sent' and 'delivered' callbacks this long after "
                             "each message (calls: 'ringing' and 'completed')")
    args = parser.parse_args(argv)
    fake = FakeTwilio(args.account_sid, args.auth_token)
    fake.deliver_after = args.deliver_after
    fake.start(args.host, args.port)
    print(f"fake twilio listening on {fake.url} (account {fake.account_sid})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()



FakeTwilio.handler = _Handler  # defined below the class it serves

if __name__ == "__main__":
    main()
