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

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

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
    font = TTFont(name, path, subfontIndex=0)
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
