"""Alibaba Cloud voice (语音服务): an alert read out to a mainland phone, or a call asking to
press 1 to accept and 2 to pass, through the official dyvmsapi SDK.

Like the SMS, a call speaks registered TTS templates, not free text. `alert` uses
`SingleCallByTts` with the template `ALIYUN_VOICE_TTS_CODE` (variables `${place}`, `${what}`);
`ask` uses `IvrCall`, which needs an account with IVR enabled: it opens with
`ALIYUN_VOICE_IVR_CODE` (same variables, ending "接单请按1，转给下一位请按2") and answers a key
with `ALIYUN_VOICE_IVR_REPLY_CODE` (variable `${result}`). How the call ended comes back as a
VoiceReport receipt pushed to our URL: `parse_receipts` reads it, one result per call id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from alibabacloud_dyvmsapi20170525 import models
from alibabacloud_dyvmsapi20170525.client import Client
from alibabacloud_tea_openapi import utils_models
from darabonba.runtime import RuntimeOptions

from dispatch.channels.base import Form, OutgoingMessage, SendResult

TIMEOUT_MS = 10_000
#: Keys of the interactive call, and what each means.
ACCEPT, PASS = "accept", "pass"
KEYS = {"1": ACCEPT, "2": PASS}
REPLIES = {"1": "已为您接单，请尽快到场", "2": "好的，将转给下一位"}
#: Answers that will not change by trying again (a wrong number, template or show number).
FINAL = {"isv.MOBILE_NUMBER_ILLEGAL", "isv.TTS_TEMPLATE_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS",
         "isv.INVALID_PARAMETERS", "isv.DISPLAY_NUMBER_ILLEGAL", "isv.CALLEDNUMBER_NOT_SUPPORT",
         "isv.PARAM_LENGTH_LIMIT", "isv.BLACK_KEY_CONTROL_LIMIT"}
#: Receipts name their times in China's zone without saying so.
RECEIPT_ZONE = ZoneInfo("Asia/Shanghai")
_NEVER = datetime.min.replace(tzinfo=UTC)


class AliyunVoiceClient:
    """Calls through `SingleCallByTts` and `IvrCall`, with the endpoint from configuration."""

    def __init__(self, access_key_id: str, access_key_secret: str, *, show_number: str,
                 tts_code: str, ivr_code: str | None = None, ivr_reply_code: str | None = None,
                 base_url: str) -> None:
        parts = urlsplit(base_url)
        self.client = Client(utils_models.Config(
            access_key_id=access_key_id, access_key_secret=access_key_secret,
            endpoint=parts.netloc, protocol=parts.scheme or "https"))
        self.show_number, self.tts_code = show_number, tts_code
        self.ivr_code, self.ivr_reply_code = ivr_code, ivr_reply_code

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AliyunVoiceClient:
        return cls(str(config["ALIYUN_ACCESS_KEY_ID"]), str(config["ALIYUN_ACCESS_KEY_SECRET"]),
                   show_number=str(config["ALIYUN_VOICE_SHOW_NUMBER"]),
                   tts_code=str(config["ALIYUN_VOICE_TTS_CODE"]),
                   ivr_code=config.get("ALIYUN_VOICE_IVR_CODE"),
                   ivr_reply_code=config.get("ALIYUN_VOICE_IVR_REPLY_CODE"),
                   base_url=str(config["ALIYUN_VOICE_API_BASE_URL"]))

    @property
    def interactive(self) -> bool:
        """Whether this account can ask (IVR templates configured)."""
        return bool(self.ivr_code and self.ivr_reply_code)

    def alert(self, phone: str, params: Mapping[str, str], out_id: str) -> SendResult:
        """Read the alert template to `phone` (a mainland number, +86 or not); one-way."""
        request = models.SingleCallByTtsRequest(
            called_number=_national(phone), called_show_number=self.show_number,
            tts_code=self.tts_code, tts_param=json.dumps(dict(params), ensure_ascii=False),
            play_times=2, out_id=out_id)
        return self._call(lambda runtime: self.client.single_call_by_tts_with_options(
            request, runtime))

    def ask(self, phone: str, params: Mapping[str, str], out_id: str) -> SendResult:
        """Call `phone`, read the alert, and take 1 (accept) or 2 (pass) as the answer."""
        if not self.interactive:
            raise RuntimeError("IvrCall needs ALIYUN_VOICE_IVR_CODE and "
                               "ALIYUN_VOICE_IVR_REPLY_CODE (and IVR enabled on the account)")
        menu = [models.IvrCallRequestMenuKeyMap(
                    key=key, code=self.ivr_reply_code,
                    tts_params=json.dumps({"result": reply}, ensure_ascii=False))
                for key, reply in REPLIES.items()]
        request = models.IvrCallRequest(
            called_number=_national(phone), called_show_number=self.show_number,
            start_code=self.ivr_code,
            start_tts_params=json.dumps(dict(params), ensure_ascii=False),
            menu_key_map=menu, play_times=2, timeout=15_000, out_id=out_id)
        return self._call(lambda runtime: self.client.ivr_call_with_options(request, runtime))

    def _call(self, call: Any) -> SendResult:
        runtime = RuntimeOptions(connect_timeout=TIMEOUT_MS, read_timeout=TIMEOUT_MS,
                                 autoretry=False)
        try:
            response = call(runtime)
        except Exception as exc:  # the SDK raises its own exception types for HTTP errors
            code = str(getattr(exc, "code", "") or type(exc).__name__)
            status = getattr(exc, "status_code", None)
            retryable = status is None or int(status) >= 500 or int(status) == 429
            return SendResult.failed(_short(code), f"{code}: {exc}"[:500], retryable=retryable)
        body = response.body
        if body.code != "OK" or not body.call_id:
            return SendResult.failed(_short(str(body.code)), f"{body.code}: {body.message}",
                                     retryable=body.code not in FINAL)
        return SendResult.sent(str(body.call_id))


class AliyunVoiceSender:
    """The voice channel on Alibaba Cloud: someone must act (an alert, the desk's alarm, the
    call after an unanswered alert) is asked to press 1 where the account has IVR, else read
    out; anything else is read out. The call's end comes back as a VoiceReport receipt."""

    form: Form = "template"
    paced = True
    two_way = False
    looks_up = False

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.client = AliyunVoiceClient.from_config(config)

    def send(self, message: OutgoingMessage) -> SendResult:
        params = {name: str(message.template_params.get(name, "")) for name in ("place", "what")}
        if message.urgent and self.client.interactive:
            return self.client.ask(message.to, params, out_id=str(message.id))
        return self.client.alert(message.to, params, out_id=str(message.id))


def _national(phone: str) -> str:
    return phone.strip().removeprefix("+86")


def _short(code: str) -> str:
    """Alibaba Cloud's error code shortened to fit an outbox error column (16 characters)."""
    return ("ali-" + code.removeprefix("isv.").removeprefix("isp."))[:16]


class ReceiptRefused(ValueError):
    """A receipt push that is not a JSON array of call records."""


@dataclass(frozen=True, slots=True)
class CallResult:
    """How one call ended: answered or not, and the key pressed (`choice`: accept, pass, None)."""

    call_id: str
    out_id: str
    status_code: str
    status: str
    answered: bool
    duration: int
    started_at: datetime | None
    ended_at: datetime | None
    dtmf: str
    choice: str | None


def parse_receipts(body: bytes) -> dict[str, CallResult]:
    """A VoiceReport push, by call id: the same push read twice gives the same answer, and a
    call listed twice in one push counts once (the record with the later end wins)."""
    try:
        records = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ReceiptRefused("not JSON") from None
    if not isinstance(records, list):
        raise ReceiptRefused("expected a JSON array of call records")
    results: dict[str, CallResult] = {}
    for record in records:
        if not isinstance(record, dict) or not str(record.get("call_id") or "").strip():
            raise ReceiptRefused("a record without call_id")
        result = _result(record)
        known = results.get(result.call_id)
        if known is None or (result.ended_at or _NEVER) >= (known.ended_at or _NEVER):
            results[result.call_id] = result
    return results


def _result(record: dict[str, Any]) -> CallResult:
    def text(name: str) -> str:
        return str(record.get(name) or "").strip()

    started, ended = _time(text("start_time")), _time(text("end_time"))
    dtmf = text("dtmf")
    try:
        duration = int(text("duration").removesuffix("秒") or 0)
    except ValueError:
        duration = 0
    return CallResult(call_id=text("call_id"), out_id=text("out_id"),
                      status_code=text("status_code"), status=text("status_msg"),
                      answered=started is not None, duration=duration, started_at=started,
                      ended_at=ended, dtmf=dtmf, choice=KEYS.get(dtmf[:1]) if dtmf else None)


def _time(raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        local = datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=RECEIPT_ZONE)
    except ValueError:
        raise ReceiptRefused(f"not a time: {raw!r}") from None
    return local.astimezone(UTC)
