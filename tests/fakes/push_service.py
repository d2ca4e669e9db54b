"""A local Web Push service: the browser vendor's side of a push, for tests.

It hands out subscriptions the way a browser would (an endpoint on this server, a fresh P-256
key pair and auth secret), and for each push it receives checks the VAPID `Authorization`
header (the JWT's ES256 signature against the key in `k=`, its audience and expiry), then
decrypts the aes128gcm payload with `http_ece`, as the receiving browser would. It answers
201 with a Location, or whatever status a test asks for (410: the subscription is gone).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.fakes.local_server import LocalServer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def vapid_keys() -> tuple[str, str]:
    """A fresh (VAPID_PRIVATE_KEY, VAPID_PUBLIC_KEY) pair in the form the settings take."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
    return b64url(private), b64url(public)


@dataclass
class Received:
    """One push as the browser gets it: the decrypted payload and the headers checked."""

    path: str
    payload: dict[str, Any]
    ttl: int
    urgency: str | None
    claims: dict[str, Any]
    vapid_key: str


@dataclass
class Subscriber:
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    answer: int = 201
    received: list[Received] = field(default_factory=list)


class PushService(LocalServer):
    """The fake push service; `subscribe()` makes a browser subscription on it."""

    def __init__(self) -> None:
        self.subscribers: dict[str, Subscriber] = {}
        self.errors: list[str] = []

    def subscribe(self) -> dict[str, Any]:
        """A browser's `PushSubscription.toJSON()` for a new subscriber here."""
        path = f"/push/{secrets.token_urlsafe(16)}"
        subscriber = Subscriber(ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(16))
        self.subscribers[path] = subscriber
        public = subscriber.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.url + path,
                "keys": {"p256dh": b64url(public), "auth": b64url(subscriber.auth)}}

    def received(self, subscription: dict[str, Any]) -> list[Received]:
        return self.subscribers[subscription["endpoint"].removeprefix(self.url)].received

    def answer_with(self, subscription: dict[str, Any], status: int) -> None:
        self.subscribers[subscription["endpoint"].removeprefix(self.url)].answer = status

    def accept(self, path: str, headers: Any, body: bytes) -> int:
        """Check and decrypt one push; returns the status to answer."""
        subscriber = self.subscribers.get(path)
        if subscriber is None:
            return 404
        if subscriber.answer != 201:
            return subscriber.answer
        try:
            claims, key = self._check_vapid(headers.get("Authorization", ""))
            assert headers.get("Content-Encoding") == "aes128gcm", "not aes128gcm"
            plain = http_ece.decrypt(body, private_key=subscriber.key,
                                     auth_secret=subscriber.auth, version="aes128gcm")
        except (AssertionError, InvalidSignature, ValueError, KeyError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return 400
        subscriber.received.append(Received(path, json.loads(plain), int(headers["TTL"]),
                                            headers.get("Urgency"), claims, key))
        return 201

    def _check_vapid(self, header: str) -> tuple[dict[str, Any], str]:
        """Verify `vapid t=<jwt>, k=<key>` as a push service does (RFC 8292)."""
        assert header.startswith("vapid "), f"not a VAPID header: {header!r}"
        params = dict(part.strip().split("=", 1) for part in header[6:].split(","))
        token, key = params["t"], params["k"]
        head, body, signature = token.split(".")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        raw = unb64url(signature)
        public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                           int.from_bytes(raw[32:], "big")),
                      f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        assert json.loads(unb64url(head)) == {"typ": "JWT", "alg": "ES256"}, "bad JWT header"
        claims = json.loads(unb64url(body))
        assert claims["aud"] == self.url, f"audience {claims['aud']!r}"
        assert time.time() < claims["exp"] <= time.time() + 24 * 3600, "bad expiry"
        return claims, key


class _Handler(BaseHTTPRequestHandler):
    service: PushService

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.fake.accept(self.path, self.headers, body)
        self.send_response(status)
        if status == 201:
            self.send_header("Location", f"{self.fake.url}/message/{secrets.token_hex(8)}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


PushService.handler = _Handler  # defined below the class it serves
