"""Print sheets: stickers laid out on A4 pages as vector PDF, ready for a print shop.

Each page has a header (title, the base URL the codes point at, print date, page number) and cut
marks at every sticker corner. Speed comes from drawing little per sticker: the texts shared by
a community and kind are a PDF form drawn by reference, and the QR symbol is a few hex strings
shown in a Type 3 font whose glyphs are module patterns (`_qr_operators`). reportlab keeps a
whole document in memory until it is saved, so long runs are split into several files; memory
then stays flat however many stickers are streamed in.
"""

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from PIL import Image
from reportlab import rl_config
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfdoc
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from qr.fonts import check_covered, cjk_font
from qr.labels import StickerLabel
from qr.render import (
    DEFAULT_STICKER_MM,
    MIN_VERSION,
    QUIET_ZONE,
    StickerFace,
    module_mm,
    own_texts,
    qr_matrix,
    static_texts,
    sticker_face,
)

A4_MM = (210.0, 297.0)
MIN_GUTTER_MM = 3.0  # room between stickers for cut marks that do not touch the next sticker
CUT_MARK_OFFSET_MM = 0.75  # marks start this far from the corner, so a slightly off cut hides them
CUT_MARK_MAX_MM = 3.0
CUT_MARK_WIDTH_MM = 0.2
HEADER_TEXT_MM = 3.2  # about 9 pt


@dataclass(frozen=True, slots=True)
class Layout:
    """A grid of equal stickers on an A4 portrait page, centred below a header band."""

    name: str
    cols: int
    rows: int
    sticker_width_mm: float
    sticker_height_mm: float
    margin_mm: float = 8.0
    gutter_mm: float = 6.0
    header_mm: float = 10.0
    #: The smallest QR version printed (`qr.render.MIN_VERSION`); the damage benchmark varies it.
    min_version: int = MIN_VERSION

    def __post_init__(self) -> None:
        page_width, page_height = A4_MM
        if self.cols < 1 or self.rows < 1:
            raise ValueError(f"layout {self.name}: needs at least one column and one row")
        if self.gutter_mm < MIN_GUTTER_MM:
            raise ValueError(f"layout {self.name}: gutters need {MIN_GUTTER_MM} mm for cut marks")
        if self.grid_width_mm > page_width - 2 * self.margin_mm:
            raise ValueError(f"layout {self.name}: {self.cols} columns do not fit across A4")
        if self.grid_height_mm > page_height - 2 * self.margin_mm - self.header_mm:
            raise ValueError(f"layout {self.name}: {self.rows} rows do not fit down A4")

    @classmethod
    def preset(cls, name: str) -> "Layout":
        """The named preset layout ("3x4", "2x3")."""
        try:
            return LAYOUTS[name]
        except KeyError:
            raise ValueError(f"no layout {name!r}; presets are {', '.join(LAYOUTS)}") from None

    @property
    def per_page(self) -> int:
        """Stickers on one page."""
        return self.cols * self.rows

    @property
    def grid_width_mm(self) -> float:
        """Width of the sticker grid including gutters."""
        return self.cols * self.sticker_width_mm + (self.cols - 1) * self.gutter_mm

    @property
    def grid_height_mm(self) -> float:
        """Height of the sticker grid including gutters."""
        return self.rows * self.sticker_height_mm + (self.rows - 1) * self.gutter_mm

    def sticker_origins(self) -> list[tuple[float, float]]:
        """Bottom-left corners of the stickers, mm from the page's bottom-left, in reading order."""
        page_width, page_height = A4_MM
        left = (page_width - self.grid_width_mm) / 2
        below_header = page_height - self.margin_mm - self.header_mm
        top = below_header - (below_header - self.margin_mm - self.grid_height_mm) / 2
        step_x = self.sticker_width_mm + self.gutter_mm
        step_y = self.sticker_height_mm + self.gutter_mm
        return [
            (left + col * step_x, top - self.sticker_height_mm - row * step_y)
            for row in range(self.rows)
            for col in range(self.cols)
        ]


LAYOUTS = {
    "3x4": Layout("3x4", 3, 4, *DEFAULT_STICKER_MM),
    "2x3": Layout("2x3", 2, 3, sticker_width_mm=90, sticker_height_mm=85),
}


@dataclass(slots=True)
class SheetSummary:
    """What a print run produced and how long it took."""

    stickers: int
    pages: int
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def write_sheets(
    labels: Iterable[StickerLabel],
    out_path: Path,
    *,
    layout: Layout,
    title: str,
    printed_on: date,
    max_per_file: int = 2000,
    progress: Callable[[int], object] | None = None,
    font_path: str | Path | None = None,
    base_url: str = "",
) -> SheetSummary:
    """Write the labels onto A4 sticker sheets as one or more PDF files.

    Up to `max_per_file` stickers (rounded down to whole pages) go into `out_path`; a longer run
    becomes `<stem>-001.pdf`, `<stem>-002.pdf`, ... beside it, with page numbers running on across
    files. Labels are consumed one at a time. `progress` is called after each page with the
    number of stickers written so far. Raises ValueError when the layout would print QR modules
    smaller than 0.5 mm, or a text has characters the font lacks.
    """
    started = time.perf_counter()
    out_path = Path(out_path)
    run = _Run(layout, cjk_font(font_path), title, printed_on, progress, base_url)
    check_covered(run.font, title)
    per_file = max(1, max_per_file // layout.per_page) * layout.per_page
    summary = SheetSummary(stickers=0, pages=0)
    sheet: _SheetFile | None = None
    try:
        for label in labels:
            if sheet is None:
                sheet = _SheetFile(out_path, run, summary)
            elif sheet.stickers == per_file:
                _close(sheet, summary)
                if len(summary.files) == 1:  # the run needs a second file: number the first too
                    summary.files[0] = out_path.rename(_part_path(out_path, 1))
                sheet = _SheetFile(_part_path(out_path, len(summary.files) + 1), run, summary)
            sheet.add(label)
        if sheet is None:
            raise ValueError("no stickers to print")
        _close(sheet, summary)
    except BaseException:
        # A run that stops half-way must not leave files that look like a whole print.
        for path in summary.files:
            path.unlink(missing_ok=True)
        raise
    summary.seconds = time.perf_counter() - started
    return summary


def _part_path(out_path: Path, number: int) -> Path:
    return out_path.with_name(f"{out_path.stem}-{number:03d}{out_path.suffix}")


def _close(sheet: "_SheetFile", summary: SheetSummary) -> None:
    sheet.save()
    summary.stickers += sheet.stickers
    summary.pages += sheet.pages
    summary.files.append(sheet.path)


@dataclass(frozen=True, slots=True)
class _Run:
    """What every file of one print run shares."""

    layout: Layout
    font: TTFont
    title: str
    printed_on: date
    progress: Callable[[int], object] | None
    base_url: str


class _SheetFile:
    """One PDF file being filled page by page; `done` counts the run's earlier files."""

    def __init__(self, path: Path, run: _Run, done: SheetSummary) -> None:
        self.path, self.run, self.layout, self.font = path, run, run.layout, run.font
        self.pages_before, self.stickers_before = done.pages, done.stickers
        self.stickers = self.pages = 0
        self.origins = run.layout.sticker_origins()
        self.forms: dict[tuple[str, str, str], str] = {}
        self.qr_bytes: set[int] = set()
        self.canvas = Canvas(
            str(path),
            pagesize=(A4_MM[0] * mm, A4_MM[1] * mm),
            pageCompression=1,
            # Otherwise reportlab adds a non-embedded Helvetica. types-reportlab has this a
            # number; reportlab takes a font name.
            initialFontName=run.font.fontName,  # type: ignore[arg-type]
        )
        self.canvas.setTitle(run.title)
        self.canvas.setCreator("Linli 邻里")
        self._define_cut_marks()

    def add(self, label: StickerLabel) -> None:
        """Draw one sticker in the next free place, starting and finishing pages as needed."""
        per_page = self.layout.per_page
        slot = self.stickers % per_page
        if slot == 0:
            self._start_page()
        x, y = self.origins[slot]
        face = sticker_face(
            self.layout.sticker_width_mm, self.layout.sticker_height_mm, label.kind == "elevator"
        )
        canvas = self.canvas
        canvas.saveState()
        canvas.translate(x, y)
        canvas.doForm(self._static_form(face, label))
        operators, rows = _qr_operators(face, label.url, self.layout.min_version)
        canvas.addLiteral(operators)
        self.qr_bytes.update(rows)
        for text in own_texts(self.font, face, label):
            canvas.setFont(self.font.fontName, text.size)
            canvas.drawCentredString(text.x, face.height - text.baseline, text.text)
        canvas.restoreState()
        self.stickers += 1
        if slot == per_page - 1:
            self._finish_page()

    def save(self) -> None:
        """Finish the last page and write the file."""
        if self.stickers % self.layout.per_page:
            self._finish_page()
        # The canvas's PDFDocument, which reportlab keeps private and the stubs do not list
        _add_qr_font(self.canvas._doc, self.qr_bytes)  # type: ignore[attr-defined]
        with _binary_streams():
            self.canvas.save()

    def _start_page(self) -> None:
        canvas, layout = self.canvas, self.layout
        canvas.scale(mm, mm)  # everything below is in millimetres
        canvas.doForm("cut-marks")
        number = self.pages_before + self.pages + 1
        baseline = A4_MM[1] - layout.margin_mm - HEADER_TEXT_MM
        left = (A4_MM[0] - layout.grid_width_mm) / 2
        canvas.setFont(self.font.fontName, HEADER_TEXT_MM)
        canvas.drawString(left, baseline, self.run.title)
        if self.run.base_url:  # what the codes point at, checked by eye before the sheets are cut
            canvas.drawCentredString(A4_MM[0] / 2, baseline, f"二维码网址 {self.run.base_url}")
        canvas.drawRightString(
            left + layout.grid_width_mm,
            baseline,
            f"打印日期 {self.run.printed_on.isoformat()} · 第 {number} 页",
        )

    def _finish_page(self) -> None:
        self.canvas.showPage()
        self.pages += 1
        if self.run.progress is not None:
            self.run.progress(self.stickers_before + self.stickers)

    def _define_cut_marks(self) -> None:
        """A form with short lines continuing each sticker edge outward past its corners."""
        layout, canvas = self.layout, self.canvas
        width, height = layout.sticker_width_mm, layout.sticker_height_mm
        start = CUT_MARK_OFFSET_MM
        end = min(CUT_MARK_MAX_MM, layout.gutter_mm / 2 - 0.25)  # marks of neighbours stay apart
        lines = []
        for x, y in layout.sticker_origins():
            for cx, dx in ((x, -1), (x + width, 1)):
                for cy, dy in ((y, -1), (y + height, 1)):
                    lines.append((cx + dx * start, cy, cx + dx * end, cy))
                    lines.append((cx, cy + dy * start, cx, cy + dy * end))
        canvas.beginForm("cut-marks", 0, 0, *A4_MM)
        canvas.setLineWidth(CUT_MARK_WIDTH_MM)
        canvas.lines(lines)
        canvas.endForm()

    def _static_form(self, face: StickerFace, label: StickerLabel) -> str:
        """The form with this community and kind's shared texts, defined on first use."""
        key = (label.community, label.kind, label.hotline)
        name = self.forms.get(key)
        if name is None:
            name = self.forms[key] = f"sticker-{len(self.forms)}"
            canvas = self.canvas
            canvas.beginForm(name, 0, 0, face.width, face.height)
            if face.banner is not None:
                x, y, w, h = face.banner
                canvas.rect(x, face.height - y - h, w, h, stroke=0, fill=1)
            texts = static_texts(self.font, face, label.community, label.kind, label.hotline)
            for text in texts:
                canvas.setFillGray(1 if text.inverse else 0)
                canvas.setFont(self.font.fontName, text.size)
                canvas.drawCentredString(text.x, face.height - text.baseline, text.text)
            canvas.endForm()
        return name


QR_FONT = "LinliQR"  # the resource name of the Type 3 font whose glyphs are module patterns
_DARK_AS_ONE = bytes.maketrans(b"\x00\xff", b"\xff\x00")


def _qr_operators(face: StickerFace, url: str, min_version: int) -> tuple[str, bytes]:
    """PDF operators painting the QR symbol, and the symbol's rows packed eight modules a byte.

    Each row is shown as text in a Type 3 font (`_add_qr_font`) whose glyph for byte b is the
    eight modules of b, drawn as filled rectangles: still vector art, as print shops want, but a
    41-module symbol costs ~150 bytes compressed where one rectangle per run of dark modules
    cost ~600. Module units: 1 em is one module and a line is one row.
    """
    matrix = qr_matrix(url, min_version)
    n = matrix.size
    qr_x, qr_y, side = face.qr
    module = module_mm(side, n)
    left = qr_x + QUIET_ZONE * module
    bottom = face.height - qr_y - side + QUIET_ZONE * module
    # Mode "1" packs rows MSB first, padded with 0 bits: light, once dark is the 1 bit.
    packed = Image.frombytes("L", (n, n), matrix.modules.translate(_DARK_AS_ONE)).convert(
        "1", dither=Image.Dither.NONE).tobytes()
    width = (n + 7) // 8
    rows = "\n".join(f"<{packed[i:i + width].hex()}>'" for i in range(0, len(packed), width))
    return (f"q 0 g {module:.4f} 0 0 {module:.4f} {left:.3f} {bottom:.3f} cm\n"
            f"BT /{QR_FONT} 1 Tf 1 TL 0 {n} Td\n{rows}\nET Q"), packed


def _blank_to_unicode(used: set[int]) -> pdfdoc.PDFStream:
    """A ToUnicode map reading every module pattern as a space, so copying or searching a
    sheet's text finds the labels, not the symbols' bytes."""
    pairs = "\n".join(f"<{byte:02x}> <0020>" for byte in sorted(used))
    content = ("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
               "/CMapName /LinliQR-Blank def\n/CMapType 2 def\n"
               "1 begincodespacerange\n<00> <ff>\nendcodespacerange\n"
               f"{len(used)} beginbfchar\n{pairs}\nendbfchar\n"
               "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend")
    return pdfdoc.PDFStream(content=content, filters=[pdfdoc.PDFZCompress])


def _add_qr_font(doc: pdfdoc.PDFDocument, used: set[int]) -> None:
    """Define the Type 3 font of module patterns, with a glyph for each byte the file used."""
    # Glyphs are declared with d0, not d1: a d1 glyph may be cached as a bitmap, and poppler
    # and MuPDF then place each cached glyph at a whole pixel, shifting modules by up to half a
    # pixel (zbar read 4 of 12 codes of a poppler raster); d0 glyphs are drawn as paths in place.
    # Each glyph is filled on its own, so anti-aliasing screen renderers would leave light seams
    # where two glyphs or two rows meet; a 3 % bleed closes them. Printers do not anti-alias,
    # and 3 % is far below the dot gain QR decoders expect.
    e = 0.03
    procs = {}
    for byte in sorted(used):
        rects = [f"{run.start() - e:g} {-e:g} {len(run[0]) + 2 * e:g} {1 + 2 * e:g} re"
                 for run in re.finditer("1+", f"{byte:08b}")]
        content = "8 0 d0\n" + (
            "\n".join(rects) + "\nf" if rects else "")
        procs[f"m{byte}"] = doc.Reference(pdfdoc.PDFStream(content=content))
    differences: list[Any] = []
    for byte in sorted(used):
        differences += [byte, pdfdoc.PDFName(f"m{byte}")]
    first, last = min(used), max(used)
    font = pdfdoc.PDFDictionary({
        "Type": pdfdoc.PDFName("Font"), "Subtype": pdfdoc.PDFName("Type3"),
        "FontBBox": pdfdoc.PDFArray([-e, -e, 8 + e, 1 + e]),
        "FontMatrix": pdfdoc.PDFArray([1, 0, 0, 1, 0, 0]),
        "CharProcs": pdfdoc.PDFDictionary(procs),
        "Encoding": pdfdoc.PDFDictionary({"Type": pdfdoc.PDFName("Encoding"),
                                          "Differences": pdfdoc.PDFArray(differences)}),
        "FirstChar": first, "LastChar": last,
        "Widths": pdfdoc.PDFArray([8] * (last - first + 1)),
        "Resources": pdfdoc.PDFDictionary({}),
        "ToUnicode": doc.Reference(_blank_to_unicode(used)),
    })
    fonts = doc.idToObject[pdfdoc.BasicFonts]
    assert isinstance(fonts, pdfdoc.PDFDictionary)  # the document's font resources
    fonts.dict[QR_FONT] = doc.Reference(font, QR_FONT)


@contextmanager
def _binary_streams() -> Iterator[None]:
    """Save with flate-only streams: reportlab's default ASCII85 layer adds 25 % to every page
    and, without its C accelerator, takes longer than drawing the stickers."""
    saved = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = saved
