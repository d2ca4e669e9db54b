"""Web Push subscriptions, from the member's phone.

A member opens "在本机开启推送" from their member page (`/m/push/<member token>`); the page
registers `/sw.js`, subscribes with our VAPID public key and posts the subscription here. It is
stored as a pending `Contact` on the push channel (the endpoint is its address, the keys beside
it) until the member types the code texted to their phone (`subscribe`, `confirm`); then push
takes its place, first, in the member's channel order like SMS and calls. The sending is
`dispatch.channels.push`; `flask push keys` makes a VAPID key pair.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Blueprint, Response, abort, current_app, render_template, request

from dispatch import clock, links, outbox
from dispatch.db import db
from dispatch.links import BadLink
from dispatch.models import Channel, Contact, ContactStatus, Member
from dispatch.outbox import Purpose

bp = Blueprint("push", __name__)

MAX_ENDPOINT = 500


# ---------------------------------------------------------------------------------------------
# Subscribing, from the member's phone


@bp.get("/sw.js")
def service_worker() -> Any:
    """The service worker, served from the root so it may control the member pages."""
    script = Path(current_app.static_folder or "static", "sw.js").read_text(encoding="utf-8")
    return Response(script, mimetype="text/javascript",
                    headers={"Service-Worker-Allowed": "/", "Cache-Control": "no-cache"})


@bp.get("/m/push/<token>")
def enable_page(token: str) -> Any:
    """A page with one button: allow notifications on this phone."""
    member = _member(token)
    return render_template("member/push.html", member=member, token=token,
                           public_key=current_app.config.get("VAPID_PUBLIC_KEY"),
                           member_url=links.url(links.Purpose.MEMBER, member.id))


#: How long the code texted to the member confirms a subscription, and how many wrong codes
#: end it (a guesser has 5 in a million); at most this many subscriptions wait at once, and a
#: new code for one is sent at most once a minute, so a link holder cannot flood the phone.
CODE_LIFETIME = timedelta(minutes=15)
CODE_TRIES = 5
MAX_PENDING = 3
CODE_RESEND = timedelta(minutes=1)


@bp.post("/m/push/<token>/subscribe")
def subscribe(token: str) -> Any:
    """Take the browser's push subscription; it counts once the member confirms it.

    The member link proves only that someone holds a link (it lives 30 days and may be
    forwarded), while a confirmed subscription goes first in the member's channel order and
    receives the case details. So the subscription is kept pending, a six-digit code goes to
    the member's working SMS contact through the outbox, and only `confirm` with that code,
    typed into this browser, makes it a working contact. The signed member token is the
    credential (no session, hence no CSRF token); a subscription already confirmed with the
    same keys is left as it is.
    """
    member = _member(token)
    if not current_app.config.get("VAPID_PUBLIC_KEY"):
        abort(404)
    body = request.get_json(silent=True) or {}
    endpoint = str(body.get("endpoint") or "")
    keys = body.get("keys") or {}
    if not _valid_endpoint(endpoint) or not isinstance(keys, dict) or not (
            keys.get("p256dh") and keys.get("auth")):
        return {"ok": False, "error": "无效的订阅"}, 400
    keys = {"p256dh": str(keys["p256dh"]), "auth": str(keys["auth"])}
    now = clock.now()
    _forget_expired(member, now)
    contact = next((c for c in member.contacts
                    if c.channel == Channel.PUSH and c.address == endpoint), None)
    if contact is not None and contact.status == ContactStatus.OK and contact.push_keys == keys:
        return {"ok": True}
    phone = next((c for c in member.contacts
                  if c.channel == Channel.SMS and c.status == ContactStatus.OK), None)
    if phone is None:
        return {"ok": False,
                "error": "没有可用的短信号码接收验证码，请联系社区工作人员核对号码"}, 409
    if contact is None:
        waiting = [c for c in member.contacts if c.status == ContactStatus.PENDING]
        if len(waiting) >= MAX_PENDING:
            return {"ok": False, "error": "待确认的推送过多，请稍后再试"}, 429
        contact = Contact(channel=Channel.PUSH, address=endpoint, priority=0, created_at=now,
                          status=ContactStatus.PENDING)
        member.contacts.append(contact)
    elif contact.status == ContactStatus.PENDING and contact.confirm_until is not None and \
            contact.confirm_until - CODE_LIFETIME + CODE_RESEND > now:
        return {"ok": False, "confirm": True, "message": "验证码已发送，请查看短信"}, 202
    contact.status = ContactStatus.PENDING
    contact.push_keys = keys
    db.session.flush()  # the code is bound to the contact's id
    code = f"{secrets.randbelow(10**6):06d}"
    contact.confirm_hash = _code_hash(contact, code)
    contact.confirm_until, contact.confirm_tries = now + CODE_LIFETIME, 0
    outbox.add_all(None, [outbox.Draft(
        member, phone, Purpose.PUSH_CODE,
        f"【邻里】推送验证码 {code}，{int(CODE_LIFETIME.total_seconds() // 60)}分钟内有效。"
        "仅在您本人在自己手机上开启推送时填写，请勿告诉他人；不是您操作请忽略。",
        dedupe_key=f"push-code-{contact.id}-{int(now.timestamp())}")], now=now)
    db.session.commit()
    return {"ok": False, "confirm": True,
            "message": "验证码已通过短信发到您登记的手机，请在下面填写"}, 202


@bp.post("/m/push/<token>/confirm")
def confirm(token: str) -> Any:
    """Make a pending subscription the member's push contact, given the code texted to them."""
    member = _member(token)
    body = request.get_json(silent=True) or {}
    endpoint, code = str(body.get("endpoint") or ""), str(body.get("code") or "").strip()
    now = clock.now()
    contact = next((c for c in member.contacts if c.channel == Channel.PUSH
                    and c.address == endpoint and c.status == ContactStatus.PENDING), None)
    if contact is None or contact.confirm_until is None or contact.confirm_until <= now:
        return {"ok": False, "error": "验证码已失效，请重新开启推送"}, 400
    if not hmac.compare_digest(contact.confirm_hash or "", _code_hash(contact, code)):
        contact.confirm_tries += 1
        if contact.confirm_tries >= CODE_TRIES:
            member.contacts.remove(contact)
        db.session.commit()
        return {"ok": False, "error": "验证码不正确"}, 400
    contact.status = ContactStatus.OK
    contact.confirm_hash, contact.confirm_until, contact.confirm_tries = None, None, 0
    if "push" not in (member.channel_order or []):
        member.channel_order = ["push", *(member.channel_order or [])]
    db.session.commit()
    return {"ok": True}


def _code_hash(contact: Contact, code: str) -> str:
    """The code bound to this subscription and signed with SECRET_KEY: a copy of the database
    alone does not give the codes of subscriptions waiting."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, f"push-code:{contact.id}:{code}".encode(), hashlib.sha256).hexdigest()


def _forget_expired(member: Member, now: datetime) -> None:
    """Drop the member's pending subscriptions whose code has expired unused."""
    for contact in [c for c in member.contacts if c.status == ContactStatus.PENDING
                    and (c.confirm_until is None or c.confirm_until <= now)]:
        member.contacts.remove(contact)


@bp.cli.command("keys")
def keys_command() -> None:
    """Print a new VAPID key pair for VAPID_PRIVATE_KEY and VAPID_PUBLIC_KEY (`flask push keys`)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
    click.echo(f"VAPID_PRIVATE_KEY={_b64url(private)}")
    click.echo(f"VAPID_PUBLIC_KEY={_b64url(public)}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


#: The browsers' push services (Chrome and Edge's FCM, Firefox's autopush, Safari's, Windows'):
#: an endpoint anywhere else would hand the signed links in each push to whoever runs it.
#: A deployment may list others in `PUSH_SERVICE_HOSTS`; a leading dot allows subdomains.
PUSH_SERVICE_HOSTS = ("fcm.googleapis.com", "updates.push.services.mozilla.com",
                      "web.push.apple.com", ".notify.windows.com", ".push.apple.com")


def _valid_endpoint(endpoint: str) -> bool:
    """An https URL at a known browser push service; plain http anywhere where a test allows."""
    parts = urlsplit(endpoint)
    if len(endpoint) > MAX_ENDPOINT or not parts.hostname:
        return False
    if current_app.config.get("PUSH_ALLOW_HTTP"):  # the tests' local push service
        return parts.scheme in ("https", "http")
    hosts = current_app.config.get("PUSH_SERVICE_HOSTS") or PUSH_SERVICE_HOSTS
    host = parts.hostname.lower()
    return parts.scheme == "https" and any(
        host == allowed or (allowed.startswith(".") and host.endswith(allowed))
        for allowed in hosts)


def _member(token: str) -> Member:
    try:
        member_id, _ = links.read(links.Purpose.MEMBER, token)
    except BadLink:
        abort(404)
    member = db.session.get(Member, member_id)
    if member is None or not member.active:
        abort(404)
    return member
