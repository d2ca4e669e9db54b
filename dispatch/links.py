"""Signed member links: act on a case from a phone without logging in.

Each link is signed with `SECRET_KEY`, expires, and serves one purpose only: the purpose is the
salt, so an "accept" link cannot be replayed as "resolve". A link names the member it was sent
to, so the case's timeline says who acted. GET on a link only shows a page; acting takes a POST
from that page (SMS link previewers fetch every URL they see).
"""

from __future__ import annotations

import enum
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


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


def read(purpose: Purpose, token: str) -> tuple[int, int | None]:
    """The (member id, case id) a token names; raises `BadLink`."""
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
