"""Photos are decoded and written again: no metadata survives, odd inputs are refused."""

from __future__ import annotations

from io import BytesIO

import pytest
import sqlalchemy as sa
from flask import Flask
from PIL import Image

from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Photo, Place
from dispatch.resident import photos
from tests.dispatch.resident.helpers import jpeg_with_gps, png_bytes


def test_reencoding_drops_gps_and_camera_metadata_and_applies_orientation() -> None:
    result = photos.reencode(BytesIO(jpeg_with_gps((640, 480))))
    image = Image.open(BytesIO(result.data))
    assert image.format == "JPEG" and (result.width, result.height) == (480, 640)
    assert len(image.getexif()) == 0 and "exif" not in image.info
    assert b"PhoneMaker" not in result.data


def test_large_photos_are_scaled_down_for_slow_lines() -> None:
    result = photos.reencode(BytesIO(png_bytes((4000, 1000), mode="RGB")))
    assert (result.width, result.height) == (photos.MAX_SIDE, 400)


def test_transparent_png_becomes_white_not_black() -> None:
    result = photos.reencode(BytesIO(png_bytes((20, 20))))
    assert Image.open(BytesIO(result.data)).getpixel((10, 10)) == (255, 255, 255)


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "not_image"),
    (b"hello, not an image", "not_image"),
    (jpeg_with_gps()[:200], "not_image"),  # truncated
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "not_image"),
])
def test_files_that_are_not_photos_are_refused(content: bytes, reason: str) -> None:
    with pytest.raises(photos.PhotoError) as raised:
        photos.reencode(BytesIO(content))
    assert raised.value.reason == reason


def test_other_image_formats_are_refused() -> None:
    out = BytesIO()
    Image.new("RGB", (10, 10)).save(out, "BMP")
    with pytest.raises(photos.PhotoError) as raised:
        photos.reencode(BytesIO(out.getvalue()))
    assert raised.value.reason == "format"


def test_decompression_bombs_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(photos, "MAX_PIXELS_DECODED_WHOLE", 100)
    with pytest.raises(photos.PhotoError) as raised:
        photos.reencode(BytesIO(png_bytes((20, 20))))
    assert raised.value.reason == "too_big"


def test_a_jpeg_comment_with_a_phone_number_does_not_survive_reencoding() -> None:
    out = BytesIO()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(out, "JPEG", comment=b"tel 13800138001")
    result = photos.reencode(BytesIO(out.getvalue()))
    assert b"13800138001" not in result.data
    assert "comment" not in Image.open(BytesIO(result.data)).info


def test_mpo_photos_from_phone_cameras_are_accepted_as_their_first_image() -> None:
    out = BytesIO()
    first, second = Image.new("RGB", (80, 60), (200, 0, 0)), Image.new("RGB", (80, 60))
    first.save(out, "MPO", save_all=True, append_images=[second])
    assert Image.open(BytesIO(out.getvalue())).format == "MPO"
    result = photos.reencode(BytesIO(out.getvalue()))
    assert (result.width, result.height) == (80, 60)
    assert Image.open(BytesIO(result.data)).getpixel((40, 30))[0] > 150


def test_a_small_palette_png_of_huge_dimensions_is_refused_before_decoding() -> None:
    out = BytesIO()
    Image.new("P", (7000, 7000)).save(out, "PNG", optimize=True)
    assert len(out.getvalue()) < 200_000
    with pytest.raises(photos.PhotoError) as raised:
        photos.reencode(BytesIO(out.getvalue()))
    assert raised.value.reason == "too_big"


def test_a_48_megapixel_jpeg_is_decoded_at_reduced_scale() -> None:
    out = BytesIO()
    Image.new("RGB", (8000, 6000), (10, 120, 200)).save(out, "JPEG", quality=50)
    result = photos.reencode(BytesIO(out.getvalue()))
    assert (result.width, result.height) == (photos.MAX_SIDE, 1200)


def test_files_over_the_byte_limit_are_refused_before_decoding() -> None:
    with pytest.raises(photos.PhotoError) as raised:
        photos.reencode(BytesIO(b"\0" * 101), max_bytes=100)
    assert raised.value.reason == "too_big"


def test_a_reports_photos_are_committed_with_the_report(app: Flask, community: int) -> None:
    with app.app_context():
        place = db.session.scalar(sa.select(Place).where(Place.code == "TS-B1-U1"))
        ready = [photos.reencode(BytesIO(jpeg_with_gps()))]
        filed = file_report(place, "repair", text="漏水", photos=photos.rows(ready))
        report_id = filed.report.id
        db.session.remove()  # nothing left pending: what is stored was committed
        stored = db.session.scalars(sa.select(Photo).where(Photo.report_id == report_id)).all()
    assert len(stored) == 1 and stored[0].content_type == "image/jpeg"


def _heic_with_gps(size: tuple[int, int]) -> bytes:
    """A HEIC (what iPhones save) whose EXIF carries a GPS position and an orientation."""
    exif = Image.open(BytesIO(jpeg_with_gps((8, 8)))).getexif()
    out = BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(out, "HEIF", exif=exif.tobytes())
    return out.getvalue()


def test_heic_photos_are_accepted_as_plain_jpeg_without_their_metadata() -> None:
    result = photos.reencode(BytesIO(_heic_with_gps((640, 480))))
    image = Image.open(BytesIO(result.data))
    assert image.format == "JPEG" and (result.width, result.height) == (480, 640)
    assert len(image.getexif()) == 0 and b"PhoneMaker" not in result.data


def test_a_heic_larger_than_its_decoding_bound_is_refused_before_decoding() -> None:
    with pytest.raises(photos.PhotoError) as raised:
        photos.reencode(BytesIO(_heic_with_gps((5000, 4000))))
    assert raised.value.reason == "too_big"
