"""The resident pages: what a sticker opens, the receipt, and the private status page.

No login and no JavaScript needed: every action is a plain link or form. Unknown, retired
and revoked codes all get the same helpful 404 page (with the community's hotline where the
sticker is known), and every visit to a sticker URL is kept as a `Scan`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, TypeGuard

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from dispatch import clock, security
from dispatch.case import lifecycle
from dispatch.case import result as case_result
from dispatch.case.report import Filed, file_report
from dispatch.community import settings
from dispatch.db import db
from dispatch.ladder import step
from dispatch.models import (
    Case,
    CaseStatus,
    Community,
    Photo,
    PhotoDraft,
    PlaceKind,
    Report,
    ReportKind,
    Sticker,
    StickerStatus,
    VoiceNote,
)
from dispatch.outbox import residents
from dispatch.resident import (
    board,
    csrf,
    drafts,
    help,
    i18n,
    limits,
    mine,
    pages,
    phones,
    photos,
    scans,
    timeline,
    voice,
)
from dispatch.resident.forms import SATISFACTION, TEXT_MAX, CallbackForm, MessageForm
from qr import codes

bp = Blueprint("resident", __name__)
# Every POST here carries the signed double-submit token; app.py exempts bp from CSRFProtect.
bp.before_request(csrf.check)

TOKEN = re.compile(r"[A-Za-z0-9_-]{16,43}")


# --- the sticker page ---------------------------------------------------------------------

@bp.get("/S/<code>")  # the printed QR codes are upper case: see qr.labels.sticker_url
@bp.get("/s/<code>")
def sticker(code: str) -> Any:
    """The page a sticker opens: lift emergencies first, call, notices, open problems, message.

    Served as kept in memory when it can be (no SQL, no rate limit: see
    `dispatch.resident.pages` and `dispatch.resident.limits`), else rendered from the database.
    """
    plain = pages.plain_visit() and not mine.tokens()
    looked = request.environ.get(pages.LOOKED, False)  # by `fast`, in vain
    if plain and not looked and (page := pages.cached(code)) is not None:
        scans.record(page.sticker_id, code, "view")
        return pages.serve(page)
    return _rendered_sticker(code, plain)


@limits.pages
@limits.misses
def _rendered_sticker(code: str, plain: bool) -> Any:
    begun = pages.begin() if plain else None  # before the database: see `pages`
    found = board.sticker_for_page(code)
    if not _usable(found):
        return _unusable(code, found)
    _record_scan(found, code, "view")
    stamp = pages.stamp(begun, found.place_id)
    context, expires = _sticker_context(found, _message_form(found, bound=False))
    html = render_template("resident/sticker.html", **context)
    if plain:
        pages.keep(found, html, stamp, expires)
    return html, 200


@bp.post("/s/<code>/message")
@limits.misses
@limits.reports_ip
@limits.reports_sticker
@limits.reports_phone
def message(code: str) -> Any:
    """File a message; on any problem, show the form again with everything typed still there."""
    found = board.sticker_for_page(code)  # one query for the place, which filing needs too
    if not _usable(found):
        return _unusable(code, found)
    now = clock.now()
    form_token = request.form.get(csrf.FIELD, "")
    kept = drafts.find(form_token, _ids(request.form.getlist("kept_photo")), now)
    kept_voice = drafts.find_voice(form_token, _first_id(request.form.get("kept_voice", "")),
                                   now)
    form = _message_form(found)
    form.kept = len(kept)
    chosen = request.form.get("choose", "")
    if chosen and chosen != "keep" and chosen in form.category_codes:
        form.category.data = chosen  # the urgent category the nudge suggested
    valid = form.validate()
    nudge = None
    if valid and not chosen:
        assert form.category.data is not None
        nudge = help.nudge(found.place.community, form.category.data, form.text.data)
    if not valid or nudge is not None:
        # Whatever photos crossed the line are kept for this browser: never chosen twice.
        if form.ready_photos:
            ids = drafts.keep(form_token, form.ready_photos, now)
            kept = kept + drafts.find(form_token, ids, now)
        if form.ready_voice is not None:  # a new recording replaces a kept one
            kept_voice = db.session.get(VoiceNote,
                                        drafts.keep_voice(form_token, form.ready_voice, now))
        return _show_sticker(found, form, status=200 if valid else 422, kept=kept,
                             nudge=nudge, kept_voice=kept_voice)
    assert form.category.data is not None  # validate_category took one of the codes
    ready = drafts.as_reencoded(kept) + form.ready_photos
    drafts.drop(kept)  # taken into the report, in its transaction
    # A new recording replaces a kept one.
    recording = form.ready_voice or (drafts.as_recording(kept_voice) if kept_voice else None)
    if kept_voice is not None:
        drafts.drop([kept_voice])
    filed = file_report(found.place, form.category.data, text=form.text.data or None,
                              callback_phone=form.e164, anonymous=form.anonymous.data,
                              sticker=found, client_hash=_client_hash(),
                              photos=photos.rows(ready),
                              voice_notes=voice.rows([recording] if recording else [], now))
    return _to_receipt(filed)


@bp.post("/s/<code>/find")
@limits.misses
@limits.lookups_ip
def find_case(code: str) -> Any:
    """Find one's case again by its number and the call-back phone given with it.

    A wrong number and a wrong phone get the same answer (and count as a miss), so the form
    tells a guesser nothing about which cases exist or which phones reported them.
    """
    found = codes.find(code)
    if not _usable(found):
        return _unusable(code, found)
    number = request.form.get("number", "")
    phone = phones.try_normalise(request.form.get("phone", ""))
    digits = re.sub(r"\D", "", number.rsplit("-", 1)[-1])[:12]
    report = None
    if phone and digits:
        report = db.session.scalar(
            sa.select(Report).join(Case, Case.id == Report.case_id)
            .where(Case.id == int(digits), Case.community_id == found.place.community_id,
                   Report.callback_phone == phone)
            .order_by(Report.id).limit(1))
    if report is None:
        return _show_sticker(found, _message_form(found, bound=False), status=404,
                             problem=_("没有找到。请核对案件编号和留下的回拨电话，"
                                       "或拨打社区值班电话查询。"),
                             lookup_number=number[:32])
    return redirect(url_for(".status", token=residents.link_token(report.case, report)), 303)


@bp.get("/s/<code>/kept/<int:draft_id>")
@limits.pages
def kept_photo(code: str, draft_id: int) -> Any:
    """The thumbnail of a photo kept for this browser's form (nobody else's)."""
    rows = drafts.find(csrf.token(), [draft_id], clock.now())
    if not rows:
        return _missing_case()
    row: PhotoDraft = rows[0]
    response = make_response(row.thumbnail or row.data)
    response.headers["Content-Type"] = "image/jpeg"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/s/<code>/kept-voice/<int:note_id>")
@limits.pages
def kept_voice(code: str, note_id: int) -> Any:
    """The voice note kept for this browser's form (nobody else's), to play before sending."""
    found = drafts.find_voice(csrf.token(), note_id, clock.now())
    if found is None:
        return _missing_case()
    return voice.serve(found, cache="private, no-store")


def _ids(values: list[str]) -> list[int]:
    return [int(v) for v in values[:10] if v.isdigit() and len(v) < 12]


def _first_id(value: str) -> int | None:
    return next(iter(_ids([value])), None)


@bp.post("/s/<code>/me-too/<int:case_id>")
@limits.misses
@limits.reports_ip
@limits.reports_sticker
def me_too(code: str, case_id: int) -> Any:
    """我也遇到了: add a report to a problem already open at this place."""
    found = codes.find(code)
    if not _usable(found):
        return _unusable(code, found)
    case = db.session.get(Case, case_id)
    if case is None or case.place_id != found.place_id:
        return _show_sticker(found, _message_form(found, bound=False), status=404,
                             problem=_("没有找到这个问题。请看下面的列表，或者留言反映。"))
    # If the case closed meanwhile, file_report opens a new one: the problem is back.
    filed = file_report(found.place, case.category, kind=ReportKind.ME_TOO, join=case,
                              sticker=found, client_hash=_client_hash())
    return _to_receipt(filed)


@bp.get("/s/<code>/call")
@limits.misses
@limits.calls_ip
@limits.calls_sticker
def call(code: str) -> Any:
    """Record the tap on the call button, then hand the phone its `tel:` link."""
    found = codes.find(code)
    if not _usable(found):
        return _unusable(code, found)
    _record_scan(found, code, "call")
    return redirect(board.tel_url(found.place.community, found), 302)


def _usable(found: Sticker | None) -> TypeGuard[Sticker]:
    return found is not None and found.status == StickerStatus.ACTIVE


def _unusable(code: str, found: Sticker | None) -> tuple[str, int]:
    """The one helpful page for unknown, retired and revoked codes; nothing reaches a member."""
    _record_scan(found, code, "unknown" if found is None else str(found.status))
    community = found.place.community if found is not None else None
    return render_template("resident/unusable.html", **_hotline(community)), 404


def _record_scan(found: Sticker | None, code: str, action: str) -> None:
    scans.record(found.id if found else None, code, action)


def _message_form(found: Sticker, *, bound: bool = True) -> MessageForm:
    """The message form, bound to the submitted request or blank (lift faults preselected)."""
    known = [c.code for c in settings.categories(found.place.community)]
    if bound:
        return MessageForm(category_codes=known)
    data = {}
    if found.place.kind == PlaceKind.ELEVATOR and "elevator" in known:
        data["category"] = "elevator"
    return MessageForm(formdata=None, data=data, category_codes=known)


def _show_sticker(found: Sticker, form: MessageForm, *, status: int = 200,
                  **extra: Any) -> tuple[str, int]:
    context, _until = _sticker_context(found, form, **extra)
    return render_template("resident/sticker.html", **context), status


def _sticker_context(found: Sticker, form: MessageForm, *, problem: str | None = None,
                     kept: list[PhotoDraft] | None = None, nudge: help.Nudge | None = None,
                     lookup_number: str = "", kept_voice: VoiceNote | None = None
                     ) -> tuple[dict[str, Any], datetime]:
    """What the sticker page shows, and until when it stays true if nothing is written: the
    next start or end of a notice there, and local midnight while a case there waits for
    working hours (its "周一 08:30" is said relative to today)."""
    place = found.place
    community = place.community
    g.here = url_for(".sticker", code=found.code)
    zone = clock.zone(community.timezone)
    now = clock.now()
    in_force, until = board.notices_and_next_change(place, now)
    notices = [{"text": n.text,
                "until": timeline.local_time(n.ends_at, zone) if n.ends_at else None}
               for n in in_force]
    cases = board.open_cases(place)
    if any(step.waiting_for_hours(c, now) is not None for c in cases):
        until = min(until, clock.next_midnight(now, zone))
    open_cases = [{"id": c.id, "category": timeline.category_name(c),
                   "status": timeline.status_text(c, now), "reports": c.report_count,
                   "since": timeline.local_time(c.reported_at, zone)}
                  for c in cases]
    own = [{"category": timeline.category_name(case), "number": case.number,
            "status": timeline.status_text(case),
            "url": url_for(".status", token=token)}
           for case, token in mine.open_here(place)]
    return dict(
        sticker=found, place=place, community=community,
        is_elevator=place.kind == PlaceKind.ELEVATOR, lift_line=board.EMERGENCY_LIFT_LINE,
        call_href=url_for(".call", code=found.code), responders=board.responders(place),
        notices=notices, open_cases=open_cases, form=form, form_token=csrf.token(),
        problem=problem, text_max=TEXT_MAX, max_photos=photos.MAX_PHOTOS,
        categories=[(c.code, i18n.category_name(c)) for c in settings.categories(community)],
        examples=help.examples(community),
        keywords_json=json.dumps(help.urgent_keywords(community), ensure_ascii=False,
                                 separators=(",", ":")),
        kept=kept or [], nudge=nudge, mine=own, lookup_number=lookup_number,
        kept_voice=kept_voice, voice_seconds=voice.MAX_SECONDS,
        voice_bits=voice.BITS_PER_SECOND,
        current_category=next((i18n.category_name(c) for c in settings.categories(community)
                               if c.code == form.category.data), ""),
        **_hotline(community)), until


def _to_receipt(filed: Filed) -> WerkzeugResponse:  # flask's redirect makes werkzeug's
    """Remember which report is this resident's, for the receipt, and go there (303): to the
    resident's own link, never the one of the neighbour who reported first."""
    session["receipt"] = {"case": filed.case_id, "report": filed.report_id,
                          "opened": filed.opened}
    response = redirect(url_for(".receipt", token=filed.link), 303)
    mine.remember(response, filed.link)
    return response


def _client_hash() -> str:
    """A keyed hash of the client address: enough to spot abuse, useless to anyone else."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, (request.remote_addr or "").encode(), hashlib.sha256).hexdigest()[:32]


# --- receipt and status page --------------------------------------------------------------

@bp.get("/c/<token>/receipt")
@limits.pages
@limits.misses
def receipt(token: str) -> Any:
    """The receipt: case number, expected response, and the private status link."""
    case = _case(token)
    if case is None:
        return _missing_case()
    kept = session.get("receipt") or {}
    report = db.session.get(Report, kept["report"]) if kept.get("case") == case.id else None
    category = settings.category(case.community, case.category)
    status_path = url_for(".status", token=token)
    return _private(render_template(
        "resident/receipt.html", case=case, category=timeline.category_name(case),
        within=timeline.respond_within(category.respond_minutes) if category else None,
        status_text=timeline.status_text(case),
        texted=report is not None and residents.texted(report),
        report=report, joined=report is not None and not kept.get("opened"),
        status_path=status_path,
        status_url=str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/") + status_path,
        **_hotline(case.community)))


@bp.get("/c/<token>")
@limits.pages
@limits.misses
def status(token: str) -> Any:
    """The private status page: the timeline, and the 回访 once the case is resolved."""
    case = _case(token)
    if case is None:
        return _missing_case()
    return _show_status(case, token, CallbackForm(formdata=None))


@bp.get("/c/<token>/live")
@limits.pages
@limits.misses
def live(token: str) -> Any:
    """The status page's changing parts as JSON, for the script that updates it in place."""
    case = _case(token)
    if case is None:
        return jsonify(error="not found"), 404
    html = render_template("resident/_timeline.html", lines=timeline.lines(case))
    return _private(jsonify(status=str(case.status), status_text=timeline.status_text(case),
                            timeline=html))


@bp.post("/c/<token>/callback")
@limits.misses
@limits.callbacks_ip
def callback(token: str) -> Any:
    """Take the 回访: "solved" closes the case, "not solved" reopens it."""
    case = _case(token)
    if case is None:
        return _missing_case()
    back = url_for(".status", token=token)
    if case.status != CaseStatus.RESOLVED:
        flash(_("这个案件现在不需要回访，谢谢您。"))
        return redirect(back, 303)
    form = CallbackForm()
    if not form.validate():
        return _show_status(case, token, form, status=422)
    try:
        answered = lifecycle.answer_callback(case, **form.answers)
    except lifecycle.NotAwaitingCallback:
        flash(_("这个案件现在不需要回访，谢谢您。"))
        return redirect(back, 303)
    if answered.joined:
        flash(_("同一问题已有正在处理的案件 %(number)s，您的意见已转给它。",
                number=answered.follow.number))
    elif answered.reopened:
        flash(_("已重新派单，我们会尽快处理。感谢您的回访。"))
    else:
        flash(_("感谢您的回访！"))
    return redirect(back, 303)


@bp.get("/c/<token>/after/<int:photo_id>")
@bp.get("/c/<token>/after/<int:photo_id>/<size>")
@limits.pages
@limits.misses
def after_photo(token: str, photo_id: int, size: str = "full") -> Any:
    """The responder's after-photo (办理后) of this case, once it is resolved: never a
    resident's photo, and never another case's."""
    case = _case(token)
    found = db.session.get(Photo, photo_id) if case is not None else None
    if case is None or found is None or found.case_id != case.id \
            or not timeline.result_shown(case) or size not in ("full", "small"):
        return _missing_case()
    data = found.data
    if size == "small":
        data = found.thumbnail or photos.thumbnail_of(found.data) or found.data
    response = make_response(data)
    response.headers["Content-Type"] = "image/jpeg" if size == "small" else found.content_type
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _case(token: str) -> Case | None:
    """The case a status link names: a report's own token, or (older links, and the first
    reporter's) the case's."""
    if not TOKEN.fullmatch(token):
        return None
    report = db.session.scalar(sa.select(Report).where(Report.public_token == token))
    if report is not None:
        return report.case
    return db.session.scalar(sa.select(Case).where(Case.public_token == token))


def _missing_case() -> tuple[str, int]:
    return render_template("resident/unusable.html", **_hotline(None)), 404


def _show_status(case: Case, token: str, form: CallbackForm, *, status: int = 200,
                 problem: str | None = None) -> Any:
    g.here = url_for(".status", token=token)
    follow = db.session.get(Case, case.merged_into_id) if case.merged_into_id else None
    body = render_template(
        "resident/status.html", case=case, token=token, category=timeline.category_name(case),
        status_text=timeline.status_text(case), lines=timeline.lines(case), form=form,
        result=timeline.result(case), satisfaction=SATISFACTION,
        after_photos=(case_result.after_photo_ids(case) if timeline.result_shown(case)
                      else []),
        # The other case's own link belongs to its reporters: its state is shown here instead.
        follow_status=timeline.status_text(follow) if follow else None,
        # The 回访 form is shown once the case is resolved; before that no form, no cookie.
        form_token=csrf.token() if case.status == CaseStatus.RESOLVED else None,
        follow=follow, problem=problem, text_max=TEXT_MAX,
        poll_seconds=current_app.config["RESIDENT_POLL_SECONDS"],
        **_hotline(case.community))
    return _private(Response(body, status=status))


def _private(body: str | Response) -> Response:
    """A status link is a secret: keep it out of caches, search engines and Referer headers."""
    response = make_response(body)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


# --- mistyped addresses ------------------------------------------------------------------

@bp.get("/s/")
@bp.get("/S/")
@bp.get("/c/")
@limits.misses
def bare() -> Any:
    """/s/, /S/ and /c/ with nothing after them."""
    return _missing_case() if request.path.startswith("/c/") else _unusable("", None)


@bp.get("/s/<path:rest>")
@bp.get("/S/<path:rest>")
@bp.get("/c/<path:rest>")
@limits.misses
def mistyped(rest: str) -> Any:
    """Any other address under /s/, /S/ and /c/: a sticker code or status link with a slash too
    many goes where it meant to; anything else gets the helpful Chinese page, not a bare 404."""
    first = rest.strip("/").split("/", 1)[0] if rest.strip("/").count("/") == 0 else ""
    if first and request.path.startswith("/c/"):
        if _case(first) is not None:
            return redirect(url_for(".status", token=first), 301)
    elif first:
        found = codes.find(first)
        if _usable(found):
            return redirect(url_for(".sticker", code=found.code), 301)
    return _unusable(rest[:64], None) if not request.path.startswith("/c/") else _missing_case()


@bp.get("/favicon.ico")
def favicon() -> Any:
    """Browsers ask for it whatever the page says: the same small icon, cached for a week."""
    response = Response(_icon(), mimetype="image/svg+xml")
    response.cache_control.max_age = 7 * 24 * 3600
    response.cache_control.public = True
    return response


def _icon() -> bytes:
    return _read_icon(str(current_app.static_folder))


@functools.cache
def _read_icon(folder: str) -> bytes:
    return (Path(folder) / "favicon.svg").read_bytes()


# --- language, errors and what every page shares ------------------------------------------

@bp.get("/lang/<lang>")
def switch_language(lang: str) -> Any:
    """Switch between Chinese and English; the choice is kept in a cookie for a year."""
    response = redirect(security.safe_path(request.args.get("next")), 303)
    if lang in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, lang, max_age=i18n.COOKIE_MAX_AGE, samesite="Lax",
                            httponly=True, secure=request.is_secure)
    return response


@bp.after_request
def no_referrer(response: Response) -> Response:
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


@bp.context_processor
def page_language() -> dict[str, Any]:
    """The page's language and the link that switches to the other one."""
    current = i18n.language()
    other = "en" if current == "zh" else "zh"
    here = g.get("here") or (request.full_path.rstrip("?") if request.method == "GET"
                             else request.path)
    return {"html_lang": i18n.HTML_LANG[current], "other_lang": other,
            "other_lang_name": i18n.LANGUAGES[other],
            "switch_url": url_for("resident.switch_language", lang=other, next=here)}


#: Blueprints whose answers machines read (the providers' webhooks, Prometheus, health
#: checks): their errors stay as Werkzeug writes them.
MACHINE_BLUEPRINTS = frozenset({"webhooks", "wecom", "aliyun_voice", "voice", "prometheus",
                                "health"})


@bp.get("/")
def home() -> str:
    """The bare address: say what the service is, whom it is for, and where staff log in.
    Residents come by stickers; this is for whoever types the address (an operator, a member
    following a half-copied link)."""
    return render_template("resident/home.html", **_hotline(None))


@bp.app_errorhandler(HTTPException)
def http_error(error: HTTPException) -> Any:
    """Every HTTP error nobody answered with a page of their own: an unknown address, a wrong
    method, a member's or staff's form whose CSRF token expired, a console page refused. A
    person meets these, so they get a page in the resident look: what happened and what to do,
    in Chinese (English through the switch), with the hotline and, after a refused POST, the
    way back to the form. Werkzeug's page was English, and a bare "Bad Request" after tapping
    接单 told a member nothing."""
    # Flask hands over neither redirects nor code-less errors; `code is None` is for the types.
    if request.blueprint in MACHINE_BLUEPRINTS or error.response is not None \
            or error.code is None:
        return error
    title, line = _said(error.code)
    headers = {k: v for k, v in error.get_headers() if k in ("Allow", "Retry-After")}
    page = render_template("resident/error.html", title=title, line=line,
                           retry_url=_retry_url(), **page_language(), **_hotline(None))
    return page, error.code, headers


def _said(status: int) -> tuple[str, str]:
    """What an error page says, as its title and one line of what to do."""
    if status == 400:
        return _("提交没有成功"), _(
            "页面可能已经过期（浏览器关闭后又打开过，或者没有开启 Cookie）。"
            "请返回上一页，刷新后再试一次。")
    if status in (401, 403):
        return _("没有权限打开这个页面"), _("请先登录，或者请管理员为您的账号开通相应的权限。")
    if status == 404:
        return _("找不到这个页面"), _(
            "地址可能不完整，或者已经停用。居民请扫描楼栋或电梯里的二维码。")
    if status == 405:
        return _("不能这样打开这个页面"), _("请从页面上的按钮或链接进入。")
    if status == 413:
        return _("提交的内容太大"), _("请减少照片或文字后再试一次。")
    if status == 429:
        return _("操作太频繁"), _("请稍等一会儿再试。")
    return _("请求无法处理"), _("请返回上一页再试一次。")


def _retry_url() -> str | None:
    """After a refused POST, PUT or DELETE, the same address as a page, if there is one."""
    if request.method in ("GET", "HEAD"):
        return None
    try:
        current_app.url_map.bind_to_environ(request.environ).match(request.path, method="GET")
    except HTTPException:
        return None
    return request.path


@bp.errorhandler(429)
def too_many(error: Exception) -> tuple[str, int]:
    """Too many requests: say so kindly, and give the hotline, which always works."""
    return render_template("resident/limited.html", **_hotline(_community_of_request())), 429


@bp.errorhandler(413)
def too_large(error: Exception) -> tuple[str, int]:
    """The upload was larger than MAX_CONTENT_LENGTH, so nothing of it could be read; or the
    form had more parts or text than any form of ours has (a script, not a resident's photos)."""
    code = (request.view_args or {}).get("code")
    limit = int(current_app.config["MAX_CONTENT_LENGTH"] or 0)
    return render_template("resident/too_large.html", limit_mb=limit // 2**20,
                           photos=(request.content_length or 0) > limit,
                           back_url=url_for(".sticker", code=code) if code else None,
                           **_hotline(_community_of_request())), 413


@bp.errorhandler(CSRFError)
def expired(error: CSRFError) -> Any:
    """The form's token did not match its cookie, most likely because the browser was reopened
    (the cookie lasts a browser session) or keeps no cookies: show it again with everything
    typed and a token for the cookie now set, so the next press goes through."""
    problem = _("提交没有成功，可能是浏览器关闭后又打开过，或者没有开启 Cookie。"
                "您填写的内容都还在，请检查后再点一次按钮。")
    args = request.view_args or {}
    if "code" in args:
        found = codes.find(str(args["code"]))
        if _usable(found):
            form = _message_form(found, bound=request.endpoint == "resident.message")
            return _show_sticker(found, form, status=400, problem=problem)
    elif "token" in args and (case := _case(str(args["token"]))) is not None:
        return _show_status(case, str(args["token"]), CallbackForm(), status=400,
                            problem=problem)
    return render_template("resident/unusable.html", **_hotline(None)), 400


def _community_of_request() -> Community | None:
    """The community a request is about, for its hotline on an error page."""
    args = request.view_args or {}
    if "code" in args:
        found = codes.find(str(args["code"]))
        return found.place.community if found else None
    if "token" in args:
        case = _case(str(args["token"]))
        return case.community if case else None
    return None


def _hotline(community: Community | None) -> dict[str, Any]:
    """The number to show: the community's duty hotline, or the generic one."""
    if community is not None:
        return {"hotline": community.hotline, "hotline_tel": board.hotline_tel(community.hotline),
                "hotline_known": True}
    generic = str(current_app.config["RESIDENT_FALLBACK_HOTLINE"])
    return {"hotline": generic, "hotline_tel": board.hotline_tel(generic), "hotline_known": False}
