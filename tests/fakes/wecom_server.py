"""A local stand-in for WeCom's server API, and WeCom's side of the callback encryption.

`FakeWeCom` serves `gettoken`, `message/send` and `message/update_template_card` under
`/cgi-bin/` (point `WECOM_API_BASE_URL` at it): it issues access tokens that it can expire or
revoke (answering 42001 or 40014 as WeCom does), records what was sent, and answers with a
msgid and a response_code. `encrypt_callback` builds an encrypted click the way WeCom does, from
the documented algorithm (written here apart from `dispatch.channels.wecom`, and checked against
WeCom's published sample in the tests).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.fakes.local_server import LocalServer

CORP_ID = "ww5823bf96d3bd56c7"
SECRET = "fake-wecom-secret-for-tests"
TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


class FakeWeCom(LocalServer):
    """WeCom's API on 127.0.0.1; `answer_next` queues an errcode for the next API call."""

    def __init__(self, corp_id: str = CORP_ID, secret: str = SECRET,
                 expires_in: int = 7200) -> None:
        self.corp_id, self.secret, self.expires_in = corp_id, secret, expires_in
        self.token_fetches = 0
        self.sent: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self._valid: set[str] = set()
        self._expired: set[str] = set()
        self._answers: list[tuple[int, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (42001)."""
        with self._lock:
            self._expired |= self._valid
            self._valid.clear()

    def revoke_tokens(self) -> None:
        """Every token issued so far is now unknown (40014), as after a secret is reset."""
        with self._lock:
            self._valid.clear()

    def answer_next(self, errcode: int = 0, *, http_status: int = 200, **extra: Any) -> None:
        self._answers.append((http_status, {"errcode": errcode, "errmsg": "queued", **extra}))

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        endpoint = parts.path.removeprefix("/cgi-bin/")
        with self._lock:
            self.calls.append(endpoint)
            if endpoint == "gettoken":
                return self._token(query)
            token = query.get("access_token", "")
            if token in self._expired:
                return 200, {"errcode": 42001, "errmsg": "access_token expired"}
            if token not in self._valid:
                return 200, {"errcode": 40014, "errmsg": "invalid access_token"}
            if self._answers:
                return self._answers.pop(0)
            payload = json.loads(body)
            if endpoint == "message/send":
                self.sent.append(payload)
                return 200, {"errcode": 0, "errmsg": "ok", "invaliduser": "",
                             "msgid": secrets.token_urlsafe(12),
                             "response_code": secrets.token_urlsafe(16)}
            if endpoint == "message/update_template_card":
                self.updates.append(payload)
                return 200, {"errcode": 0, "errmsg": "ok", "invaliduser": []}
        return 404, {"errcode": 60000, "errmsg": "no such API"}

    def _token(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_fetches += 1
        if query.get("corpid") != self.corp_id or query.get("corpsecret") != self.secret:
            return 200, {"errcode": 40001, "errmsg": "invalid credential"}
        token = secrets.token_urlsafe(24)
        self._valid.add(token)
        return 200, {"errcode": 0, "errmsg": "ok", "access_token": token,
                     "expires_in": self.expires_in}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeWeCom

    def _serve(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload = self.fake.handle(method, self.path, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


FakeWeCom.handler = _Handler  # defined below the class it serves


@dataclass(frozen=True)
class EncryptedCallback:
    """What WeCom posts for an event: the query string's three values and the XML body."""

    msg_signature: str
    timestamp: str
    nonce: str
    body: bytes


def wecom_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """SHA-1 over the four values sorted as strings and concatenated (WeCom's 消息体签名)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode(),
                        usedforsecurity=False).hexdigest()


def wecom_encrypt(plain: str, aes_key: str, receive_id: str, prefix: bytes | None = None) -> str:
    """WeCom's message encryption: base64(AES-256-CBC(random16 + len(msg) as 4 bytes big-endian
    + msg + receive id, PKCS#7 padded to 32 bytes)), the key being the decoded EncodingAESKey
    and the IV its first 16 bytes."""
    key = base64.b64decode(aes_key + "=")
    message = plain.encode()
    data = (prefix or secrets.token_hex(8).encode()) + struct.pack("!I", len(message)) + \
        message + receive_id.encode()
    pad = 32 - len(data) % 32
    data += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


def encrypt_callback(event_xml: str, *, timestamp: int, token: str = TOKEN,
                     aes_key: str = AES_KEY, corp_id: str = CORP_ID,
                     nonce: str | None = None, agent_id: str = "1000002") -> EncryptedCallback:
    """An encrypted callback as WeCom posts it to the application's URL."""
    nonce = nonce or str(secrets.randbelow(10**10))
    encrypted = wecom_encrypt(event_xml, aes_key, corp_id)
    body = (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<AgentID><![CDATA[{agent_id}]]></AgentID></xml>").encode()
    return EncryptedCallback(wecom_signature(token, str(timestamp), nonce, encrypted),
                             str(timestamp), nonce, body)


def card_click_xml(*, userid: str, button: str, task_id: str, response_code: str,
                   created: int, agent_id: str = "1000002", corp_id: str = CORP_ID) -> str:
    """The plaintext of a template_card_event: a member clicked a button of a card."""
    return (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>"
            f"<FromUserName><![CDATA[{userid}]]></FromUserName>"
            f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[template_card_event]]></Event>"
            f"<EventKey><![CDATA[{button}]]></EventKey><TaskId><![CDATA[{task_id}]]></TaskId>"
            f"<CardType><![CDATA[button_interaction]]></CardType>"
            f"<ResponseCode><![CDATA[{response_code}]]></ResponseCode>"
            f"<AgentID>{agent_id}</AgentID></xml>")
