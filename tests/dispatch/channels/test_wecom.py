"""WeCom alert cards through a local WeCom, and encrypted clicks checked as WeCom computes them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from dispatch.channels.wecom import (
    ACCEPT,
    AlertCard,
    CallbackCrypto,
    CallbackRefused,
    CardClick,
    WeComClient,
)
from tests.fakes.wecom_server import (
    AES_KEY,
    CORP_ID,
    SECRET,
    TOKEN,
    FakeWeCom,
    card_click_xml,
    encrypt_callback,
    wecom_encrypt,
    wecom_signature,
)

NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
CARD = AlertCard(task_id="case-17-n-42", title="电梯故障", place="1栋 1单元 · 1号电梯",
                 category="电梯", urgency="紧急", reports=3,
                 view_url="https://linli.example.cn/m/c/abc")
# WeCom's published sample (WXBizMsgCrypt, "验证回调URL"): its callback URL check.
SAMPLE = {"token": "QDG6eK", "aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
          "corp_id": "wx5823bf96d3bd56c7",
          "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
          "timestamp": "1409659589", "nonce": "263014780",
          "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdt"
                     "p+4RPcs8TgAE7OaBO+FZXvnaqQ=="}


@pytest.fixture
def fake_wecom() -> Iterator[FakeWeCom]:
    with FakeWeCom() as fake:
        yield fake


def client(fake: FakeWeCom) -> WeComClient:
    return WeComClient(CORP_ID, 1000002, SECRET, base_url=fake.url)


def crypto() -> CallbackCrypto:
    return CallbackCrypto(TOKEN, AES_KEY, CORP_ID)


def test_an_alert_is_a_button_card_with_place_category_urgency_and_reports(
        fake_wecom: FakeWeCom) -> None:
    result = client(fake_wecom).send_card("wangshifu", CARD)
    assert result.ok and result.follow_up
    [sent] = fake_wecom.sent
    assert sent["touser"] == "wangshifu" and sent["agentid"] == 1000002
    assert sent["msgtype"] == "template_card"
    card = sent["template_card"]
    assert card["card_type"] == "button_interaction" and card["task_id"] == "case-17-n-42"
    assert {row["keyname"]: row["value"] for row in card["horizontal_content_list"]} == {
        "地点": "1栋 1单元 · 1号电梯", "类别": "电梯", "紧急程度": "紧急", "反映人数": "3 位居民"}
    assert [button["text"] for button in card["button_list"]] == ["接单", "转交", "查看"]
    assert card["button_list"][2]["url"] == "https://linli.example.cn/m/c/abc"


def test_the_access_token_is_fetched_once_and_kept(fake_wecom: FakeWeCom) -> None:
    wecom = client(fake_wecom)
    assert all(wecom.send_card(f"member{n}", CARD).ok for n in range(3))
    assert fake_wecom.token_fetches == 1 and len(fake_wecom.sent) == 3


@pytest.mark.parametrize("lose_token", [FakeWeCom.expire_tokens, FakeWeCom.revoke_tokens],
                         ids=["42001-expired", "40014-invalid"])
def test_a_rejected_token_is_fetched_anew_and_the_call_made_once_more(
        fake_wecom: FakeWeCom, lose_token: object) -> None:
    wecom = client(fake_wecom)
    assert wecom.send_card("a", CARD).ok
    lose_token(fake_wecom)  # type: ignore[operator]
    assert wecom.send_card("b", CARD).ok
    assert fake_wecom.token_fetches == 2
    assert [p["touser"] for p in fake_wecom.sent] == ["a", "b"]


def test_a_token_rejected_even_when_new_fails_once_instead_of_looping(
        fake_wecom: FakeWeCom) -> None:
    wecom = client(fake_wecom)
    fake_wecom.answer_next(42001)
    fake_wecom.answer_next(42001)
    result = wecom.send_card("a", CARD)
    assert not result.ok and result.error_code == "wecom-42001"
    assert fake_wecom.calls.count("message/send") == 2


def test_a_token_near_its_expiry_is_fetched_anew() -> None:
    with FakeWeCom(expires_in=30) as fake:  # less than the minute kept in hand
        wecom = client(fake)
        assert wecom.send_card("a", CARD).ok and wecom.send_card("b", CARD).ok
        assert fake.token_fetches == 2


def test_a_wrong_secret_fails_the_send_without_retrying(fake_wecom: FakeWeCom) -> None:
    result = WeComClient(CORP_ID, 1000002, "wrong", base_url=fake_wecom.url).send_card("a", CARD)
    assert not result.ok and not result.retryable and result.error_code == "wecom-token-4000"


@pytest.mark.parametrize(("errcode", "extra", "code", "retryable"), [
    (45009, {}, "wecom-45009", True),
    (-1, {}, "wecom--1", True),
    (0, {"invaliduser": "ghost"}, "wecom-bad-user", False),
    (81013, {}, "wecom-81013", False),
])
def test_wecom_errors_say_whether_trying_again_can_help(
        fake_wecom: FakeWeCom, errcode: int, extra: dict[str, str], code: str,
        retryable: bool) -> None:
    fake_wecom.answer_next(errcode, **extra)
    result = client(fake_wecom).send_card("a", CARD)
    assert (result.ok, result.error_code, result.retryable) == (False, code, retryable)


def test_an_unreachable_wecom_is_a_retryable_failure() -> None:
    with FakeWeCom() as fake:
        url = fake.url
    result = WeComClient(CORP_ID, 1, SECRET, base_url=url, timeout=2).send_card("a", CARD)
    assert not result.ok and result.retryable and result.error_code == "connection"


def test_the_card_is_updated_for_everyone_paged_with_who_accepted(fake_wecom: FakeWeCom) -> None:
    wecom = client(fake_wecom)
    sent = wecom.send_card("a", CARD)
    assert wecom.update_card(str(sent.follow_up), "已由 王师傅 接单").ok
    [update] = fake_wecom.updates
    assert update == {"atall": 1, "agentid": 1000002, "response_code": sent.follow_up,
                      "button": {"replace_name": "已由 王师傅 接单"}}


def test_the_fakes_encryption_reproduces_wecoms_published_sample() -> None:
    """The test side's algorithm is WeCom's: same signature, same ciphertext."""
    assert wecom_signature(SAMPLE["token"], SAMPLE["timestamp"], SAMPLE["nonce"],
                           SAMPLE["echostr"]) == SAMPLE["msg_signature"]
    assert wecom_encrypt("1616140317555161061", SAMPLE["aes_key"], SAMPLE["corp_id"],
                         prefix=b"c41b64491c2468d0") == SAMPLE["echostr"]


def test_the_callback_url_check_of_wecoms_sample_is_answered() -> None:
    sample = CallbackCrypto(SAMPLE["token"], SAMPLE["aes_key"], SAMPLE["corp_id"])
    at = datetime.fromtimestamp(int(SAMPLE["timestamp"]), UTC)
    assert sample.verify_url(SAMPLE["msg_signature"], SAMPLE["timestamp"], SAMPLE["nonce"],
                             SAMPLE["echostr"], at) == "1616140317555161061"


def click(**overrides: object) -> tuple[bytes, dict[str, str]]:
    stamp = int(NOW.timestamp())
    xml = card_click_xml(userid="wangshifu", button=ACCEPT, task_id="case-17-n-42",
                         response_code="rc-1", created=stamp)
    posted = encrypt_callback(xml, timestamp=stamp, **overrides)  # type: ignore[arg-type]
    return posted.body, {"msg_signature": posted.msg_signature, "timestamp": posted.timestamp,
                         "nonce": posted.nonce}


def test_a_click_on_accept_is_handed_back_as_who_clicked_what_on_which_card() -> None:
    body, query = click()
    assert crypto().card_click(**query, body=body, now=NOW + timedelta(seconds=3)) == CardClick(
        userid="wangshifu", button="accept", task_id="case-17-n-42", response_code="rc-1",
        agent_id="1000002", created_at=NOW)


@pytest.mark.parametrize("tamper", ["signature", "token", "aes_key", "corp_id"])
def test_a_callback_not_signed_or_encrypted_for_us_is_refused(tamper: str) -> None:
    overrides = {"token": "other", "aes_key": "A" * 43, "corp_id": "ww0000"}
    body, query = click(**({tamper: overrides[tamper]} if tamper in overrides else {}))
    if tamper == "signature":
        query["msg_signature"] = query["msg_signature"][::-1]
    with pytest.raises(CallbackRefused):
        crypto().card_click(**query, body=body, now=NOW)


@pytest.mark.parametrize("age", [timedelta(minutes=-5, seconds=-1), timedelta(minutes=5, seconds=1),
                                 timedelta(days=1)])
def test_a_callback_older_than_five_minutes_is_refused_as_a_replay(age: timedelta) -> None:
    body, query = click()
    assert crypto().card_click(**query, body=body, now=NOW + timedelta(minutes=5))
    with pytest.raises(CallbackRefused, match="replay"):
        crypto().card_click(**query, body=body, now=NOW + age)


@pytest.mark.parametrize("body", [b"", b"<xml><Encrypt>", b"not xml",
                                  b'<!DOCTYPE x [<!ENTITY a "aaaa">]>'
                                  b"<xml><Encrypt>&a;</Encrypt></xml>",
                                  b"<xml><Encrypt><![CDATA[!!!]]></Encrypt></xml>"])
def test_a_malformed_callback_is_refused_not_raised(body: bytes) -> None:
    with pytest.raises(CallbackRefused):
        crypto().card_click("0" * 40, str(int(NOW.timestamp())), "1", body, NOW)


def test_an_event_that_is_not_a_card_click_is_none() -> None:
    stamp = int(NOW.timestamp())
    xml = (f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>a</FromUserName>"
           f"<CreateTime>{stamp}</CreateTime><MsgType>event</MsgType>"
           f"<Event>enter_agent</Event><AgentID>1000002</AgentID></xml>")
    posted = encrypt_callback(xml, timestamp=stamp)
    assert crypto().card_click(posted.msg_signature, posted.timestamp, posted.nonce,
                               posted.body, NOW) is None
