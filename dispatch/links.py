"""Signed member links: act on a case from a phone without logging in.

Each link is signed with `SECRET_KEY`, expires, and serves one purpose only: the purpose is the
salt, so an "accept" link cannot be replayed as "resolve". A link names the member it was sent
to, so the case's timeline says who acted. GET on a link only shows a page; acting takes a POST
from that page (SMS link previewers fetch every URL they see).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from dispatch import clock


class Purpose(enum.StrEnum):
    ACCEPT = "accept"  # 接单
    ON_SITE = "on_site"  # 已到场
    RESOLVE = "resolve"  # 已解决
    HAND_OVER = "hand_over"  # 转交同事
    ESCALATE = "escalate"  # 立即升级
    CASE = "case"  # one case, with every action the member may take
    MEMBER = "member"  # the member's own page: their open cases


#: How long each kind of link works. Acting links are short-lived; the member page lives longest.
LIFETIMES: dict[Purpose, timedelta] = {
    Purpose.ACCEPT: timedelta(days=3),
    Purpose.ON_SITE: timedelta(days=7),
    Purpose.RESOLVE: timedelta(days=14),
    Purpose.HAND_OVER: timedelta(days=7),
    Purpose.ESCALATE: timedelta(days=3),
    Purpose.CASE: timedelta(days=14),
    Purpose.MEMBER: timedelta(days=30),
}


class BadLink(Exception):
    """The link is forged, for another purpose, or expired; the message says which, in Chinese."""


def sign(purpose: Purpose, member_id: int, case_id: int | None = None) -> str:
    """A URL-safe token for `purpose`, naming the member and (except the member page) a case."""
    return _serializer(purpose).dumps([member_id, case_id])


#: A short token: case, member and the minute it was made (base 36), then 72 bits of HMAC.
SHORT = re.compile(r"([0-9a-z]{1,8})\.([0-9a-z]{1,8})\.([0-9a-z]{1,8})\.([A-Za-z0-9_-]{12})")


def short(purpose: Purpose, member_id: int, case_id: int) -> str:
    """A compact token for `purpose` (about 25 characters against the usual 60), for SMS bodies
    where every character counts: the same member, case, purpose and lifetime, signed with
    the same key (HMAC-SHA256, cut to 72 bits), to the minute."""
    minute = int(clock.now().timestamp() // 60)
    body = f"{_b36(case_id)}.{_b36(member_id)}.{_b36(minute)}"
    return f"{body}.{_mac(purpose, body)}"


def short_url(purpose: Purpose, member_id: int, case_id: int) -> str:
    """The absolute link with a short token."""
    return (f"{current_app.config['PUBLIC_BASE_URL']}/m/{purpose}/"
            f"{short(purpose, member_id, case_id)}")


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


def _mac(purpose: Purpose, body: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    digest = hmac.new(key, f"linli.member.{purpose}:{body}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def _read_short(purpose: Purpose, found: re.Match[str]) -> tuple[int, int | None]:
    case, member, minute, mac = found.groups()
    if not hmac.compare_digest(mac, _mac(purpose, f"{case}.{member}.{minute}")):
        raise BadLink("链接无效")
    age = clock.now().timestamp() - int(minute, 36) * 60
    if age > LIFETIMES[purpose].total_seconds():
        raise BadLink("链接已过期，请打开最新的通知短信")
    return int(member, 36), int(case, 36)


def read(purpose: Purpose, token: str) -> tuple[int, int | None]:
    """The (member id, case id) a token, long or short, names; raises `BadLink`."""
    if (found := SHORT.fullmatch(token)) is not None:
        return _read_short(purpose, found)
    try:
        member_id, case_id = _serializer(purpose).loads(
            token, max_age=int(LIFETIMES[purpose].total_seconds()))
    except SignatureExpired:
        raise BadLink("链接已过期，请打开最新的通知短信") from None
    except (BadSignature, ValueError, TypeError):
        raise BadLink("链接无效") from None
    return int(member_id), None if case_id is None else int(case_id)


def url(purpose: Purpose, member_id: int, case_id: int | None = None) -> str:
    """The absolute link for a message body, under `PUBLIC_BASE_URL`."""
    return str(current_app.config["PUBLIC_BASE_URL"]) + path(purpose, member_id, case_id)


def path(purpose: Purpose, member_id: int, case_id: int | None = None) -> str:
    """The link's path on this site (the pages of `dispatch.member.pages`)."""
    return f"/m/{purpose}/{sign(purpose, member_id, case_id)}"


def _serializer(purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"linli.member.{purpose}")
