"""WeCom (企业微信) callbacks: a member pressed a button on an alert card.

WeCom posts every click to the application's callback URL as encrypted XML; nothing is done
unless its signature, timestamp (five minutes) and corp id check out (`CallbackCrypto`).
接单 accepts the case through the lifecycle exactly as an SMS reply "1" does: idempotent, and a
click on an old card of a case that has moved on changes nothing (the row's case and member
are named by the card, the lifecycle decides). Everyone else paged hears who took it the usual
way (`lifecycle` queues "taken" messages), which on WeCom updates their cards; the clicker's own
card is updated the same way. 转交 and 查看 open the member's case page, where hand-over is
done with a colleague chosen; the card's 查看 button is a link already.

Without WeCom configured the route does not exist (404).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, current_app, request

from dispatch import clock, outbox
from dispatch.case import lifecycle
from dispatch.channels.wecom import ACCEPT, CallbackCrypto, CallbackRefused, CardClick
from dispatch.db import db
from dispatch.models import Channel, Notification

log = logging.getLogger(__name__)

bp = Blueprint("wecom", __name__, url_prefix="/webhooks/wecom")

#: Cards are named `linli-<outbox row id>` (`dispatch.outbox.texts.card`).
TASK_PREFIX = "linli-"


def _crypto() -> CallbackCrypto:
    if not current_app.config.get("WECOM_CORP_ID"):
        abort(404)
    return CallbackCrypto.from_config(current_app.config)


@bp.get("/callback")
def verify() -> Any:
    """WeCom checks the URL when it is saved in its console: answer the decrypted echo."""
    crypto = _crypto()
    try:
        return crypto.verify_url(request.args.get("msg_signature", ""),
                                 request.args.get("timestamp", ""),
                                 request.args.get("nonce", ""), request.args.get("echostr", ""),
                                 clock.now())
    except CallbackRefused as refused:
        log.warning("wecom: URL check refused: %s", refused)
        abort(403)


@bp.post("/callback")
def callback() -> Any:
    """A click on a card. Answered empty (WeCom needs no reply) once it is acted on."""
    crypto = _crypto()
    try:
        click = crypto.card_click(request.args.get("msg_signature", ""),
                                  request.args.get("timestamp", ""),
                                  request.args.get("nonce", ""), request.get_data(), clock.now())
    except CallbackRefused as refused:
        log.warning("wecom: callback refused: %s", refused)
        abort(403)
    if click is not None and click.button == ACCEPT:
        accept(click)
    return ""


def accept(click: CardClick) -> None:
    """Accept the card's case as the member it was sent to (commits)."""
    row = _card_row(click)
    if row is None or row.case_id is None or row.member_id is None:
        log.info("wecom: a click on card %r, which is not ours to act on", click.task_id[:64])
        return
    now = clock.now()
    try:
        case = lifecycle.accept(row.case_id, row.member_id, now)
    except lifecycle.ActionRefused as refused:
        log.info("wecom: accept on case %s refused: %s", row.case_id, refused)
        return
    if case.accepted_by_id == row.member_id and row.member is not None \
            and row.contact is not None:
        # Their own card says so too, as everyone else's does.
        outbox.add(case, row.member, row.contact, outbox.Purpose.TAKEN, row.body,
                   dedupe_key=f"c{case.id}:t{case.token}:taken:m{row.member_id}:own",
                   now=now, rung=row.rung)
        db.session.commit()


def _card_row(click: CardClick) -> Notification | None:
    """The outbox row the card was sent as, if it went to the member who clicked."""
    number = click.task_id.removeprefix(TASK_PREFIX)
    if not click.task_id.startswith(TASK_PREFIX) or not number.isdigit() or len(number) > 18:
        return None
    row = db.session.get(Notification, int(number))
    if row is None or row.channel != Channel.WECOM or row.to_address != click.userid:
        return None
    return row
