"""Sticker sheets: what the print shop gets must scan, read and print anywhere."""

import re
import struct
import zlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import zxingcpp
from PIL import Image

from qr.labels import (
    CALL_TO_ACTION,
    ELEVATOR_CALL_TO_ACTION,
    ELEVATOR_EMERGENCY,
    StickerLabel,
    code_text,
    hotline_text,
    sticker_url,
)
from qr.render import sticker_face
from qr.sheet import A4_MM, Layout, write_sheets

DPI = 150
PX_PER_MM = DPI / 25.4
PT_PER_MM = 72 / 25.4
TITLE = "东湖花园 3栋"
PRINTED_ON = date(2025, 3, 1)
KINDS = ("unit", "elevator", "area")


def make_labels(count: int) -> Iterator[StickerLabel]:
    """Labels cycling through the three kinds, with places like the real ones."""
    for i in range(count):
        code = f"K7QM3X9P{i:04d}"
        kind = KINDS[i % 3]
        place = {
            "unit": f"{i + 1}栋 {i % 4 + 1}单元",
            "elevator": f"{i + 1}栋 2单元 · 1号电梯",
            "area": "北门岗亭",
        }[kind]
        yield StickerLabel(
            code=code,
            url=sticker_url("https://linli.example.cn", code),
            community="东湖花园",
            place=place,
            kind=kind,
            hotline="0752-2345678",
        )


def write(labels, out: Path, layout: str = "3x4", **kwargs):
    return write_sheets(
        labels, out, layout=Layout.preset(layout), title=TITLE, printed_on=PRINTED_ON, **kwargs
    )


def render(page: pdfium.PdfPage) -> Image.Image:
    return page.render(scale=DPI / 72, grayscale=True).to_pil()


def decoded_in_reading_order(image: Image.Image, layout: Layout) -> list[str]:
    """Decode every QR code on a page image, ordered by the sticker place it sits in."""
    width, height = layout.sticker_width_mm, layout.sticker_height_mm
    origins = layout.sticker_origins()
    by_place = {}
    for barcode in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode):
        corners = barcode.position
        x = (corners.top_left.x + corners.bottom_right.x) / 2 / PX_PER_MM
        y = A4_MM[1] - (corners.top_left.y + corners.bottom_right.y) / 2 / PX_PER_MM
        [place] = [
            i for i, (ox, oy) in enumerate(origins) if ox < x < ox + width and oy < y < oy + height
        ]
        by_place[place] = barcode.text
    assert sorted(by_place) == list(range(len(by_place)))
    return [by_place[i] for i in range(len(by_place))]


def all_decoded(files: list[Path], layout: Layout) -> list[str]:
    urls = []
    for path in files:
        for page in pdfium.PdfDocument(path):
            urls += decoded_in_reading_order(render(page), layout)
    return urls


# A few lines of PDF reading, enough for the files reportlab writes (plain objects, no streams
# of objects), to check the fonts the way a print shop's preflight would.
OBJECT = re.compile(rb"(\d+) 0 obj\r?\n(.*?)endobj", re.S)


def pdf_objects(data: bytes) -> dict[int, bytes]:
    return {int(number): body for number, body in OBJECT.findall(data)}


def ref(body: bytes, key: bytes) -> int:
    return int(re.search(rb"/" + key + rb" (\d+) 0 R", body)[1])


def stream(body: bytes) -> bytes:
    length = int(re.search(rb"/Length (\d+)", body)[1])
    start = re.search(rb"stream\r?\n", body).end()
    raw = body[start : start + length]
    return zlib.decompress(raw) if b"/FlateDecode" in body else raw


def font_dicts(objects: dict[int, bytes]) -> list[bytes]:
    """The text fonts: all but the Type 3 font whose glyphs are QR module patterns."""
    return [body for body in objects.values() if re.search(rb"/Type /Font[\s/>]", body)
            and b"/Subtype /Type3" not in body]


def glyph_sizes_by_code(ttf: bytes) -> dict[int, int]:
    """Outline bytes of each character code in a reportlab subset (format 6 cmap)."""
    (count,) = struct.unpack_from(">H", ttf, 4)
    tables = {}
    for i in range(count):
        tag, _checksum, offset, length = struct.unpack_from(">4sIII", ttf, 12 + 16 * i)
        tables[tag] = ttf[offset : offset + length]
    loca = tables[b"loca"]
    if struct.unpack_from(">h", tables[b"head"], 50)[0]:
        offsets = struct.unpack(f">{len(loca) // 4}I", loca)
    else:
        offsets = [2 * o for o in struct.unpack(f">{len(loca) // 2}H", loca)]
    (subtable,) = struct.unpack_from(">I", tables[b"cmap"], 8)
    fmt, _length, _language, first, entries = struct.unpack_from(">5H", tables[b"cmap"], subtable)
    assert fmt == 6
    glyphs = struct.unpack_from(f">{entries}H", tables[b"cmap"], subtable + 10)
    return {first + i: offsets[g + 1] - offsets[g] for i, g in enumerate(glyphs)}


def printable_characters(objects: dict[int, bytes]) -> set[str]:
    """Characters that the embedded subsets can draw: mapped by ToUnicode and with an outline."""
    drawable = set()
    for font in font_dicts(objects):
        to_unicode = stream(objects[ref(font, b"ToUnicode")])
        unicode_by_code = {
            int(code, 16): chr(int(char, 16))
            for code, char in re.findall(rb"<([0-9A-F]{2})> <([0-9A-F]{4})>", to_unicode)
        }
        descriptor = objects[ref(font, b"FontDescriptor")]
        sizes = glyph_sizes_by_code(stream(objects[ref(descriptor, b"FontFile2")]))
        drawable |= {char for code, char in unicode_by_code.items() if sizes.get(code, 0) > 0}
    return drawable


@pytest.fixture(scope="module")
def sheet_3x4(tmp_path_factory) -> tuple[Path, list[StickerLabel]]:
    """14 stickers on 3x4 sheets: a full page and a partly filled one."""
    labels = list(make_labels(14))
    out = tmp_path_factory.mktemp("sheets") / "donghu-3.pdf"
    write(iter(labels), out)
    return out, labels


@pytest.mark.parametrize(("layout", "count", "pages"), [("3x4", 14, 2), ("2x3", 8, 2)])
def test_every_code_on_the_sheets_decodes_to_its_own_label_in_order(tmp_path, layout, count, pages):
    labels = list(make_labels(count))
    summary = write(iter(labels), tmp_path / "sheet.pdf", layout=layout)
    assert (summary.stickers, summary.pages) == (count, pages)
    assert all_decoded(summary.files, Layout.preset(layout)) == [label.url for label in labels]


def test_pdf_embeds_only_subsets_of_the_cjk_font(sheet_3x4):
    path, _labels = sheet_3x4
    objects = pdf_objects(path.read_bytes())
    fonts = font_dicts(objects)
    assert fonts
    font_program_bytes = 0
    for font in fonts:
        assert b"/Subtype /TrueType" in font
        assert re.search(rb"/BaseFont /[A-Z]{6}\+WenQuanYiMicroHei", font)
        descriptor = objects[ref(font, b"FontDescriptor")]
        font_program_bytes += len(stream(objects[ref(descriptor, b"FontFile2")]))
    assert font_program_bytes < 200_000  # a subset, not the 5 MB collection
    assert b"Helvetica" not in path.read_bytes()


def test_embedded_font_has_a_glyph_for_every_character_printed(sheet_3x4):
    path, labels = sheet_3x4
    texts = [TITLE, "打印日期 2025-03-01 · 第 12 页", ELEVATOR_EMERGENCY, ELEVATOR_CALL_TO_ACTION]
    for label in labels:
        texts += [label.community, label.place, code_text(label.code), hotline_text(label.hotline)]
    printed = set("".join(texts)) - {" "}
    assert printed - printable_characters(pdf_objects(path.read_bytes())) == set()


def test_chinese_place_name_is_drawn_from_the_embedded_font(sheet_3x4):
    path, labels = sheet_3x4
    layout = Layout.preset("3x4")
    face = sticker_face(layout.sticker_width_mm, layout.sticker_height_mm, False)
    image = render(pdfium.PdfDocument(path)[0])
    x, y = layout.sticker_origins()[0]
    baseline_mm = A4_MM[1] - (y + layout.sticker_height_mm) + face.place.baseline
    box = (  # from the baseline up to 0.7 em: only the place line's glyphs, no neighbour's
        (x + face.place.x - face.place.width / 2) * PX_PER_MM,
        (baseline_mm - 0.7 * face.place.size) * PX_PER_MM,
        (x + face.place.x + face.place.width / 2) * PX_PER_MM,
        baseline_mm * PX_PER_MM,
    )
    dark = sum(image.crop(tuple(map(round, box))).histogram()[:128])
    assert labels[0].place == "1栋 1单元"
    assert dark > 100


def test_printed_codes_keep_a_quiet_zone_of_four_white_modules(sheet_3x4):
    path, _labels = sheet_3x4
    image = render(pdfium.PdfDocument(path)[0])
    barcodes = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(barcodes) == 12
    for barcode in barcodes:
        corners = barcode.position
        left, top = corners.top_left.x, corners.top_left.y
        right, bottom = corners.bottom_right.x, corners.bottom_right.y
        modules = 17 + 4 * int(barcode.extra["Version"])
        zone = 4 * (right - left) / modules - 2  # pixels, less antialiasing at both edges
        strips = [
            (left - zone, top - zone, right + zone, top - 2),
            (left - zone, bottom + 2, right + zone, bottom + zone),
            (left - zone, top, left - 2, bottom),
            (right + 2, top, right + zone, bottom),
        ]
        for strip in strips:
            assert image.crop(tuple(map(round, strip))).getextrema()[0] > 200


def test_qr_codes_are_vector_glyphs_not_images(sheet_3x4):
    path, _labels = sheet_3x4
    page = pdfium.PdfDocument(path)[0]
    images = list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3))
    assert images == []
    # The symbols are rows of a Type 3 font whose glyphs are filled rectangles only.
    data = path.read_bytes()
    assert b"/Subtype /Type3" in data
    procs = re.findall(rb"stream\r?\n(8 0 d0\n.*?)endstream", data, re.S)
    assert len(procs) > 100
    for proc in procs:
        assert set(re.findall(rb"[a-zA-Z]+\d?", proc)) <= {b"d0", b"re", b"f"}


def test_elevator_stickers_lead_with_the_emergency_line(sheet_3x4):
    path, labels = sheet_3x4
    textpage = pdfium.PdfDocument(path)[0].get_textpage()
    elevators = [label for label in labels[:12] if label.kind == "elevator"]
    assert textpage.get_text_range().count(ELEVATOR_EMERGENCY) == len(elevators) == 4

    def tops(text: str) -> list[tuple[float, float]]:
        """(left, top) of each occurrence of text on the page, in points."""
        searcher, found = textpage.search(text, match_case=True), []
        while (match := searcher.get_next()) is not None:
            left, _bottom, _right, top = textpage.get_charbox(match[0])
            found.append((left, top))
        return found

    for label in elevators:
        [(_, place_top)] = tops(label.place)
        emergency_tops = [top for _left, top in tops(ELEVATOR_EMERGENCY)]
        above = [top - place_top for top in emergency_tops if 0 < top - place_top < 20 * PT_PER_MM]
        assert len(above) == 1
    assert textpage.get_text_range().count(CALL_TO_ACTION) == 12


def test_page_header_names_the_title_print_date_and_page(sheet_3x4):
    path, _labels = sheet_3x4
    pdf = pdfium.PdfDocument(path)
    first, second = (pdf[i].get_textpage().get_text_range() for i in range(2))
    assert TITLE in first
    assert "打印日期 2025-03-01 · 第 1 页" in first
    assert "第 2 页" in second


def test_cut_marks_continue_each_sticker_edge_beyond_its_corner(sheet_3x4):
    path, _labels = sheet_3x4
    layout = Layout.preset("3x4")
    image = render(pdfium.PdfDocument(path)[0])
    x, y = layout.sticker_origins()[0]
    top = y + layout.sticker_height_mm

    def darkest_near(x_mm: float, y_mm: float) -> int:
        px, py = round(x_mm * PX_PER_MM), round((A4_MM[1] - y_mm) * PX_PER_MM)
        return image.crop((px - 1, py - 1, px + 2, py + 2)).getextrema()[0]

    assert darkest_near(x - 2, top) < 160  # horizontal mark left of the top-left corner
    assert darkest_near(x, top + 2) < 160  # vertical mark above it
    assert darkest_near(x + 2, top - 2) == 255  # nothing printed just inside the corner


def test_a_run_longer_than_max_per_file_is_split_into_numbered_files(tmp_path):
    labels = list(make_labels(30))
    out = tmp_path / "donghu.pdf"
    summary = write(iter(labels), out, max_per_file=20)  # rounded down to one 12-sticker page
    assert summary.files == [tmp_path / f"donghu-00{n}.pdf" for n in (1, 2, 3)]
    assert not out.exists()
    assert (summary.stickers, summary.pages) == (30, 3)
    third = pdfium.PdfDocument(summary.files[2])
    assert "第 3 页" in third[0].get_textpage().get_text_range()
    assert all_decoded(summary.files, Layout.preset("3x4")) == [label.url for label in labels]


def test_a_run_within_max_per_file_keeps_the_given_path(tmp_path):
    out = tmp_path / "donghu.pdf"
    summary = write(make_labels(12), out, max_per_file=12)
    assert summary.files == [out]
    assert len(pdfium.PdfDocument(out)) == 1


def test_labels_are_consumed_page_by_page_not_all_at_once(tmp_path):
    consumed = 0

    def labels() -> Iterator[StickerLabel]:
        nonlocal consumed
        for label in make_labels(30):
            consumed += 1
            yield label

    progress = []
    write(labels(), tmp_path / "donghu.pdf", progress=lambda n: progress.append((n, consumed)))
    assert progress == [(12, 12), (24, 24), (30, 30)]


def test_a_layout_with_qr_modules_under_half_a_millimetre_is_refused(tmp_path):
    tiny = Layout("6x8", cols=6, rows=8, sticker_width_mm=28, sticker_height_mm=30, gutter_mm=3)
    with pytest.raises(ValueError, match=r"below the 0\.5 mm minimum"):
        write_sheets(
            make_labels(1), tmp_path / "t.pdf", layout=tiny, title=TITLE, printed_on=PRINTED_ON
        )


def test_a_layout_that_does_not_fit_on_a4_is_refused():
    with pytest.raises(ValueError, match="columns do not fit"):
        Layout("4x4", cols=4, rows=4, sticker_width_mm=60, sticker_height_mm=60)


def test_an_empty_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no stickers"):
        write([], tmp_path / "none.pdf")
