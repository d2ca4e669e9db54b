"""Provider settings: a chosen backend without its credentials stops the start, naming them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatch.config import ConfigError, load_settings

TWILIO = {"SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t",
          "TWILIO_FROM": "+15005550006"}
ALIYUN = {"SMS_BACKEND": "aliyun", "ALIYUN_ACCESS_KEY_ID": "id", "ALIYUN_ACCESS_KEY_SECRET": "s",
          "ALIYUN_SMS_SIGN_NAME": "邻里", "ALIYUN_SMS_TEMPLATE_CODE": "SMS_1"}
VAPID = {"VAPID_PRIVATE_KEY": "k", "VAPID_PUBLIC_KEY": "p", "VAPID_SUBJECT": "mailto:a@b.cn"}


def settings(tmp_path: Path, **environ: str) -> dict[str, object]:
    return load_settings({"SECRET_KEY": "x" * 20, **environ}, str(tmp_path))


def test_the_defaults_need_no_provider(tmp_path: Path) -> None:
    loaded = settings(tmp_path)
    assert loaded["SMS_BACKEND"] == "console"
    assert loaded["TWILIO_API_BASE_URL"] == "https://api.twilio.com"
    assert loaded["VAPID_PRIVATE_KEY"] is None


def test_complete_provider_settings_are_taken(tmp_path: Path) -> None:
    loaded = settings(tmp_path, **TWILIO, **VAPID, TWILIO_VOICE_NUMBER="+15005550007",
                      TWILIO_API_BASE_URL="http://127.0.0.1:8765/")
    assert loaded["TWILIO_API_BASE_URL"] == "http://127.0.0.1:8765"
    assert loaded["TWILIO_FROM"] == "+15005550006" and loaded["VAPID_SUBJECT"] == "mailto:a@b.cn"
    assert settings(tmp_path, **ALIYUN)["ALIYUN_SMS_ENDPOINT"] == "dysmsapi.aliyuncs.com"


@pytest.mark.parametrize(("environ", "missing", "named"), [
    (TWILIO, "TWILIO_ACCOUNT_SID", "TWILIO_ACCOUNT_SID"),
    (TWILIO, "TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN"),
    (TWILIO, "TWILIO_FROM", "TWILIO_MESSAGING_SERVICE_SID"),
    ({"TWILIO_VOICE_NUMBER": "+15005550007"}, None, "TWILIO_ACCOUNT_SID"),
    (ALIYUN, "ALIYUN_ACCESS_KEY_SECRET", "ALIYUN_ACCESS_KEY_SECRET"),
    (ALIYUN, "ALIYUN_SMS_TEMPLATE_CODE", "ALIYUN_SMS_TEMPLATE_CODE"),
    (VAPID, "VAPID_SUBJECT", "VAPID_SUBJECT"),
    ({**VAPID, "VAPID_SUBJECT": "duty@example.cn"}, None, "VAPID_SUBJECT"),
    ({"TWILIO_API_BASE_URL": "localhost:8765"}, None, "TWILIO_API_BASE_URL"),
    ({"SMS_BACKEND": "tencent"}, None, "SMS_BACKEND"),
])
def test_a_chosen_backend_without_its_settings_fails_at_start_naming_them(
        tmp_path: Path, environ: dict[str, str], missing: str | None, named: str) -> None:
    environ = {k: v for k, v in environ.items() if k != missing}
    with pytest.raises(ConfigError, match=named):
        settings(tmp_path, **environ)


WECOM = {"WECOM_CORP_ID": "ww5823bf96d3bd56c7", "WECOM_AGENT_ID": "1000002",
         "WECOM_SECRET": "s", "WECOM_TOKEN": "QDG6eK",
         "WECOM_AES_KEY": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"}
VOICE = {"ALIYUN_ACCESS_KEY_ID": "id", "ALIYUN_ACCESS_KEY_SECRET": "s",
         "ALIYUN_VOICE_SHOW_NUMBER": "057188880000", "ALIYUN_VOICE_TTS_CODE": "TTS_1"}
IVR = {**VOICE, "ALIYUN_VOICE_IVR_CODE": "TTS_2", "ALIYUN_VOICE_IVR_REPLY_CODE": "TTS_3"}


def test_wecom_dingtalk_and_aliyun_voice_settings_are_taken_with_their_provider_urls(
        tmp_path: Path) -> None:
    loaded = settings(tmp_path, **WECOM, **IVR, DINGTALK_API_BASE_URL="http://127.0.0.1:9/")
    assert loaded["WECOM_AGENT_ID"] == 1000002 and loaded["WECOM_TOKEN"] == "QDG6eK"
    assert loaded["ALIYUN_VOICE_IVR_REPLY_CODE"] == "TTS_3"
    assert loaded["DINGTALK_API_BASE_URL"] == "http://127.0.0.1:9"
    defaults = settings(tmp_path)
    assert (defaults["WECOM_API_BASE_URL"], defaults["DINGTALK_API_BASE_URL"],
            defaults["ALIYUN_VOICE_API_BASE_URL"]) == (
        "https://qyapi.weixin.qq.com", "https://oapi.dingtalk.com", "https://dyvmsapi.aliyuncs.com")
    assert defaults["WECOM_CORP_ID"] is None and defaults["ALIYUN_VOICE_TTS_CODE"] is None


@pytest.mark.parametrize(("environ", "missing", "named"), [
    *[(WECOM, name, name) for name in WECOM],
    ({**WECOM, "WECOM_AGENT_ID": "app-2"}, None, "WECOM_AGENT_ID"),
    ({**WECOM, "WECOM_AES_KEY": "short"}, None, "WECOM_AES_KEY"),
    (VOICE, "ALIYUN_VOICE_TTS_CODE", "ALIYUN_VOICE_TTS_CODE"),
    (VOICE, "ALIYUN_VOICE_SHOW_NUMBER", "ALIYUN_VOICE_SHOW_NUMBER"),
    (VOICE, "ALIYUN_ACCESS_KEY_SECRET", "ALIYUN_ACCESS_KEY_SECRET"),
    (IVR, "ALIYUN_VOICE_IVR_REPLY_CODE", "ALIYUN_VOICE_IVR_REPLY_CODE"),
    ({"ALIYUN_VOICE_IVR_CODE": "TTS_2", "ALIYUN_VOICE_IVR_REPLY_CODE": "TTS_3"}, None,
     "ALIYUN_VOICE_SHOW_NUMBER"),
    *[({name: "qyapi.weixin.qq.com"}, None, name) for name in (
        "WECOM_API_BASE_URL", "DINGTALK_API_BASE_URL", "ALIYUN_VOICE_API_BASE_URL")],
])
def test_a_partial_wecom_or_voice_setup_fails_at_start_naming_what_is_missing(
        tmp_path: Path, environ: dict[str, str], missing: str | None, named: str) -> None:
    environ = {k: v for k, v in environ.items() if k != missing}
    with pytest.raises(ConfigError, match=named):
        settings(tmp_path, **environ)
