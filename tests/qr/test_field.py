"""Stickers in the field: a damaged or blurred code still decodes, its modules are big enough,
the fallback text is legible, the band is clear of the cut, and merged PDFs keep their fonts
apart."""

from __future__ import annotations

import re
import subprocess
from datetime import date
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image, ImageChops

import qr.sheet
from qr.fonts import cjk_font
from qr.labels import StickerLabel
from qr.render import qr_matrix, static_texts, sticker_face
from qr.sheet import A4_MM, LAYOUTS, Layout, write_sheets
from scripts.bench.bench_damage import (
    DECODERS,
    ENCODERS,
    band,
    blur,
    hole,
    read_zbar,
    render_samples,
    sample_labels,
    torn_corner,
)


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("damage", [torn_corner(0.25), hole(0.20), band(0.10)],
                         ids=["torn corner 25%", "hole 20%", "band 10%"])
def test_a_damaged_printed_sticker_decodes_with_zbar_wechat_and_zxing(damage, encoder: str,
                                                                      tmp_path: Path):
    # A unit sticker of a real 3x4 sheet, rasterised at 150 dpi (see docs/benchmarks.md), its
    # symbol drawn by the sheets' encoder, the console's (segno) or python-qrcode.
    [sample, *_] = render_samples(Layout.preset("3x4"), 150, tmp_path, encoder)
    damaged = damage(sample.image, sample.box, 150)
    for name, read in DECODERS.items():
        assert read(damaged) == [sample.url], name


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_an_out_of_focus_photo_of_any_printed_sticker_decodes_with_zbar_wechat_and_zxing(
        layout: str, tmp_path: Path) -> None:
    # 100 dpi and a 0.25 mm blur: a phone held at arm's length, not quite in focus. zbar read
    # 8 of 12 such 3x4 stickers when elevator symbols had 0.63 mm modules.
    for sample in render_samples(Layout.preset(layout), 100, tmp_path):
        blurred = blur()(sample.image, sample.box, 100)
        for name, read in DECODERS.items():
            assert read(blurred) == [sample.url], (name, sample.kind)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_printed_symbol_has_modules_of_at_least_three_quarters_of_a_millimetre(
        layout: str, tmp_path: Path) -> None:
    # Measured on the printed page, so the elevator band, the texts and the quiet zone all take
    # their share first; below 0.75 mm zbar lost blurred and torn stickers (docs/benchmarks.md).
    preset = Layout.preset(layout)
    pdf = tmp_path / "sheet.pdf"
    write_sheets(sample_labels(preset.per_page), pdf, layout=preset, title="东湖花园",
                 printed_on=date(2026, 12, 6))
    dpi = 300
    page = pdfium.PdfDocument(pdf)[0].render(scale=dpi / 72, grayscale=True).to_pil()
    symbols = zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(symbols) == preset.per_page
    for symbol in symbols:
        width_px = symbol.position.top_right.x - symbol.position.top_left.x
        modules = 17 + 4 * int(symbol.extra["Version"])
        assert width_px / modules * 25.4 / dpi >= 0.75


def test_the_damage_benchmark_prints_each_encoders_own_symbol_and_puts_the_sheets_back(
        tmp_path: Path) -> None:
    [sheets, *_] = render_samples(Layout.preset("2x3"), 100, tmp_path, "zxing-cpp")
    [console, *_] = render_samples(Layout.preset("2x3"), 100, tmp_path, "segno")
    assert sheets.url == console.url
    assert ImageChops.difference(sheets.image, console.image).getbbox() is not None  # masks
    assert qr.sheet.qr_matrix is qr_matrix


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("kind", ["unit", "elevator", "area"])
def test_the_no_network_hotline_prints_at_least_3_mm_high(layout: str, kind: str,
                                                          tmp_path: Path) -> None:
    preset = Layout.preset(layout)
    face = sticker_face(preset.sticker_width_mm, preset.sticker_height_mm, kind == "elevator")
    font = cjk_font()
    [hotline] = [t for t in static_texts(font, face, "东湖花园", kind, "0752-2345678")
                 if t.text.startswith("无网络")]
    assert hotline.size >= 3.0


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_elevator_band_stays_2_mm_inside_the_cut(layout: str) -> None:
    preset = Layout.preset(layout)
    face = sticker_face(preset.sticker_width_mm, preset.sticker_height_mm, True)
    assert face.banner is not None
    x, y, width, _height = face.banner
    assert x >= 2.0 and y >= 2.0 and face.width - (x + width) >= 2.0


def _subset_tags(path: Path) -> list[bytes]:
    return re.findall(rb"/BaseFont /([A-Z]{6})\+WenQuanYi", path.read_bytes())


def _sheet(labels: list[StickerLabel], path: Path) -> Path:
    write_sheets(iter(labels), path, layout=Layout.preset("3x4"), title="东湖花园",
                 printed_on=date(2026, 12, 6))
    return path


def test_every_font_subset_carries_its_own_tag_across_files(tmp_path: Path) -> None:
    labels = list(sample_labels(3))
    other = [StickerLabel(lb.code, lb.url, "西湖雅苑", "九栋 七单元", lb.kind, "0571-7654321",
                          "XH-B9-U7") for lb in labels]
    first, second = _sheet(labels, tmp_path / "a.pdf"), _sheet(other, tmp_path / "b.pdf")
    tags_a, tags_b = _subset_tags(first), _subset_tags(second)
    assert tags_a and tags_b
    assert b"AAAAAA" not in tags_a + tags_b
    assert len(set(tags_a)) == len(tags_a)
    assert not set(tags_a) & set(tags_b)  # different subsets, different tags
    assert _subset_tags(_sheet(labels, tmp_path / "again.pdf")) == tags_a  # reproducible


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_code_of_a_poppler_raster_decodes_with_zbar(layout: str, tmp_path: Path) -> None:
    # poppler (evince, pdftoppm, many print previews) draws the symbols its own way; it once
    # shifted cached glyphs to whole pixels and zbar read 4 of 12 codes. Each sticker is read on
    # its own, as a phone sees it: on a whole page zbar 0.23 tries triples of the 36 finder
    # patterns and gives up after 8,192 failed triples in a row (qr_reader_match_centers), so
    # whether it gets to the last symbol depends on the order it tries them in, not on the
    # printing (with any one of the other 11 stickers blanked out it reads all the rest).
    preset = Layout.preset(layout)
    labels = list(sample_labels(preset.per_page))
    pdf = tmp_path / "sheet.pdf"
    write_sheets(iter(labels), pdf, layout=preset, title="东湖花园", printed_on=date(2026, 12, 6))
    dpi = 150
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-singlefile", str(pdf),
                    str(tmp_path / "page")], check=True)
    px = dpi / 25.4
    with Image.open(tmp_path / "page.pgm") as page:
        for label, (x, y) in zip(labels, preset.sticker_origins(), strict=True):
            top = A4_MM[1] - y - preset.sticker_height_mm
            sticker = page.crop((round((x - 3) * px), round((top - 3) * px),
                                 round((x + preset.sticker_width_mm + 3) * px),
                                 round((top + preset.sticker_height_mm + 3) * px)))
            assert read_zbar(sticker) == [label.url], label.kind
