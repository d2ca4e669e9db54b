"""Every mistyped resident address gets the helpful Chinese page; the icon and description."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.dispatch.resident.helpers import Resident, receipt_token

HELPFUL = "这个二维码或链接无法使用"


@pytest.mark.parametrize("path", ["/s/", "/S/", "/c/", "/s/NOPE/extra", "/S/abc/def/ghi",
                                  "/c/short", "/c/short/", "/c/x/y/z", "/s/%E4%B8%AD/"])
def test_unknown_paths_under_s_and_c_get_the_helpful_page(client: object, path: str) -> None:
    response = client.get(path)  # type: ignore[attr-defined]
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert HELPFUL in html and 'lang="zh-CN"' in html and "Not Found" not in html


def test_a_sticker_or_status_link_with_a_slash_too_many_goes_where_it_meant(
        app: Flask, resident: Resident) -> None:
    code = resident.stickers["TS-B1-U1"]
    response = resident.client.get(f"/S/{code}/")
    assert response.status_code == 301 and response.headers["Location"].endswith(f"/s/{code}")
    token = receipt_token(resident.message())
    response = resident.client.get(f"/c/{token}/")
    assert response.status_code == 301 and response.headers["Location"].endswith(f"/c/{token}")


def test_pages_have_an_icon_and_a_description(client: object, resident: Resident) -> None:
    html = resident.scan().get_data(as_text=True)
    assert '<link rel="icon" href="/static/favicon.svg"' in html
    assert '<meta name="description" content="邻里一键呼叫' in html
    icon = client.get("/favicon.ico")  # type: ignore[attr-defined]
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"


def test_every_page_has_the_bottom_action_bar(resident: Resident) -> None:
    html = resident.scan().get_data(as_text=True)
    code = resident.stickers["TS-B1-U1-E1"]
    bar = html.split('<nav class="bar"', 1)[1].split("</nav>", 1)[0]
    assert f'href="/s/{code}/call"' in bar and 'href="#message"' in bar
    token = receipt_token(resident.message())
    status = resident.client.get(f"/c/{token}").get_data(as_text=True)
    assert 'href="tel:' in status.split('<nav class="bar"', 1)[1]
