"""Languages of the resident pages: Simplified Chinese, with English one tap away.

The texts are written in Chinese in the templates and code; `dispatch/translations/en` holds
their English. Chinese is the default whatever the browser asks for, because a phone set to
English in a Chinese home is more common than a resident who cannot read Chinese; the
switch sets a cookie so the choice sticks. Catalogs compile themselves when the app starts
(see `compile_catalogs`), so editing a .po file needs no manual step.
"""

from __future__ import annotations

import logging
import os
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, request
from flask_babel import Babel, get_locale

from dispatch.community.settings import Category

log = logging.getLogger(__name__)

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
DEFAULT = "zh"
LANGUAGES = {"zh": "中文", "en": "English"}
HTML_LANG = {"zh": "zh-CN", "en": "en"}
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

babel = Babel()


def select_locale() -> str:
    """The language of this request: the resident's saved choice, else Chinese."""
    chosen = request.cookies.get(COOKIE, "")
    return chosen if chosen in LANGUAGES else DEFAULT


def language() -> str:
    """The current language code, `zh` or `en`."""
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES else DEFAULT


def category_name(category: Category) -> str:
    """A report category as the resident reads it."""
    return category.name_en if language() == "en" else category.name


def compile_catalogs(directory: Path = TRANSLATIONS) -> list[Path]:
    """Compile every .po whose .mo is missing or older; returns the files written.

    The write goes through a temporary file and a rename, so several workers starting at
    once never read a half-written catalog. A read-only install keeps the shipped .mo.
    """
    written = []
    for po in sorted(directory.glob("*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as source:
            catalog = read_po(source)
        buffer = BytesIO()
        write_mo(buffer, catalog)
        temporary = mo.with_name(f"{mo.name}.{os.getpid()}.tmp")
        try:
            temporary.write_bytes(buffer.getvalue())
            os.replace(temporary, mo)
        except OSError as exc:
            log.warning("could not compile %s (%s); using the shipped catalog", po, exc)
            continue
        written.append(mo)
    return written


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    compile_catalogs()
    babel.init_app(app, locale_selector=select_locale)
