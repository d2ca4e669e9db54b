"""Member pages: act on a case from the link in a message, with no login.

Every URL carries a signed, expiring, single-purpose token (`dispatch.links`). GET only ever
shows a page — SMS apps and chat link previewers fetch links on their own — and the action
happens on POST from that page's big button, under the app-wide CSRF protection. The actions
themselves are `dispatch.case.lifecycle`'s, shared with SMS replies, voice and the console.

The case page shows the residents' photos and the after-photos (thumbnails, each a link to the
whole photo) through `photo`, which takes the same signed case link: a photo is served only to
a member holding a link to its case. The residents' voice notes play the same way (`voice`).
Resolving takes an optional note and after-photos.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
)

from dispatch import clock, links, security, words
from dispatch.case import lifecycle, result
from dispatch.case.lifecycle import ActionRefused
from dispatch.community import settings
from dispatch.db import db
from dispatch.links import BadLink, Purpose
from dispatch.models import (
    OPEN_STATUSES,
    Case,
    CaseStatus,
    Member,
    Notification,
    NotificationStatus,
    Photo,
    Report,
    VoiceNote,
)
from dispatch.outbox import Purpose as Message
from dispatch.resident import photos, voice
from dispatch.roster import routing
from dispatch.roster.duty import working_contact

bp = Blueprint("member", __name__, url_prefix="/m")

#: The confirmation page of each action: its title, its button and what pressing it means.
ACTIONS: dict[Purpose, tuple[str, str, str]] = {
    Purpose.ACCEPT: ("接单", "我来处理，接单", "接单后，其他已通知的人会收到“已有人接单”的消息。"),
    Purpose.ON_SITE: ("已到场", "我已到场", "告诉居民和同事：您已经到了现场。"),
    Purpose.RESOLVE: ("已解决", "问题已解决", "确认问题已经解决；居民之后会收到回访。"),
    Purpose.HAND_OVER: ("转交同事", "转交", "转交后由这位同事负责，他会马上收到通知。"),
    Purpose.ESCALATE: ("立即升级", "立即上报上一级", "马上通知上一级负责人，不再等待。"),
}
DONE = {
    Purpose.ACCEPT: "已接单，谢谢！请尽快前往。",
    Purpose.ON_SITE: "已记录：您已到场。",
    Purpose.RESOLVE: "已记录：问题已解决。谢谢您！",
    Purpose.HAND_OVER: "已转交。",
    Purpose.ESCALATE: "已上报上一级。",
}


@bp.get("/member/<token>")
def member_page(token: str) -> Any:
    """The member's open cases: accepted by them, or waiting for them to take."""
    member_id, _ = _read(Purpose.MEMBER, token)
    member = _member(member_id)
    cases = open_cases(member)
    return render_template("member/member.html", member=member, cases=cases,
                           case_url=lambda c: links.path(Purpose.CASE, member.id, c.id),
                           **_helpers(member))


@bp.get("/case/<token>")
def case_page(token: str) -> Any:
    """One case with the actions this member may take on it now."""
    member_id, case_id = _read(Purpose.CASE, token)
    member, case = _member(member_id), _case(case_id, member_id)
    return render_template("member/case.html", member=member, case=case,
                           actions=allowed_actions(case, member),
                           action_url=lambda p: links.path(p, member.id, case.id),
                           member_url=links.path(Purpose.MEMBER, member.id),
                           events=case.events[-12:], report_photos=_report_photo_ids(case),
                           voice_notes=_voice_note_ids(case),
                           after_photos=result.after_photo_ids(case), token=token,
                           **_helpers(member))


@bp.get("/case/<token>/photo/<int:photo_id>")
@bp.get("/case/<token>/photo/<int:photo_id>/<size>")
def photo(token: str, photo_id: int, size: str = "full") -> Any:
    """A photo of the case the link names: a resident's or an after-photo; `small` is its
    thumbnail (made and kept on first view if it has none, as on the staff case page)."""
    member_id, case_id = _read(Purpose.CASE, token)
    _member(member_id)
    case = _case(case_id, member_id)
    found = db.session.get(Photo, photo_id)
    if found is None or found.of_case.id not in {case.id, *_merged_ids(case)} \
            or size not in ("full", "small"):
        abort(404)
    data, content_type = found.data, found.content_type
    if size == "small":
        small = found.thumbnail
        if small is None and (small := photos.thumbnail_of(found.data)) is not None:
            found.thumbnail = small
            db.session.commit()
        if small is not None:
            data, content_type = small, "image/jpeg"
    response = Response(data, content_type=content_type)
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/case/<token>/voice/<int:note_id>")
def voice_note(token: str, note_id: int) -> Any:
    """A resident's voice note of the case the link names (or of a duplicate merged into it)."""
    member_id, case_id = _read(Purpose.CASE, token)
    _member(member_id)
    case = _case(case_id, member_id)
    found = db.session.get(VoiceNote, note_id)
    if found is None or found.report is None \
            or found.report.case_id not in {case.id, *_merged_ids(case)}:
        abort(404)
    return voice.serve(found, cache="private, max-age=3600")


def _voice_note_ids(case: Case) -> list[int]:
    """The residents' voice notes of the case and of the duplicates merged into it."""
    return list(db.session.scalars(
        sa.select(VoiceNote.id).join(Report, VoiceNote.report_id == Report.id)
        .where(Report.case_id.in_([case.id, *_merged_ids(case)])).order_by(VoiceNote.id)))


def _merged_ids(case: Case) -> list[int]:
    return list(db.session.scalars(sa.select(Case.id).where(Case.merged_into_id == case.id)))


def _report_photo_ids(case: Case) -> list[int]:
    """The residents' photos of the case and of the duplicates merged into it."""
    return list(db.session.scalars(
        sa.select(Photo.id).join(Report, Photo.report_id == Report.id)
        .where(Report.case_id.in_([case.id, *_merged_ids(case)])).order_by(Photo.id)))


@bp.route("/<purpose>/<token>", methods=["GET", "POST"])
def act(purpose: str, token: str) -> Any:
    """GET shows the confirmation page; POST from it takes the action."""
    try:
        wanted = Purpose(purpose)
    except ValueError:
        abort(404)
    if wanted not in ACTIONS:
        abort(404)
    member_id, case_id = _read(wanted, token)
    member, case = _member(member_id), _case(case_id, member_id)
    case_url = links.path(Purpose.CASE, member.id, case.id)
    if request.method == "GET":
        return _confirm(wanted, member, case, case_url)
    try:
        _take(wanted, case.id, member.id)
    except photos.PhotoError as bad:
        return _confirm(wanted, member, case, case_url, error=PHOTO_ERRORS.get(
            bad.reason, "照片无法使用，请换一张"), status=400)
    except ActionRefused as refused:
        return render_template("member/message.html", title="无法完成", message=str(refused),
                               case_url=case_url, **_helpers(member)), 409
    flash(DONE[wanted])
    return redirect(case_url, code=303)


#: What a member is told when an after-photo cannot be used (`photos.PhotoError.reason`).
PHOTO_ERRORS = {"too_many": f"最多上传 {photos.MAX_PHOTOS} 张照片",
                "too_big": "照片太大，请换一张或截图后上传",
                "not_image": "这不是照片，请选择 JPG、PNG 或 WEBP 图片",
                "format": "照片格式不支持，请选择 JPG、PNG 或 WEBP 图片"}


def _confirm(purpose: Purpose, member: Member, case: Case, case_url: str, *,
             error: str | None = None, status: int = 200) -> Any:
    page = render_template("member/confirm.html", purpose=purpose, action=ACTIONS[purpose],
                           member=member, case=case, case_url=case_url,
                           colleagues=colleagues(case, member), error=error,
                           note=request.form.get("note", ""), max_photos=photos.MAX_PHOTOS,
                           **_helpers(member))
    return page, status


def _after_photos() -> list[Photo]:
    """The after-photos sent with a resolve, re-encoded as residents' photos are."""
    chosen = [f for f in request.files.getlist("photos") if f.filename]
    if len(chosen) > photos.MAX_PHOTOS:
        raise photos.PhotoError("too_many")
    return photos.rows([photos.reencode(f.stream) for f in chosen])


def _take(purpose: Purpose, case_id: int, member_id: int) -> None:
    if purpose == Purpose.ACCEPT:
        lifecycle.accept(case_id, member_id)
    elif purpose == Purpose.ON_SITE:
        lifecycle.on_site(case_id, member_id)
    elif purpose == Purpose.RESOLVE:
        lifecycle.resolve(case_id, member_id, request.form.get("note", ""),
                          photos=_after_photos())
    elif purpose == Purpose.HAND_OVER:
        # Only to a colleague the page offered: someone answering for the case's place.
        case, member = db.session.get_one(Case, case_id), db.session.get_one(Member, member_id)
        offered = {c.id for c in colleagues(case, member)}
        to_member = security.number(request.form.get("to_member"))
        if to_member not in offered:
            raise ActionRefused("请选择要转交的同事")
        lifecycle.hand_over(case_id, member_id, to_member)
    elif purpose == Purpose.ESCALATE:
        lifecycle.escalate(case_id, member_id=member_id)


def open_cases(member: Member) -> list[Case]:
    """Open cases the member accepted, or was asked to take and nobody has taken yet."""
    asked = (sa.select(Notification.case_id)
             .where(Notification.member_id == member.id,
                    Notification.purpose.in_((Message.ALERT, Message.STUCK, Message.HANDOVER,
                                              Message.ASSIGNED)),
                    Notification.status != NotificationStatus.CANCELLED))
    return list(db.session.scalars(
        sa.select(Case)
        .where(Case.status.in_(OPEN_STATUSES),
               sa.or_(Case.accepted_by_id == member.id,
                      sa.and_(Case.status == CaseStatus.OPEN, Case.id.in_(asked))))
        .order_by(Case.reported_at.desc())))


def allowed_actions(case: Case, member: Member) -> list[Purpose]:
    """What the member may do now, the expected next step first."""
    if case.status == CaseStatus.OPEN:
        return [Purpose.ACCEPT, Purpose.HAND_OVER, Purpose.ESCALATE]
    if case.accepted_by_id != member.id:
        return []
    if case.status == CaseStatus.ACCEPTED:
        return [Purpose.ON_SITE, Purpose.RESOLVE, Purpose.HAND_OVER, Purpose.ESCALATE]
    if case.status == CaseStatus.ON_SITE:
        return [Purpose.RESOLVE, Purpose.HAND_OVER, Purpose.ESCALATE]
    return []


def colleagues(case: Case, member: Member) -> list[Member]:
    """Whom the case can be handed to: anyone responsible for its place, with a contact."""
    return [r.member for r in routing.answering_for(case.place, case.category)
            if r.member.id != member.id and r.member.active
            and working_contact(r.member) is not None]


def _read(purpose: Purpose, token: str) -> tuple[int, int | None]:
    try:
        return links.read(purpose, token)
    except BadLink as bad:
        abort(_refusal(str(bad), 403))


def _member(member_id: int) -> Member:
    member = db.session.get(Member, member_id)
    if member is None or not member.active:
        abort(_refusal("您不在本社区的值守名单中", 403))
    return member


def _case(case_id: int | None, member_id: int) -> Case:
    case = db.session.get(Case, case_id) if case_id is not None else None
    member = db.session.get(Member, member_id)
    if case is None or member is None or case.community_id != member.community_id:
        abort(_refusal("找不到这个事项", 404))
    return case


def _refusal(message: str, status: int) -> Response:
    page = render_template("member/message.html", title="链接无法使用", message=message,
                           case_url=None)
    return make_response(page, status)


def _helpers(member: Member) -> dict[str, Any]:
    zone = member.community.timezone

    def local(at: datetime | None) -> str:
        return clock.format_local(at, zone, empty="")

    def category_name(case: Case) -> str:
        found = settings.category(case.community, case.category)
        return found.name if found else case.category

    return {"local": local, "category_name": category_name, "status_names": words.STATUS_NAMES}
