"""Voice: a resident's one-tap call, and the urgent alert calls to members, as TwiML.

**The resident's call.** The sticker's call button dials `TWILIO_VOICE_NUMBER`, a pause, and
the sticker's code as digits (`qr.codes.dial_digits`); a resident who dialled by hand types
them. The greeting plays inside a `<Gather>`, so digits sent during it count. Knowing the
place, the call becomes a report (kind *call*) on the case of that place, and the on-duty
responders are dialled one after another, building rung first, then the grid, then the
community: each `<Dial>` posts its `DialCallStatus` to `dialed`, which rings the next person
on busy, no answer or a failure. Voicemail must not count as an answer, so the member first
hears a whisper naming the place and must press 1; pressing 1 also accepts the case. Who
answered after how long, and who was tried, lands in `Report.call_outcome`.

The plan (who to ring, in which order) is fixed when the place is known and kept on the
report, so a roster edit during the call does not reshuffle it. Every URL Twilio calls back
carries the report and the position in the plan; Twilio signs the full URL, so they cannot be
tampered with.

**Alert calls.** `dispatch.channels.twilio_voice` places them; `alert` reads the case and
gathers 1 (accept) or 2 (pass).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, request
from twilio.twiml.voice_response import VoiceResponse

from dispatch import clock, security
from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.case.timeline import EventKind, record
from dispatch.channels.twilio_client import public_url
from dispatch.community import settings
from dispatch.db import db
from dispatch.hooks.sms import twilio_signed, twiml
from dispatch.models import (
    Channel,
    Community,
    Member,
    Notification,
    NotificationStatus,
    Place,
    PlaceKind,
    Report,
    ReportKind,
    Rung,
    Sticker,
    StickerStatus,
)
from dispatch.outbox.receipts import apply_receipt
from dispatch.outbox.replies import describe
from dispatch.resident import phones
from dispatch.roster import duty, routing
from qr import codes

bp = Blueprint("voice", __name__, url_prefix="/webhooks/twilio/voice")

LANGUAGE = "cmn-CN"
VOICE = "Polly.Zhiyu"
#: Seconds each responder's phone rings before the next one is tried.
RING_SECONDS = 20
#: Rungs a resident's call climbs; the district is a referral, not a phone call.
CALL_RUNGS = (Rung.BUILDING, Rung.GRID, Rung.COMMUNITY)
#: Twilio's call states that end an alert call without anyone listening.
UNANSWERED = {"busy", "no-answer", "failed", "canceled"}


def say(response: Any, text: str, **options: Any) -> None:
    """Speak Mandarin."""
    response.say(text, language=LANGUAGE, voice=VOICE, **options)


def url(endpoint: str, **params: object) -> str:
    """An absolute URL of one of these routes, as Twilio will request (and sign) it."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return public_url(f"{bp.url_prefix}/{endpoint}" + (f"?{query}" if query else ""))


# ---------------------------------------------------------------------------------------------
# The resident's call


@bp.post("/incoming")
@twilio_signed
def incoming() -> Response:
    """Greet the caller and listen for the sticker's digits."""
    response = VoiceResponse()
    caller = phones.try_normalise(request.form.get("From", ""))
    if caller is not None and phones.is_blocked(caller):
        say(response, "抱歉，本号码已被限制使用。")
        response.hangup()
        return twiml(response)
    attempt = security.number(request.args.get("try"), 1)
    gather = response.gather(input="dtmf", num_digits=codes.DIAL_DIGITS, finish_on_key="#",
                             timeout=8, action=url("place", attempt=attempt))
    if attempt == 1:
        say(gather, "您好，这里是邻里社区服务热线。")
    say(gather, "请输入贴纸上的号码，以井号键结束。")
    _no_digits(response, attempt)
    return twiml(response)


def _no_digits(response: VoiceResponse, attempt: int) -> None:
    """After a silent gather: ask once more, then name the hotline and say goodbye."""
    if attempt < 2:
        response.redirect(url("incoming", **{"try": attempt + 1}))
        return
    hotline = _only_hotline()
    say(response, "没有收到号码。请扫描楼道或电梯里的二维码，"
        + (f"或拨打社区服务电话 {hotline}。" if hotline else "或拨打社区服务电话。") + "再见。")
    response.hangup()


@bp.post("/place")
@twilio_signed
def place() -> Response:
    """The digits are in: file the call as a report and ring the first responder."""
    attempt = security.number(request.args.get("attempt"), 1)
    code = codes.code_from_digits(request.form.get("Digits", ""))
    sticker = codes.find(code) if code else None
    response = VoiceResponse()
    if sticker is None or sticker.status != StickerStatus.ACTIVE:
        say(response, "号码无效。")
        _no_digits(response, attempt)
        return twiml(response)
    report = open_call(sticker.place, request.form.get("From", ""),
                       request.form.get("CallSid", ""), sticker_id=sticker.id)
    say(response, f"您的来电已登记：{sticker.place.label}。正在为您接通值守人员，请稍候。")
    _ring(response, report, 0)
    return twiml(response)


def open_call(place: Place, caller: str, call_sid: str, *, sticker_id: int | None = None,
              now: datetime | None = None) -> Report:
    """File the call as a report and fix the plan of whom to ring (commits)."""
    now = now or clock.now()
    sticker = db.session.get(Sticker, sticker_id) if sticker_id else None
    filed = file_report(place, call_category(place), kind=ReportKind.CALL,
                              callback_phone=phones.try_normalise(caller), sticker=sticker,
                              now=now)
    report = filed.report
    report.call_outcome = {"call_sid": call_sid, "started_at": now.isoformat(),
                           "plan": plan(place, report.category, now), "tried": {},
                           "answered_by": None}
    db.session.commit()
    return report


def call_category(place: Place) -> str:
    """A call has no category chosen: an elevator's sticker means the elevator, else "other"."""
    known = [c.code for c in settings.categories(place.community)]
    if place.kind == PlaceKind.ELEVATOR and "elevator" in known:
        return "elevator"
    return "other" if "other" in known else known[0]


def plan(place: Place, category: str, now: datetime) -> list[dict[str, Any]]:
    """Whom to ring, in order: the on-duty responders with a working phone, rung by rung."""
    steps: list[dict[str, Any]] = []
    seen: set[int] = set()
    for rung in CALL_RUNGS:
        responders = routing.responders(place, category, rung)
        duties = duty.on_duty([r.member for r in responders], now, place.community.timezone,
                              urgent=True)
        for answer in duties:
            member = answer.member
            if member.id in seen or _phone(member) is None:
                continue
            seen.add(member.id)
            steps.append({"member": member.id, "name": member.name, "rung": int(rung)})
    return steps


def _phone(member: Member) -> str | None:
    """The number to ring: a working voice contact, else a working SMS number."""
    contact = duty.working_contact(member, channels=(Channel.VOICE, Channel.SMS))
    return contact.address if contact is not None else None


def _ring(response: VoiceResponse, report: Report, index: int) -> None:
    """Dial the plan's entry `index`, or, past the end, tell the caller and hang up."""
    steps = (report.call_outcome or {}).get("plan", [])
    while index < len(steps):
        member = db.session.get(Member, steps[index]["member"])
        number = _phone(member) if member is not None else None
        if number is not None:
            if index and steps[index]["rung"] != steps[index - 1]["rung"]:
                say(response, "正在转接上一级值守人员，请稍候。")
            dial = response.dial(action=url("dialed", report=report.id, i=index),
                                 timeout=RING_SECONDS, answer_on_bridge=True,
                                 caller_id=current_app.config.get("TWILIO_VOICE_NUMBER"))
            dial.number(number, url=url("whisper", report=report.id, i=index))
            return
        index += 1
    _finish(report, None)
    say(response, "暂时无人接听。您的来电已登记，值守人员会尽快处理并回复您。再见。")
    response.hangup()


@bp.post("/whisper")
@twilio_signed
def whisper() -> Response:
    """What the member hears on picking up, before the caller is put through: press 1."""
    report = _report()
    response = VoiceResponse()
    index = security.number(request.args.get("i"), 0)
    gather = response.gather(input="dtmf", num_digits=1, timeout=8,
                             action=url("whisper_answer", report=report.id, i=index))
    say(gather, f"邻里热线：{report.case.place.label}的居民来电，{_category_name(report)}。"
                "按 1 接听并接单。", loop=2)
    response.hangup()
    return twiml(response)


@bp.post("/whisper_answer")
@twilio_signed
def whisper_answer() -> Response:
    """1: connect the caller and accept the case for this member; anything else: hang up."""
    report = _report()
    index = security.number(request.args.get("i"), 0)
    response = VoiceResponse()
    if request.form.get("Digits") != "1":
        response.hangup()
        return twiml(response)
    assert report.call_outcome is not None  # _report refuses a report without one
    step = report.call_outcome["plan"][index]
    now = clock.now()
    started = datetime.fromisoformat(report.call_outcome["started_at"])
    _update_outcome(report, answered_by=step["member"], answered_name=step["name"],
                    answered_rung=step["rung"], after_seconds=round((now - started)
                                                                    .total_seconds()))
    db.session.commit()
    # Taken or solved meanwhile: still worth talking to the resident.
    with contextlib.suppress(lifecycle.ActionRefused):
        lifecycle.accept(report.case_id, step["member"], now)
    return twiml(response)  # an empty document: the call is bridged


@bp.post("/dialed")
@twilio_signed
def dialed() -> Response:
    """A responder's leg ended: done if they took the call, else ring the next one."""
    report = _report()
    index = security.number(request.args.get("i"), 0)
    status = request.form.get("DialCallStatus", "")
    response = VoiceResponse()
    outcome = report.call_outcome or {}
    if outcome.get("answered_by") == outcome["plan"][index]["member"]:
        talk = security.number(request.form.get("DialCallDuration"), 0)
        _update_outcome(report, talk_seconds=talk)
        _finish(report, outcome["plan"][index])
        response.hangup()
        return twiml(response)
    tried = dict(outcome.get("tried", {}))
    # "completed" without the key press is a voicemail or a hang-up during the whisper.
    tried[str(index)] = "no-press" if status == "completed" else status
    _update_outcome(report, tried=tried)
    db.session.commit()
    _ring(response, report, index + 1)
    return twiml(response)


def _finish(report: Report, answered: dict[str, Any] | None) -> None:
    """Put the call on the case's timeline (commits)."""
    outcome = report.call_outcome or {}
    words = {"busy": "忙线", "no-answer": "无人接听", "failed": "未接通", "canceled": "已取消",
             "no-press": "未按键（可能是语音信箱）"}
    tried = [f"{step['name']}{words.get(outcome.get('tried', {}).get(str(i), ''), '')}"
             for i, step in enumerate(outcome.get("plan", []))
             if str(i) in outcome.get("tried", {})]
    if answered is not None:
        message = f"居民来电，{answered['name']}接听（等待 {outcome.get('after_seconds')} 秒）"
        _update_outcome(report, outcome="answered")
    else:
        message = "居民来电，无人接听"
        _update_outcome(report, outcome="unanswered")
    if tried:
        message += "；先后呼叫：" + "、".join(tried)
    record(report.case, EventKind.CALLED, message, at=clock.now(),
           member_id=answered["member"] if answered else None, report=report.id,
           shown=True, answered=bool(answered))
    db.session.commit()


def _update_outcome(report: Report, **changes: Any) -> None:
    """JSON columns only notice a new value: replace the dict rather than mutate it."""
    report.call_outcome = {**(report.call_outcome or {}), **changes}


def _report() -> Report:
    report = db.session.get(Report, security.number(request.args.get("report"), 0))
    if report is None or report.call_outcome is None:
        abort(404)
    return report


def _category_name(report: Report) -> str:
    found = settings.category(report.case.community, report.category)
    return found.name if found else report.category


def _only_hotline() -> str | None:
    """The hotline to read out when the caller's community is unknown: if there is just one."""
    hotlines = list(db.session.scalars(sa.select(Community.hotline).limit(2)))
    return hotlines[0] if len(hotlines) == 1 else None


# ---------------------------------------------------------------------------------------------
# Alert calls to members


@bp.post("/alert")
@twilio_signed
def alert() -> Response:
    """Read an urgent case to the member, and gather 1 (accept) or 2 (pass)."""
    notification = _notification()
    response = VoiceResponse()
    case = notification.case
    if case is None or not case.is_open:
        say(response, "邻里通知：该事项已处理，无需操作。再见。")
        response.hangup()
        return twiml(response)
    gather = response.gather(input="dtmf", num_digits=1, timeout=8,
                             action=url("alert_answer", n=notification.id))
    say(gather, f"邻里紧急通知。{describe(case)}。{_reported(case)}"
                "接单请按 1，无法前往请按 2。", loop=2)
    say(response, "没有收到按键，再见。")
    response.hangup()
    return twiml(response)


def _reported(case: Any) -> str:
    return f"已有 {case.report_count} 位邻居反映。" if case.report_count > 1 else ""


@bp.post("/alert_answer")
@twilio_signed
def alert_answer() -> Response:
    """1 accepts the case for the member; 2 passes. Either way the call reached a person."""
    notification = _notification()
    digits = request.form.get("Digits", "")
    response = VoiceResponse()
    if digits not in ("1", "2"):
        response.redirect(url("alert", n=notification.id))
        return twiml(response)
    now = clock.now()
    apply_receipt(notification.provider_id or "", NotificationStatus.DELIVERED, None, now)
    if digits == "2":
        assert notification.case is not None and notification.member is not None
        record(notification.case, EventKind.NOTE,
               f"{notification.member.name}电话中表示无法前往", at=now,
               member_id=notification.member_id)
        db.session.commit()
        say(response, "好的，已记录您无法前往。谢谢，再见。")
        response.hangup()
        return twiml(response)
    try:
        lifecycle.accept(notification.case_id or 0, notification.member_id or 0, now)
        say(response, "已为您接单，详情请查看短信。谢谢，再见。")
    except lifecycle.ActionRefused as refused:
        say(response, f"{refused}。再见。")
    response.hangup()
    return twiml(response)


@bp.post("/status")
@twilio_signed
def status() -> Any:
    """An alert call ended. Without a key press it reached nobody: undelivered."""
    sid = request.form.get("CallSid", "")
    call_status = request.form.get("CallStatus", "")
    if call_status in UNANSWERED:
        apply_receipt(sid, NotificationStatus.UNDELIVERED, call_status)
    elif call_status == "completed":
        apply_receipt(sid, NotificationStatus.UNDELIVERED, "no-press")
    return "", 204


def _notification() -> Notification:
    notification = db.session.get(Notification, security.number(request.args.get("n"), 0))
    if notification is None:
        abort(404)
    return notification
