"""The resident's two forms: leave a message, and the 回访 after resolution.

Both re-show whatever the resident typed when something is wrong. CSRF is checked for every
POST to the resident pages by `dispatch.resident.csrf`, so the forms themselves carry no
second token; the templates include the `form_token` the views pass them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, MultipleFileField
from wtforms import BooleanField, StringField, TextAreaField, ValidationError
from wtforms.validators import Length, Optional

from dispatch.models import Solved
from dispatch.resident import phones, photos, voice

TEXT_MAX = 500

# A LazyString is translated when it is shown, in the resident's language; WTForms, whose stubs
# ask for a str, only ever formats and shows its messages, which a LazyString does as a str does.
_l = cast(Callable[..., str], lazy_gettext)


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class MessageForm(FlaskForm):  # type: ignore[misc]  # flask_wtf ships no types: FlaskForm is Any
    """Leave a message: category, text, photos, a voice note, an optional call-back phone,
    anonymity."""

    class Meta:
        csrf = False  # checked for every resident POST by dispatch.resident.csrf

        def get_translations(self, form: Any) -> None:
            """None: every message this form shows is Linli's own, translated by Flask-Babel.
            WTForms' catalogue would only translate its built-in messages, and Flask-WTF reads
            it from disk once per request: a tenth of rendering a sticker page."""
            return None

    category = StringField()
    text = TextAreaField(filters=[_strip], validators=[
        Optional(), Length(max=TEXT_MAX, message=_l("留言最多 %(max)d 字，请删短一些。"))])
    photos = MultipleFileField()
    #: Sent by the page's script only (按住说话): a plain form has no way to record.
    voice = FileField()
    phone = StringField(filters=[_strip])
    anonymous = BooleanField()

    def __init__(self, *args: Any, category_codes: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.category_codes = category_codes
        #: Filled by validation: the call-back phone in E.164 and the re-encoded photos.
        self.e164: str | None = None
        self.ready_photos: list[photos.Reencoded] = []
        self.ready_voice: voice.Recording | None = None
        #: Photos already kept for this form (`dispatch.resident.drafts`), counted in the limit.
        self.kept = 0

    @property
    def had_photos(self) -> bool:
        """Whether photos were sent: a browser never re-fills them, so the page must say so."""
        return bool(self._chosen_files())

    def _chosen_files(self) -> list[Any]:
        return [f for f in (self.photos.data or []) if getattr(f, "filename", "")]

    def validate_category(self, field: StringField) -> None:
        if field.data not in self.category_codes:
            raise ValidationError(_l("请选择问题类型。"))

    def validate_phone(self, field: StringField) -> None:
        if not field.data:
            return
        try:
            e164 = phones.normalise(field.data)
        except phones.PhoneError:
            raise ValidationError(_l("回拨电话不正确：请填 11 位手机号，或以 + 开头的国际号码。")
                                  ) from None
        if phones.is_blocked(e164):
            raise ValidationError(_l("这个号码不能用于回拨。您可以删掉号码后提交，"
                                     "或拨打社区值班电话。"))
        self.e164 = e164

    def validate_photos(self, field: MultipleFileField) -> None:
        """Re-encode every chosen photo; the good ones are ready (and kept should another
        field be wrong), a bad one is named."""
        chosen = self._chosen_files()
        if len(chosen) + self.kept > photos.MAX_PHOTOS:
            raise ValidationError(_l("最多只能上传 %(n)d 张照片。", n=photos.MAX_PHOTOS))
        ready, problem = [], None
        for upload in chosen:
            try:
                ready.append(photos.reencode(upload.stream))
            except photos.PhotoError as exc:
                problem = problem or _PHOTO_ERRORS[exc.reason]
        self.ready_photos = ready
        if problem is not None:
            raise ValidationError(problem)

    def validate_voice(self, field: FileField) -> None:
        """Check the recording by its bytes; a good one is ready (and kept should another
        field be wrong), a bad one is named."""
        upload = field.data
        if not getattr(upload, "filename", "") or not hasattr(upload, "stream"):
            return
        try:
            self.ready_voice = voice.check(upload.stream)
        except voice.VoiceError as exc:
            raise ValidationError(_VOICE_ERRORS[exc.reason]) from None


_VOICE_ERRORS = {
    "too_big": _l("录音太长了：最长 %(n)d 秒。请删掉录音重录一段短的，或者直接打字。",
                  n=voice.MAX_SECONDS),
    "format": _l("录音没有收到或者已经损坏。请删掉录音重录，或者直接打字、打电话。"),
}


_PHOTO_ERRORS = {
    "too_big": _l("照片太大了：每张不能超过 10 MB。"),
    "format": _l("照片格式不支持：请选择 JPG、PNG、WebP 或 HEIC 格式的照片。"),
    "not_image": _l("有一个文件不是照片，或者已经损坏。"),
}


#: The 回访's satisfaction in words, stored on the 1–5 scale the figures use.
SATISFACTION = (("5", _l("满意")), ("3", _l("基本满意")), ("1", _l("不满意")))


class CallbackForm(FlaskForm):  # type: ignore[misc]  # flask_wtf ships no types: FlaskForm is Any
    """The 回访: contacted? solved yes/partly/no? satisfied, partly or not? comment."""

    class Meta:
        csrf = False  # checked for every resident POST by dispatch.resident.csrf

    contacted = StringField()
    solved = StringField()
    satisfaction = StringField()
    comment = TextAreaField(filters=[_strip], validators=[
        Optional(), Length(max=TEXT_MAX, message=_l("意见最多 %(max)d 字，请删短一些。"))])

    def validate_contacted(self, field: StringField) -> None:
        if field.data not in (None, "", "yes", "no"):
            raise ValidationError(_l("请选择是否有人联系过您。"))

    def validate_solved(self, field: StringField) -> None:
        if field.data not in {s.value for s in Solved}:
            raise ValidationError(_l("请选择问题是否解决。"))

    def validate_satisfaction(self, field: StringField) -> None:
        if field.data not in (None, "", "1", "2", "3", "4", "5"):
            raise ValidationError(_l("请选择满意、基本满意或不满意。"))

    @property
    def answers(self) -> dict[str, Any]:
        """The validated answers as `dispatch.case.lifecycle.answer_callback` takes them."""
        assert self.solved.data is not None  # validate_solved took one of Solved's values
        contacted = {"yes": True, "no": False}.get(self.contacted.data or "")
        return {"solved": Solved(self.solved.data), "contacted": contacted,
                "satisfaction": int(self.satisfaction.data) if self.satisfaction.data else None,
                "comment": self.comment.data or None}
