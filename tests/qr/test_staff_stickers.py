"""The staff sticker page: a building's sheet, one sticker's SVG/PNG, reissue and revoke."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
import zxingcpp
from flask import Flask
from PIL import Image

from dispatch.community import load_demo
from dispatch.db import db
from dispatch.models import AuditLog, Place, StaffRole, StickerStatus
from qr import codes
from qr.labels import sticker_url
from tests.factories import add_staff, csrf_token, login
from tests.qr.test_printing import decoded_urls


@pytest.fixture
def demo(app: Flask) -> Flask:
    with app.app_context():
        load_demo()
    return app


def _elevator_code(app: Flask, place_code: str = "DH-B01-U1-E1") -> str:
    with app.app_context():
        place = db.session.scalar(sa.select(Place).where(Place.code == place_code))
        return codes.active_sticker(place).code


def test_a_buildings_sheet_downloads_as_a_pdf_whose_codes_decode(demo: Flask, tmp_path) -> None:
    add_staff(demo)
    client = demo.test_client()
    login(client)
    page = client.get("/staff/stickers/DH-B01").get_data(as_text=True)
    code = _elevator_code(demo)
    assert code in page
    response = client.get("/staff/stickers/DH-B01.pdf?layout=2x3")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    path = tmp_path / "b01.pdf"
    path.write_bytes(response.data)
    assert sticker_url(demo.config["PUBLIC_BASE_URL"], code) in decoded_urls(path)


def test_one_sticker_downloads_as_svg_and_as_a_png_that_decodes(demo: Flask) -> None:
    add_staff(demo)
    client = demo.test_client()
    login(client)
    code = _elevator_code(demo)
    svg = client.get(f"/staff/stickers/code/{code}.svg")
    assert svg.status_code == 200 and "<svg" in svg.get_data(as_text=True)
    png = client.get(f"/staff/stickers/code/{code}.png")
    (result,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.data)))
    assert result.text == sticker_url(demo.config["PUBLIC_BASE_URL"], code)


def test_staff_reissue_and_revoke_are_audited(demo: Flask) -> None:
    add_staff(demo)
    client = demo.test_client()
    login(client)
    code = _elevator_code(demo)
    token = csrf_token(client, "/staff/stickers/DH-B01")
    assert client.post(f"/staff/stickers/code/{code}/reissue",
                       data={"csrf_token": token}).status_code == 302
    assert client.post(f"/staff/stickers/code/{code}/revoke",
                       data={"csrf_token": token, "note": "恶意骚扰"}).status_code == 302
    with demo.app_context():
        assert codes.find(code).status == StickerStatus.REVOKED
        place = db.session.scalar(sa.select(Place).where(Place.code == "DH-B01-U1-E1"))
        assert codes.active_sticker(place).code != code
        actions = db.session.scalars(sa.select(AuditLog.action).where(
            AuditLog.action.startswith("stickers.")).order_by(AuditLog.id)).all()
    assert actions == ["stickers.reissue", "stickers.revoke"]


def test_a_viewer_cannot_change_stickers(demo: Flask) -> None:
    add_staff(demo, "viewer", StaffRole.VIEWER)
    client = demo.test_client()
    login(client, "viewer")
    token = csrf_token(client, "/staff/stickers/DH-B01")
    code = _elevator_code(demo)
    assert client.post(f"/staff/stickers/code/{code}/revoke",
                       data={"csrf_token": token}).status_code == 403


def test_a_grid_secretary_sees_only_their_grids_stickers(demo: Flask) -> None:
    add_staff(demo, "sec1", StaffRole.GRID_SECRETARY, grid_code="DH-G1")
    client = demo.test_client()
    login(client, "sec1")
    # DH-B01 is in grid 1, DH-B02 in grid 2 (buildings are dealt round the grids).
    assert client.get("/staff/stickers/DH-B01").status_code == 200
    assert client.get("/staff/stickers/DH-B02").status_code == 404
    assert client.get("/staff/stickers/DH-B02.pdf").status_code == 404
    other = _elevator_code(demo, "DH-B02-U1-E1")
    assert client.get(f"/staff/stickers/code/{other}.svg").status_code == 404
    assert "DH-B02" not in client.get("/staff/stickers/").get_data(as_text=True)
