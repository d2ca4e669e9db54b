"""A local stand-in for Alibaba Cloud's SMS API (dysmsapi 2017-05-25), for the official SDK.

The SDK is pointed at it with `ALIYUN_SMS_ENDPOINT=http://127.0.0.1:<port>`. Each request's
ACS3-HMAC-SHA256 signature is checked with the secret, so a test proves the SDK signed what
it sent; the `SendSms` parameters are recorded, and the answer is Alibaba Cloud's JSON: "OK"
with a BizId, a business error code (isv.MOBILE_NUMBER_ILLEGAL…), or an HTTP error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.local_server import LocalServer

ACCESS_KEY_ID = "LTAI5tFakeKeyForTests"
ACCESS_KEY_SECRET = "fake-secret-for-tests"


@dataclass
class SmsRequest:
    """One SendSms call as received."""

    action: str
    params: dict[str, str]
    signature_ok: bool

    @property
    def template_param(self) -> dict[str, str]:
        return json.loads(self.params.get("TemplateParam", "{}"))


class FakeAliyun(LocalServer):
    """Serve the SMS API on 127.0.0.1; queue answers with `answer_next`."""

    def __init__(self, key_id: str = ACCESS_KEY_ID, secret: str = ACCESS_KEY_SECRET) -> None:
        self.key_id = key_id
        self.secret = secret
        self.requests: list[SmsRequest] = []
        self._answers: list[tuple[int, dict[str, Any]]] = []

    def answer_next(self, code: str = "OK", *, http_status: int = 200,
                    message: str = "") -> None:
        """Answer the next request with this business code (or HTTP status)."""
        self._answers.append((http_status, {"Code": code, "Message": message or code,
                                            "RequestId": secrets.token_hex(8).upper()}))

    def handle(self, method: str, path: str, headers: Any, body: bytes
               ) -> tuple[int, dict[str, Any]]:
        if not self.record(method, path, headers, body):
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "bad signature",
                         "RequestId": "0"}
        if self._answers:
            status, answer = self._answers.pop(0)
            if answer["Code"] == "OK":
                answer["BizId"] = f"{secrets.randbelow(10**18)}^0"
            return status, answer
        return 200, {"Code": "OK", "Message": "OK", "BizId": f"{secrets.randbelow(10**18)}^0",
                     "RequestId": secrets.token_hex(8).upper()}

    def record(self, method: str, path: str, headers: Any, body: bytes) -> bool:
        """Keep the request (its action, parameters, and whether its signature holds) and say
        whether it is signed with our key."""
        parts = urllib.parse.urlsplit(path)
        params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        params.update(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        signed = self._signature_ok(method, parts, headers, body)
        self.requests.append(SmsRequest(headers.get("x-acs-action", ""), params, signed))
        return signed

    def _signature_ok(self, method: str, parts: urllib.parse.SplitResult, headers: Any,
                      body: bytes) -> bool:
        """Recompute the ACS3-HMAC-SHA256 signature of the request and compare."""
        authorization = headers.get("Authorization", "")
        algorithm, _, rest = authorization.partition(" ")
        fields = dict(item.split("=", 1) for item in rest.split(","))
        if algorithm != "ACS3-HMAC-SHA256" or fields.get("Credential") != self.key_id:
            return False
        names = fields["SignedHeaders"].split(";")
        query = sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        canonical_query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in query)
        canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in names)
        payload_hash = hashlib.sha256(body).hexdigest()
        canonical = "\n".join([method, parts.path or "/", canonical_query, canonical_headers,
                               fields["SignedHeaders"], payload_hash])
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(self.secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, fields.get("Signature", ""))


def _enc(value: str) -> str:
    return urllib.parse.quote(value, safe="-_.~")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAliyun

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload = self.fake.handle("POST", self.path, self.headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


FakeAliyun.handler = _Handler  # defined below the class it serves
