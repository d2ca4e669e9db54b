"""WeCom (企业微信) application messages: alert cards with buttons, and the clicks coming back.

A member's contact is their WeCom userid. An alert is a `template_card` of type
`button_interaction` (place, category, urgency, how many residents reported it; buttons 接单,
转交, 查看) sent by the application `WECOM_AGENT_ID`; once somebody accepts, the card of
everyone paged is updated ("已由 王师傅 接单") with the `response_code` the send returned.
Clicks come back to the application's callback URL as encrypted XML: `CallbackCrypto` checks
the signature and the timestamp, decrypts, and hands back a `CardClick`; acting on it is the
caller's business.

The documented protocol is implemented here rather than through wechatpy: wechatpy 1.8.18 (the
current 1.x) has no `template_card` or `update_template_card`, fetches its token from a fixed
qyapi.weixin.qq.com URL (no test server or private deployment), retries a rejected token without
limit, and its callback crypto neither refuses replayed timestamps nor compares signatures in
constant time. What it would save is a few dozen lines of the standard library and `cryptography`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from dispatch.channels import webapi
from dispatch.channels.base import Form, OutgoingMessage, SendResult

TIMEOUT = 10.0
#: The access token was rejected or has expired: fetch a new one and try the call once more.
TOKEN_REJECTED = frozenset({40014, 42001})
#: WeCom's answers that may pass by themselves: system busy, API frequency limits.
RETRYABLE = frozenset({-1, 45009, 45033, 45047})
#: A token is fetched anew this long before WeCom says it expires.
TOKEN_MARGIN_SECONDS = 60.0
#: Callbacks older (or newer) than this are refused as replays.
REPLAY_WINDOW_SECONDS = 300
#: Button keys of the alert card, as they come back in a click.
ACCEPT, HAND_OVER, VIEW = "accept", "handover", "view"


@dataclass(frozen=True, slots=True)
class AlertCard:
    """What an alert card shows; `task_id` names the card in WeCom (unique per application:
    letters, digits, `_-@`, up to 128 bytes) and comes back with every click on it."""

    task_id: str
    title: str
    place: str
    category: str
    urgency: str
    reports: int
    view_url: str | None = None


def card_body(card: AlertCard) -> dict[str, Any]:
    """The `template_card` of type `button_interaction` for an alert."""
    view: dict[str, Any] = ({"text": "查看", "style": 2, "type": 1, "url": card.view_url}
                            if card.view_url else {"text": "查看", "style": 2, "key": VIEW})
    return {
        "card_type": "button_interaction",
        "source": {"desc": "邻里"},
        "main_title": {"title": card.title[:36], "desc": card.place[:44]},
        "horizontal_content_list": [
            {"keyname": "地点", "value": card.place[:30]},
            {"keyname": "类别", "value": card.category[:30]},
            {"keyname": "紧急程度", "value": card.urgency[:30]},
            {"keyname": "反映人数", "value": f"{card.reports} 位居民"},
        ],
        "task_id": card.task_id,
        "button_list": [{"text": "接单", "style": 1, "key": ACCEPT},
                        {"text": "转交", "style": 2, "key": HAND_OVER}, view],
    }


class WeComClient:
    """WeCom's server API for one application: the access token, sending and updating cards.

    The token is kept until shortly before it expires, shared by the threads of one process,
    and fetched anew when WeCom rejects it (40014, 42001): the call is then made once more.
    """

    def __init__(self, corp_id: str, agent_id: int, secret: str, *,
                 base_url: str, timeout: float = TIMEOUT) -> None:
        self.corp_id, self.agent_id, self.secret = corp_id, agent_id, secret
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self._token: str | None = None
        self._token_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WeComClient:
        return cls(str(config["WECOM_CORP_ID"]), int(config["WECOM_AGENT_ID"]),
                   str(config["WECOM_SECRET"]), base_url=str(config["WECOM_API_BASE_URL"]))

    def send_card(self, userid: str, card: AlertCard) -> SendResult:
        """Send the alert card to one member; the result's `follow_up` updates it later."""
        payload = {"touser": userid, "msgtype": "template_card", "agentid": self.agent_id,
                   "template_card": card_body(card), "enable_duplicate_check": 1,
                   "duplicate_check_interval": 1800}
        return self._call("message/send", payload)

    def update_card(self, response_code: str, text: str) -> SendResult:
        """Replace the buttons of a sent card, for everyone it went to, with `text`."""
        return self._call("message/update_template_card", {
            "atall": 1, "agentid": self.agent_id, "response_code": response_code,
            "button": {"replace_name": text[:20]}})

    def _call(self, path: str, payload: dict[str, Any]) -> SendResult:
        for attempt in (1, 2):
            try:
                token = self._access_token()
                answer = webapi.call("POST", self._url(path, access_token=token), payload,
                                     timeout=self.timeout)
            except webapi.Unreachable as error:
                return SendResult.failed(error.code, str(error), retryable=True)
            except TokenRefused as error:
                return SendResult.failed(error.code, str(error), retryable=error.retryable)
            errcode = _errcode(answer)
            if errcode in TOKEN_REJECTED and attempt == 1:
                self._forget(token)
                continue
            return _result(answer, errcode)
        raise AssertionError("unreachable")  # the loop returns on its second pass

    def _access_token(self) -> str:
        with self._lock:
            if self._token is not None and time.monotonic() < self._token_until:
                return self._token
            try:
                answer = webapi.call("GET", self._url("gettoken", corpid=self.corp_id,
                                                      corpsecret=self.secret),
                                     timeout=self.timeout)
            except webapi.Unreachable as error:
                raise TokenRefused(error.code, str(error), retryable=True) from None
            errcode = _errcode(answer)
            token = answer.body.get("access_token")
            if errcode != 0 or not isinstance(token, str) or not token:
                retryable = answer.status >= 500 or errcode in RETRYABLE
                raise TokenRefused(f"wecom-token-{errcode}"[:16],
                                   f"gettoken: {errcode} {answer.body.get('errmsg', '')}",
                                   retryable=retryable)
            lifetime = float(answer.body.get("expires_in") or 7200)
            self._token = token
            self._token_until = time.monotonic() + lifetime - TOKEN_MARGIN_SECONDS
            return token

    def _forget(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _url(self, path: str, **query: str) -> str:
        return f"{self.base_url}/cgi-bin/{path}?{urllib.parse.urlencode(query)}"


class WeComSender:
    """The WeCom channel: an outbox message to a member's userid is an alert card, or the
    update of a card sent before (`OutgoingMessage.update_of`)."""

    form: Form = "card"
    paced = False  # WeCom has its own per-user limits; a card buzzes once
    two_way = False  # the card's buttons answer, not replies
    looks_up = False

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.client = WeComClient.from_config(config)

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.update_of:
            return self.client.update_card(message.update_of, message.text)
        return self.client.send_card(message.to, AlertCard(**message.card))


class TokenRefused(Exception):
    """WeCom gave no access token (wrong secret, or unreachable)."""

    def __init__(self, code: str, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.code, self.retryable = code, retryable


def _errcode(answer: webapi.Answer) -> int:
    try:
        return int(answer.body.get("errcode", 0 if answer.status == 200 else -1))
    except (TypeError, ValueError):
        return -1


def _result(answer: webapi.Answer, errcode: int) -> SendResult:
    """WeCom's answer as a `SendResult` (errcode 0 with an invalid user is a failure too)."""
    body = answer.body
    if answer.status >= 500 or answer.status == 429:
        return SendResult.failed(f"http-{answer.status}", f"HTTP {answer.status}",
                                 retryable=True)
    if errcode != 0:
        return SendResult.failed(f"wecom-{errcode}"[:16], f"{errcode}: {body.get('errmsg', '')}",
                                 retryable=errcode in RETRYABLE)
    if body.get("invaliduser"):
        return SendResult.failed("wecom-bad-user", f"invaliduser: {body['invaliduser']}",
                                 retryable=False)
    return SendResult.sent(str(body.get("msgid") or "updated"),
                           follow_up=body.get("response_code") or None)


class CallbackRefused(ValueError):
    """A callback that is not WeCom's, or not now: a wrong signature, a replay, bad XML."""


@dataclass(frozen=True, slots=True)
class CardClick:
    """Who clicked which button of which card (`task_id`); `response_code` updates that card."""

    userid: str
    button: str
    task_id: str
    response_code: str
    agent_id: str
    created_at: datetime


class CallbackCrypto:
    """WeCom's callback encryption (AES-256-CBC with the EncodingAESKey, SHA-1 signature).

    Every callback is refused unless its `msg_signature` is the SHA-1 of the sorted token,
    timestamp, nonce and ciphertext, its timestamp is within five minutes of `now`, and the
    plaintext names this corp id.
    """

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str) -> None:
        key = base64.b64decode(encoding_aes_key + "=")
        if len(encoding_aes_key) != 43 or len(key) != 32:
            raise ValueError("the EncodingAESKey must be 43 characters (a 32-byte key)")
        self.token, self.key, self.corp_id = token, key, corp_id

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CallbackCrypto:
        return cls(str(config["WECOM_TOKEN"]), str(config["WECOM_AES_KEY"]),
                   str(config["WECOM_CORP_ID"]))

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str,
                   now: datetime) -> str:
        """The answer to WeCom's check of the callback URL (the decrypted `echostr`)."""
        self._check(msg_signature, timestamp, nonce, echostr, now)
        return self._decrypt(echostr)

    def open(self, msg_signature: str, timestamp: str, nonce: str, body: bytes,
             now: datetime) -> dict[str, str]:
        """The fields of an encrypted callback's XML, after every check."""
        encrypted = _fields(body).get("Encrypt", "")
        self._check(msg_signature, timestamp, nonce, encrypted, now)
        return _fields(self._decrypt(encrypted).encode())

    def card_click(self, msg_signature: str, timestamp: str, nonce: str, body: bytes,
                   now: datetime) -> CardClick | None:
        """A button click on a card, or None for any other event (entering the app…)."""
        fields = self.open(msg_signature, timestamp, nonce, body, now)
        if fields.get("MsgType") != "event" or fields.get("Event") != "template_card_event":
            return None
        try:
            created = datetime.fromtimestamp(int(fields.get("CreateTime", "")), UTC)
        except ValueError:
            raise CallbackRefused("CreateTime is not a timestamp") from None
        return CardClick(fields.get("FromUserName", ""), fields.get("EventKey", ""),
                         fields.get("TaskId", ""), fields.get("ResponseCode", ""),
                         fields.get("AgentID", ""), created)

    def _check(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str,
               now: datetime) -> None:
        if not encrypted:
            raise CallbackRefused("no Encrypt field")
        expected = signature(self.token, timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), msg_signature.strip().lower().encode()):
            raise CallbackRefused("wrong msg_signature")
        age = abs(now.timestamp() - int(timestamp)) if timestamp.isdigit() else None
        if age is None or age > REPLAY_WINDOW_SECONDS:
            raise CallbackRefused("timestamp outside five minutes of now (a replay?)")

    def _decrypt(self, encrypted: str) -> str:
        try:
            data = base64.b64decode(encrypted, validate=True)
        except ValueError:
            raise CallbackRefused("Encrypt is not base64") from None
        if not data or len(data) % 16:
            raise CallbackRefused("Encrypt is not whole AES blocks")
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= 32 or plain[-pad:] != bytes([pad]) * pad:
            raise CallbackRefused("bad padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise CallbackRefused("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        message, receiver = plain[20:20 + length], plain[20 + length:]
        if len(message) != length or receiver.decode("utf-8", "replace") != self.corp_id:
            raise CallbackRefused("the plaintext names another corp id")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackRefused("plaintext is not UTF-8") from None


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """WeCom's `msg_signature`: SHA-1 of the four strings sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode(),
                        usedforsecurity=False).hexdigest()


#: Callbacks are a few hundred bytes; anything far larger is not WeCom's.
MAX_CALLBACK = 64 * 1024


def _fields(xml: bytes) -> dict[str, str]:
    """The top-level elements of a WeCom XML packet (no DTD, no entities: refused outright)."""
    if len(xml) > MAX_CALLBACK or b"<!DOCTYPE" in xml.upper() or b"<!ENTITY" in xml.upper():
        raise CallbackRefused("not a WeCom XML packet")
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        raise CallbackRefused("malformed XML") from None
    return {child.tag: (child.text or "").strip() for child in root}
