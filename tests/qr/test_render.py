"""Single stickers: URL, QR symbol, SVG for the staff page and PNG."""

import io
import re
import xml.etree.ElementTree as ET

import pytest
import segno
import zxingcpp
from PIL import Image, ImageDraw

from qr.fonts import DEBIAN_PACKAGE, MissingFontError, cjk_font, cjk_font_path
from qr.labels import ELEVATOR_EMERGENCY, StickerLabel, grouped_code, sticker_url
from qr.render import (
    MIN_VERSION,
    QUIET_ZONE,
    QrMatrix,
    TextSlot,
    fit_text,
    module_mm,
    qr_matrix,
    segno_matrix,
    sticker_face,
    sticker_png,
    sticker_svg,
)

BASE_URL = "https://linli.example.cn"
SVG = "{http://www.w3.org/2000/svg}"


def make_label(
    code: str = "K7QM3X9PZ2AB", kind: str = "unit", place: str = "3栋 2单元"
) -> StickerLabel:
    return StickerLabel(
        code=code,
        url=sticker_url(BASE_URL, code),
        community="东湖花园",
        place=place,
        kind=kind,
        hotline="0752-2345678",
    )


def decode(image: Image.Image) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)


def matrix_image(matrix: QrMatrix, scale: int = 4) -> Image.Image:
    """Paint a matrix with its quiet zone, as a scanner would see it."""
    side = (matrix.size + 2 * QUIET_ZONE) * scale
    image = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(image)
    for row, col, length in matrix.dark_runs():
        x, y = (col + QUIET_ZONE) * scale, (row + QUIET_ZONE) * scale
        draw.rectangle((x, y, x + length * scale - 1, y + scale - 1), fill=0)
    return image


def test_sticker_url_is_upper_case_so_it_fits_alphanumeric_mode():
    assert sticker_url("https://linli.example.cn/", "k7qm3x9pz2ab") == (
        "HTTPS://LINLI.EXAMPLE.CN/S/K7QM3X9PZ2AB"
    )


def test_sticker_url_with_characters_outside_alphanumeric_mode_is_refused():
    with pytest.raises(ValueError, match="alphanumeric"):
        sticker_url("https://linli.example.cn/?x=1", "K7QM3X9PZ2AB")


def test_sticker_label_with_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        make_label(kind="garage")


def test_code_is_grouped_in_fours_for_manual_entry():
    assert grouped_code("K7QM3X9PZ2AB") == "K7QM-3X9P-Z2AB"


def test_qr_matrix_decodes_to_the_url_at_level_h():
    url = sticker_url(BASE_URL, "K7QM3X9PZ2AB")
    [barcode] = decode(matrix_image(qr_matrix(url)))
    assert barcode.text == url
    assert barcode.ec_level == "H"


def test_qr_matrix_is_at_least_the_version_that_survives_damage():
    url = sticker_url(BASE_URL, "K7QM3X9PZ2AB")
    reference = segno.make_qr(url, error="h", boost_error=False)
    assert reference.mode == "alphanumeric" and reference.version < MIN_VERSION == 6
    assert qr_matrix(url).size == segno_matrix(url).size == 17 + 4 * MIN_VERSION


def test_a_url_too_long_for_the_minimum_version_gets_the_smallest_that_fits():
    url = sticker_url("https://" + "LINLI." * 12 + "EXAMPLE.CN", "K7QM3X9PZ2AB")
    reference = segno.make_qr(url, error="h", boost_error=False)
    assert reference.version > MIN_VERSION
    assert qr_matrix(url).size == segno_matrix(url).size == reference.symbol_size(border=0)[0]


def test_qr_matrix_rows_and_runs_describe_the_same_modules():
    matrix = qr_matrix(sticker_url(BASE_URL, "K7QM3X9PZ2AB"))
    rows = matrix.rows()
    from_runs = {(r, c + i) for r, c, length in matrix.dark_runs() for i in range(length)}
    dark = {(r, c) for r, row in enumerate(rows) for c, is_dark in enumerate(row) if is_dark}
    assert from_runs == dark
    assert rows[0][:7] == (True,) * 7  # the top-left finder pattern
    assert not rows[0][7]  # its separator


def test_modules_under_half_a_millimetre_are_refused():
    assert module_mm(41 * 0.5, 33) == 0.5
    with pytest.raises(ValueError, match=r"0\.49 mm"):
        module_mm(41 * 0.49, 33)


def test_sticker_png_decodes_to_the_url():
    label = make_label()
    image = Image.open(io.BytesIO(sticker_png(label, scale=4)))
    [barcode] = decode(image)
    assert barcode.text == label.url
    assert barcode.ec_level == "H"


def test_sticker_png_has_a_four_module_quiet_zone():
    image = Image.open(io.BytesIO(sticker_png(make_label(), scale=1))).convert("L")
    assert image.size == (41 + 8, 41 + 8)
    band = [image.getpixel((x, y)) for x in range(image.width) for y in range(QUIET_ZONE)]
    assert min(band) == 255
    assert image.getpixel((QUIET_ZONE, QUIET_ZONE)) == 0


def test_sticker_svg_is_xml_with_the_qr_path_and_every_text():
    label = make_label()
    root = ET.fromstring(sticker_svg(label))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == [  # top to bottom
        "3栋 2单元",
        "东湖花园 · 扫码一键呼叫 / 留言",
        "编号 K7QM-3X9P-Z2AB",
        "无网络请拨 社区值班电话 0752-2345678",
    ]
    assert ELEVATOR_EMERGENCY not in texts
    assert root.get("width") == "60.0mm"


def test_sticker_svg_qr_path_decodes_to_the_url():
    label = make_label()
    [path] = ET.fromstring(sticker_svg(label)).iter(f"{SVG}path")
    size = 41
    matrix = bytearray(b"\xff" * size * size)
    for col, row, length in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", path.get("d")):
        start = int(row) * size + int(col)
        matrix[start : start + int(length)] = b"\x00" * int(length)
    [barcode] = decode(matrix_image(QrMatrix(size, bytes(matrix))))
    assert barcode.text == label.url


def test_elevator_sticker_svg_starts_with_the_emergency_line_on_a_black_band():
    root = ET.fromstring(sticker_svg(make_label(kind="elevator", place="3栋 2单元 · 1号电梯")))
    first = next(root.iter(f"{SVG}text"))
    assert first.text == ELEVATOR_EMERGENCY
    assert first.get("fill") == "#fff"
    assert any(rect.get("fill") == "#000" for rect in root.iter(f"{SVG}rect"))


def test_elevator_face_puts_the_emergency_band_above_everything():
    face = sticker_face(60.0, 63.0, True)
    assert face.banner is not None and face.emergency is not None
    assert face.emergency.baseline < face.place.baseline
    assert face.banner[1] + face.banner[3] < face.place.baseline - face.place.size < face.qr[1]


def test_long_text_shrinks_to_fit_its_slot():
    font = cjk_font()
    slot = TextSlot(x=30, baseline=10, size=4, width=20)
    placed = fit_text(font, "东湖花园三期北区 12栋 3单元 · 2号电梯", slot)
    assert placed.size < 4
    assert font.stringWidth(placed.text, placed.size) == pytest.approx(20)


def test_text_with_a_character_the_font_lacks_is_refused():
    slot = TextSlot(x=30, baseline=10, size=4, width=50)
    with pytest.raises(ValueError, match="no glyph"):
        fit_text(cjk_font(), "3栋 🏠", slot)


def test_missing_font_error_names_the_debian_package(tmp_path):
    with pytest.raises(MissingFontError, match=DEBIAN_PACKAGE):
        cjk_font_path(tmp_path / "nope.ttc")


def test_font_path_can_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LINLI_CJK_FONT", str(tmp_path / "elsewhere.ttf"))
    with pytest.raises(MissingFontError, match=r"elsewhere\.ttf"):
        cjk_font_path()
