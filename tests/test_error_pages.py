"""Errors a person meets get a page in Chinese (English through the switch), never Werkzeug's
English one; what machines read (webhooks, Prometheus, health) stays as it was.

Found by an outsider's run: an expired CSRF token on a member's 接单 form or the staff login
answered "Bad Request — The CSRF session token is missing.", and the bare address, unknown
addresses and wrong methods answered "Not Found" and "Method Not Allowed".
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from dispatch.resident import i18n

WERKZEUG = ("Not Found", "Bad Request", "Method Not Allowed", "CSRF", "<title>4")


def _page(response: Any, status: int) -> str:
    html = response.get_data(as_text=True)
    assert response.status_code == status, html[:300]
    assert response.mimetype == "text/html"
    assert not [english for english in WERKZEUG if english in html], html[:300]
    return str(html)


def test_the_bare_address_says_what_the_service_is_and_where_staff_log_in(client: Any) -> None:
    html = _page(client.get("/"), 200)
    assert "邻里 · 社区一键呼叫" in html and "扫描楼栋单元门口或电梯里的二维码" in html
    assert 'href="/staff/login"' in html and 'lang="zh-CN"' in html


@pytest.mark.parametrize("path", ["/nothing-here", "/staff/no-such-page", "/m/push/bad",
                                  "/webhooks-typo"])
def test_an_unknown_address_gets_a_chinese_page_with_the_hotline(client: Any, path: str) -> None:
    html = _page(client.get(path), 404)
    assert "找不到这个页面" in html and "扫描楼栋或电梯里的二维码" in html
    assert 'href="tel:12345"' in html


def test_the_english_switch_applies_to_error_pages_too(client: Any) -> None:
    client.set_cookie(i18n.COOKIE, "en")
    html = _page(client.get("/nothing-here"), 404)
    assert "Page not found" in html and 'lang="en"' in html and "找不到这个页面" not in html
    assert "中文" in html  # and back


def test_a_wrong_method_says_so_and_leads_back_to_the_page(client: Any, app: Flask) -> None:
    response = client.post("/s/ABCDEFGHJK23")
    html = _page(response, 405)
    assert "不能这样打开这个页面" in html and "GET" in response.headers["Allow"]
    assert 'href="/s/ABCDEFGHJK23"' in html and "返回重试" in html


@pytest.mark.parametrize("path", ["/m/accept/1.1.htsio.not-a-real-signature",
                                  "/staff/login"])
def test_an_expired_form_token_on_member_and_staff_forms_leads_back_to_the_form(
        client: Any, path: str) -> None:
    """A member whose browser was closed and opened again taps 接单: the form's CSRF session is
    gone. The page says what happened and links back to the form, which gets a fresh token."""
    html = _page(client.post(path, data={"csrf_token": "stale"}), 400)
    assert "提交没有成功" in html and "刷新后再试一次" in html
    assert f'href="{path}"' in html


def test_machines_get_the_plain_answers_they_always_got(client: Any) -> None:
    """Twilio, Prometheus and health checks read status codes, not pages."""
    hook = client.post("/webhooks/twilio/sms/inbound", data={"From": "+8613800138000", "Body": "1"})
    assert hook.status_code == 403 and "找不到" not in hook.get_data(as_text=True)
    assert "<title>403 Forbidden</title>" in hook.get_data(as_text=True)


def test_a_server_error_is_a_chinese_page_without_the_trace(app: Flask) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: answered, not raised

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("a bug with a secret in its message")

    html = _page(app.test_client().get("/boom"), 500)
    assert "请求无法处理" in html and "secret" not in html and "Traceback" not in html
