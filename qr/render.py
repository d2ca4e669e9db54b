"""One sticker: its QR symbol and where each text goes, drawn as SVG (web) or PNG (the symbol).

The face of a sticker is computed once per sticker size and kind, in millimetres from the top-left
corner, so the SVG for the staff page and the printed PDF sheets (qr/sheet.py) look the same.
"""

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

import segno
import zxingcpp
from reportlab.pdfbase.ttfonts import TTFont

from qr.fonts import check_covered, cjk_font
from qr.labels import ELEVATOR_EMERGENCY, StickerLabel, call_to_action, code_text, hotline_text

QUIET_ZONE = 4  # modules of white around the symbol, as ISO/IEC 18004 requires
MIN_MODULE_MM = 0.5  # smaller modules fail on older phone cameras and on worn stickers
#: The smallest QR version printed: more modules carry more error-correction codewords, so a
#: symbol survives a bigger hole, band or torn corner (measured in docs/benchmarks.md).
MIN_VERSION = 6
HOTLINE_MM = 3.2  # the no-network fallback when the code is damaged: >= 3 mm after fitting
EDGE_MM = 2.0  # texts keep this far inside the cut (at the 3x4 size), which may be off by 1 mm
BAND_INSET_MM = 2.0  # and so does the elevator band on any sticker size
DEFAULT_STICKER_MM = (60.0, 63.0)  # the 3x4 sheet preset

_QR_FORMAT = zxingcpp.BarcodeFormat.QRCode
_DARK_RUN = re.compile(rb"\x00+")  # zxing-cpp images are 0 for dark, 255 for light
_FONT_FAMILY = "WenQuanYi Micro Hei, Noto Sans CJK SC, PingFang SC, Microsoft YaHei, sans-serif"


@dataclass(frozen=True, slots=True)
class QrMatrix:
    """A QR symbol without quiet zone: `size` rows of `size` modules, row-major, top row first.

    `modules` holds one byte per module, 0 for dark and 255 for light (zxing-cpp's image layout),
    kept as bytes so runs of dark modules are found by a regular expression in C.
    """

    size: int
    modules: bytes

    def rows(self) -> tuple[tuple[bool, ...], ...]:
        """The symbol as rows of booleans (True is dark), for callers that want plain data."""
        n = self.size
        return tuple(tuple(b == 0 for b in self.modules[r * n : (r + 1) * n]) for r in range(n))

    def dark_runs(self) -> Iterator[tuple[int, int, int]]:
        """Yield (row, first column, length) of each horizontal run of dark modules.

        One rectangle per run instead of per module halves the path and the time to write it.
        """
        n, finditer = self.size, _DARK_RUN.finditer
        for row in range(n):
            start = row * n
            for run in finditer(self.modules, start, start + n):
                first, end = run.span()
                yield row, first - start, end - first


def qr_matrix(url: str, min_version: int = MIN_VERSION) -> QrMatrix:
    """Encode `url` as a QR symbol at error correction level H, of at least `min_version`.

    zxing-cpp encodes in ~0.2 ms including the mask-pattern search, where segno takes ~3.6 ms
    (~0.6 ms with a fixed mask, giving up the search). For an upper-case URL the encoder picks
    alphanumeric mode; a URL too long for `min_version` gets the smallest version it fits.
    """
    try:
        barcode = zxingcpp.create_barcode(url, _QR_FORMAT, ec_level="H", version=min_version)
    except ValueError:  # too long for min_version
        barcode = zxingcpp.create_barcode(url, _QR_FORMAT, ec_level="H")
    image = barcode.to_image(scale=1, add_quiet_zones=False)
    # zxingcpp's Image has the buffer protocol; its stub does not declare __buffer__
    return QrMatrix(image.shape[0], bytes(memoryview(image)))  # type: ignore[arg-type]


def segno_matrix(url: str, min_version: int = MIN_VERSION) -> QrMatrix:
    """The same symbol encoded by segno, with its full mask search, for single stickers.

    Speed does not matter for one sticker on the staff page, so it is drawn from segno, the
    project's QR library; sheets use the faster encoder above.
    """
    symbol = _segno_symbol(url, min_version)
    modules = bytes(0 if dark else 255 for row in symbol.matrix for dark in row)
    return QrMatrix(len(symbol.matrix), modules)


def _segno_symbol(url: str, min_version: int) -> segno.QRCode:
    smallest = segno.make_qr(url, error="h", boost_error=False)
    assert isinstance(smallest.version, int)  # make_qr never makes a Micro QR ("M1"…"M4")
    if smallest.version >= min_version:
        return smallest
    return segno.make_qr(url, error="h", version=min_version, boost_error=False)


def module_mm(qr_side_mm: float, size: int) -> float:
    """Module size when a symbol of `size` modules plus quiet zone fills `qr_side_mm`.

    Raises ValueError below MIN_MODULE_MM, so a layout that would print unreliable codes fails
    before anything is printed.
    """
    module = qr_side_mm / (size + 2 * QUIET_ZONE)
    if module < MIN_MODULE_MM:
        raise ValueError(
            f"QR modules would be {module:.2f} mm (a {size}-module symbol in a {qr_side_mm:.1f} mm "
            f"square), below the {MIN_MODULE_MM} mm minimum: use larger stickers or a shorter URL"
        )
    return module


@dataclass(frozen=True, slots=True)
class TextSlot:
    """A centred line of text: centre x, baseline y (from the top), largest size, usable width."""

    x: float
    baseline: float
    size: float
    width: float


@dataclass(frozen=True, slots=True)
class StickerFace:
    """Where everything goes on a sticker of one size and kind; millimetres from the top-left.

    `banner` (x, y, width, height) is the black emergency band of elevator stickers; `qr` is the
    square (x, y, side) for the symbol including its quiet zone.
    """

    width: float
    height: float
    banner: tuple[float, float, float, float] | None
    emergency: TextSlot | None
    place: TextSlot
    qr: tuple[float, float, float]
    call: TextSlot
    code: TextSlot
    hotline: TextSlot


@cache
def sticker_face(width: float, height: float, elevator: bool) -> StickerFace:
    """Lay out a sticker from top to bottom; the QR symbol gets the room the texts leave.

    Sizes scale with the sticker from a 60 x 63 mm reference (the 3x4 sheet preset). Elevator
    stickers start with the emergency line, white on a black band, so it is read first. Above the
    symbol only the place; the community name opens the call to action below it, so the symbol
    gets a line's height more: bigger modules survive more damage (docs/benchmarks.md).
    """
    u = min(width / 60, height / 63)
    pad, line = EDGE_MM * u, 1.25
    usable = width - 2 * pad

    def slot(top: float, size: float) -> TextSlot:
        # CJK glyphs sit about 0.85 em above the baseline in WenQuanYi Micro Hei.
        return TextSlot(width / 2, top + 0.85 * size + (line - 1) * size / 2, size, usable)

    top = pad
    banner = emergency = None
    if elevator:
        banner_height = 5.0 * u
        inset = max(pad, BAND_INSET_MM)
        top = max(top, BAND_INSET_MM)
        banner = (inset, top, width - 2 * inset, banner_height)
        emergency = slot(top + (banner_height - 3.4 * u * line) / 2, 3.4 * u)
        top += banner_height + 0.5 * u
    place = slot(top, 4.0 * u)
    top += 4.0 * u * line

    bottom = height - pad - HOTLINE_MM * u * line
    hotline = slot(bottom, HOTLINE_MM * u)
    bottom -= 3.0 * u * line
    code = slot(bottom, 3.0 * u)
    bottom -= 3.0 * u * line
    call = slot(bottom, 3.0 * u)

    side = min(bottom - top, width - pad)
    if side <= 0:
        raise ValueError(f"a {width} x {height} mm sticker has no room left for the QR code")
    qr = ((width - side) / 2, top + (bottom - top - side) / 2, side)
    return StickerFace(width, height, banner, emergency, place, qr, call, code, hotline)


@dataclass(frozen=True, slots=True)
class PlacedText:
    """A line of text fitted into its slot: centre x, baseline y from the top, size in mm;
    `inverse` text is white, on the black emergency band."""

    text: str
    x: float
    baseline: float
    size: float
    inverse: bool = False


def fit_text(font: TTFont, text: str, slot: TextSlot, *, inverse: bool = False) -> PlacedText:
    """Place `text` in `slot`, shrunk if it is wider than the slot; raise on missing glyphs."""
    check_covered(font, text)
    width = font.stringWidth(text, slot.size)
    size = slot.size if width <= slot.width else slot.size * slot.width / width
    return PlacedText(text, slot.x, slot.baseline, size, inverse)


def static_texts(
    font: TTFont, face: StickerFace, community: str, kind: str, hotline: str
) -> list[PlacedText]:
    """Texts shared by all stickers of one community and kind.

    Sheets draw these once per PDF as a reusable form; only place, code and QR vary per sticker.
    """
    texts = []
    if face.emergency is not None:
        texts.append(fit_text(font, ELEVATOR_EMERGENCY, face.emergency, inverse=True))
    texts.append(fit_text(font, call_to_action(kind, community), face.call))
    texts.append(fit_text(font, hotline_text(hotline), face.hotline))
    return texts


def own_texts(font: TTFont, face: StickerFace, label: StickerLabel) -> list[PlacedText]:
    """Texts particular to one sticker: where it is and its code for manual entry."""
    return [
        fit_text(font, label.place, face.place),
        fit_text(font, code_text(label.code, label.place_code), face.code),
    ]


def sticker_svg(
    label: StickerLabel,
    *,
    size_mm: tuple[float, float] = DEFAULT_STICKER_MM,
    font_path: str | Path | None = None,
) -> str:
    """Draw a whole sticker as an SVG document sized in millimetres, for the staff web page.

    The QR symbol is one path of run rectangles; texts use the printed font's metrics for fitting
    and name it first in font-family, so the browser shows what the sheet will print.
    """
    font = cjk_font(font_path)
    face = sticker_face(*size_mm, label.kind == "elevator")
    matrix = segno_matrix(label.url)
    qr_x, qr_y, qr_side = face.qr
    module = module_mm(qr_side, matrix.size)
    origin_x, origin_y = qr_x + QUIET_ZONE * module, qr_y + QUIET_ZONE * module

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{face.width}mm" '
        f'height="{face.height}mm" viewBox="0 0 {face.width} {face.height}">',
        f'<rect width="{face.width}" height="{face.height}" fill="#fff" stroke="#ccc" '
        'stroke-width="0.3"/>',
    ]
    if face.banner is not None:
        x, y, w, h = face.banner
        parts.append(
            f'<rect x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" height="{h:.2f}" fill="#000"/>'
        )
    texts = static_texts(font, face, label.community, label.kind, label.hotline)
    texts += own_texts(font, face, label)
    parts.append(f'<g font-family="{_FONT_FAMILY}" text-anchor="middle">')
    for text in sorted(texts, key=lambda text: text.baseline):  # reading order, top to bottom
        parts.append(
            f'<text x="{text.x:.2f}" y="{text.baseline:.2f}" font-size="{text.size:.2f}" '
            f'fill="{"#fff" if text.inverse else "#000"}">{escape(text.text)}</text>'
        )
    parts.append("</g>")
    runs = "".join(f"M{col} {row}h{length}v1h-{length}z" for row, col, length in matrix.dark_runs())
    parts.append(
        f'<path transform="translate({origin_x:.3f} {origin_y:.3f}) scale({module:.4f})" '
        f'fill="#000" d="{runs}"/>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def sticker_png(label: StickerLabel, scale: int = 8) -> bytes:
    """The QR symbol of a sticker with its 4-module quiet zone as a black-on-white PNG."""
    symbol = _segno_symbol(label.url, MIN_VERSION)
    out = io.BytesIO()
    symbol.save(out, kind="png", scale=scale, border=QUIET_ZONE, dark="black", light="white")
    return out.getvalue()
