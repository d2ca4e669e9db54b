"""Alibaba Cloud voice calls through the official SDK against a local, signature-checking API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from dispatch.channels.aliyun_voice import (
    AliyunVoiceClient,
    CallResult,
    ReceiptRefused,
    parse_receipts,
)
from tests.fakes.aliyun_server import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.fakes.aliyun_voice_server import FakeAliyunVoice

PARAMS = {"place": "1栋1单元1号电梯", "what": "电梯故障"}


@pytest.fixture
def fake_voice() -> Iterator[FakeAliyunVoice]:
    with FakeAliyunVoice() as fake:
        yield fake


def voice(fake: FakeAliyunVoice, secret: str = ACCESS_KEY_SECRET, *,
          ivr: bool = True) -> AliyunVoiceClient:
    return AliyunVoiceClient(ACCESS_KEY_ID, secret, show_number="057188880000",
                             tts_code="TTS_480115001",
                             ivr_code="TTS_480115002" if ivr else None,
                             ivr_reply_code="TTS_480115003" if ivr else None,
                             base_url=fake.url)


def test_an_alert_call_reads_the_template_to_the_national_number(
        fake_voice: FakeAliyunVoice) -> None:
    result = voice(fake_voice).alert("+8613800138005", PARAMS, out_id="n-42")
    assert result.ok and "^" in str(result.provider_id)
    [request] = fake_voice.requests
    assert request.signature_ok and request.action == "SingleCallByTts"
    assert request.params["CalledNumber"] == "13800138005"
    assert request.params["CalledShowNumber"] == "057188880000"
    assert request.params["TtsCode"] == "TTS_480115001" and request.params["OutId"] == "n-42"
    assert json.loads(request.params["TtsParam"]) == PARAMS


def test_an_asking_call_maps_1_to_accept_and_2_to_pass(fake_voice: FakeAliyunVoice) -> None:
    assert voice(fake_voice).ask("13800138005", PARAMS, out_id="n-43").ok
    [request] = fake_voice.requests
    assert request.signature_ok and request.action == "IvrCall"
    assert request.params["StartCode"] == "TTS_480115002"
    assert json.loads(request.params["StartTtsParams"]) == PARAMS
    menu = {request.params[f"MenuKeyMap.{n}.Key"]: json.loads(
        request.params[f"MenuKeyMap.{n}.TtsParams"])["result"] for n in (1, 2)}
    assert menu == {"1": "已为您接单，请尽快到场", "2": "好的，将转给下一位"}
    assert request.params["MenuKeyMap.1.Code"] == "TTS_480115003"


def test_an_account_without_ivr_templates_cannot_ask(fake_voice: FakeAliyunVoice) -> None:
    client = voice(fake_voice, ivr=False)
    assert not client.interactive
    with pytest.raises(RuntimeError, match="ALIYUN_VOICE_IVR_CODE"):
        client.ask("13800138005", PARAMS, out_id="n-44")
    assert fake_voice.requests == []


def test_a_request_signed_with_another_secret_is_refused(fake_voice: FakeAliyunVoice) -> None:
    result = voice(fake_voice, "not-the-secret").alert("13800138005", PARAMS, out_id="n-1")
    assert not result.ok and not result.retryable and result.error_code == "ali-SignatureDoe"
    assert [r.signature_ok for r in fake_voice.requests] == [False]


@pytest.mark.parametrize(("code", "short", "retryable"), [
    ("isv.MOBILE_NUMBER_ILLEGAL", "ali-MOBILE_NUMBE", False),
    ("isv.BUSINESS_LIMIT_CONTROL", "ali-BUSINESS_LIM", True),
])
def test_aliyun_errors_say_whether_trying_again_can_help(
        fake_voice: FakeAliyunVoice, code: str, short: str, retryable: bool) -> None:
    fake_voice.answer_next(code)
    result = voice(fake_voice).alert("13800138005", PARAMS, out_id="n-1")
    assert (result.ok, result.error_code, result.retryable) == (False, short, retryable)


def test_call_receipts_give_each_call_its_answer_and_key(fake_voice: FakeAliyunVoice) -> None:
    client = voice(fake_voice)
    accepted = str(client.ask("13800138005", PARAMS, out_id="n-1").provider_id)
    passed = str(client.ask("13800138006", PARAMS, out_id="n-2").provider_id)
    missed = str(client.alert("13800138007", PARAMS, out_id="n-3").provider_id)
    push = fake_voice.receipts(
        {"call_id": accepted, "answered": "1", "dtmf": "1", "out_id": "n-1"},
        {"call_id": passed, "answered": "1", "dtmf": "2", "out_id": "n-2"},
        {"call_id": missed, "out_id": "n-3"})
    results = parse_receipts(push)
    assert results[accepted] == CallResult(
        call_id=accepted, out_id="n-1", status_code="200000", status="用户听完语音",
        answered=True, duration=36, started_at=datetime(2026, 11, 30, 9, 30, 5, tzinfo=UTC),
        ended_at=datetime(2026, 11, 30, 9, 30, 41, tzinfo=UTC), dtmf="1", choice="accept")
    assert results[accepted].started_at.tzinfo is UTC  # type: ignore[union-attr]
    assert (results[passed].answered, results[passed].choice) == (True, "pass")
    assert (results[missed].answered, results[missed].choice, results[missed].out_id) == (
        False, None, "n-3")


def test_a_receipt_pushed_twice_or_listed_twice_gives_one_result_per_call(
        fake_voice: FakeAliyunVoice) -> None:
    call_id = str(voice(fake_voice).ask("13800138005", PARAMS, out_id="n-1").provider_id)
    record = {"call_id": call_id, "answered": "1", "dtmf": "1"}
    once = parse_receipts(fake_voice.receipts(record))
    assert parse_receipts(fake_voice.receipts(record, record)) == once
    assert parse_receipts(fake_voice.receipts(record)) == once and len(once) == 1


@pytest.mark.parametrize("body", [b"", b"{}", b"[1]", b'[{"status_code": "200000"}]',
                                  b'[{"call_id": "1^2", "start_time": "yesterday"}]', b"\xff"])
def test_a_malformed_receipt_is_refused_not_raised(body: bytes) -> None:
    with pytest.raises(ReceiptRefused):
        parse_receipts(body)
