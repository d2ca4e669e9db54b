"""The Chinese font printed on stickers, embedded in every PDF as a subset.

reportlab's built-in CID fonts (STSong-Light) are not embedded: on a machine or at a print shop
without CJK fonts the Chinese disappears. A TrueType font registered as `TTFont` is embedded as a
subset holding only the glyphs used. WenQuanYi Micro Hei has TrueType outlines (reportlab refuses
the CFF outlines of Noto CJK) and, unlike Droid Sans Fallback, digits.
"""

import hashlib
import os
from functools import cache
from pathlib import Path
from typing import Any

from reportlab.pdfbase import pdfdoc, pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont, makeToUnicodeCMap

DEFAULT_FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT_PATH_ENV = "LINLI_CJK_FONT"
DEBIAN_PACKAGE = "fonts-wqy-microhei"


class MissingFontError(FileNotFoundError):
    """The CJK font file is not where configuration says it is."""


def cjk_font_path(path: str | Path | None = None) -> Path:
    """Resolve the font file: the argument, else $LINLI_CJK_FONT, else the Debian package's path."""
    chosen = Path(path or os.environ.get(FONT_PATH_ENV) or DEFAULT_FONT_PATH)
    if not chosen.is_file():
        raise MissingFontError(
            f"CJK font {chosen} not found: install the Debian package {DEBIAN_PACKAGE} "
            f"(apt-get install {DEBIAN_PACKAGE}) or point ${FONT_PATH_ENV} at a TrueType CJK font"
        )
    return chosen


def cjk_font(path: str | Path | None = None) -> TTFont:
    """Return the registered CJK font, loading the file once per process (it takes ~0.1 s)."""
    return _register(cjk_font_path(path).resolve())


@cache
def _register(path: Path) -> TTFont:
    # Subfont 0 of a .ttc collection is the regular face; the name is per path so two
    # configured fonts can coexist in one process.
    name = "LinliCJK-" + hashlib.sha1(str(path).encode()).hexdigest()[:8]
    font = TaggedTTFont(name, path, subfontIndex=0)
    pdfmetrics.registerFont(font)
    return font


def check_covered(font: TTFont, text: str) -> None:
    """Raise if `text` has characters the font lacks: reportlab would silently print blanks."""
    missing = {ch for ch in text if ord(ch) not in font.face.charToGlyph}
    if missing:
        raise ValueError(
            f"font {font.face.name.decode()} has no glyph for {''.join(sorted(missing))!r} "
            f"in {text!r}"
        )


def subset_tag(font_name: bytes, subset: list[int]) -> bytes:
    """Six capital letters naming one subset by its content: the font, its characters and their
    order (the order is the subset's encoding).

    reportlab tags every file's first subset AAAAAA; ISO 32000-1 §9.6.4 wants different subsets
    to carry different tags, and RIPs that cache fonts by name print garbage from a merged file
    whose two AAAAAA subsets differ. A tag from the content is the same only for the same font
    program, and the same on every run, so sheets stay reproducible.
    """
    digest = hashlib.sha256(font_name + b"\0" + ",".join(map(str, subset)).encode()).digest()
    value = int.from_bytes(digest[:8])
    letters = []
    for _ in range(6):
        value, index = divmod(value, 26)
        letters.append(65 + index)
    return bytes(letters)


class TaggedTTFont(TTFont):
    """A TTFont whose subsets carry content tags (`subset_tag`) instead of AAAAAA, AAAAAB, …"""

    def addObjects(self, doc: pdfdoc.PDFDocument) -> None:
        """reportlab's TTFont.addObjects (4.x/5.x), with the subset tag as the only change."""
        try:
            state = self.state[doc]
        except KeyError:
            # types-reportlab does not list TTFont's _asciiReadable
            state = self.state[doc] = TTFont.State(self._asciiReadable)  # type: ignore[attr-defined]
        state.frozen = 1
        for n, subset in enumerate(state.subsets):
            internal_name = self.getSubsetInternalName(n, doc)[1:]
            base_font_name = b"".join((subset_tag(self.face.name, subset), b"+", self.face.name,
                                       self.face.subfontNameX)).decode("pdfdoc")
            # A PDF font object takes its entries as attributes ("no init: set attributes
            # explicitly"), which no stub can list.
            pdf_font: Any = pdfdoc.PDFTrueTypeFont()
            pdf_font.__Comment__ = f"Font {self.fontName} subset {n}"
            pdf_font.Name = internal_name
            pdf_font.BaseFont = base_font_name
            pdf_font.FirstChar = 0
            pdf_font.LastChar = len(subset) - 1
            pdf_font.Widths = pdfdoc.PDFArray(list(map(self.face.getCharWidth, subset)))
            cmap = pdfdoc.PDFStream()
            cmap.content = makeToUnicodeCMap(base_font_name, subset)
            if doc.compression:
                cmap.filters = [pdfdoc.PDFZCompress]
            pdf_font.ToUnicode = doc.Reference(cmap, "toUnicodeCMap:" + base_font_name)
            pdf_font.FontDescriptor = self.face.addSubsetObjects(doc, base_font_name, subset)
            doc.Reference(pdf_font, internal_name)
            fonts = doc.idToObject["BasicFonts"]
            assert isinstance(fonts, pdfdoc.PDFDictionary)  # the document's font resources
            fonts.dict[internal_name] = pdf_font
        del self.state[doc]
