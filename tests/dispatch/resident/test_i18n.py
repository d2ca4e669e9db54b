"""Chinese pages with a complete English catalog that compiles itself."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from flask import Flask

from dispatch.resident import i18n
from tests.dispatch.resident.helpers import Resident, receipt_token

ROOT = Path(__file__).resolve().parents[3]
PO = i18n.TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po"


def _texts_on_the_pages() -> set[str]:
    """Every translatable text in the resident code and templates, as pybabel extracts it."""
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None}
    found: set[str] = set()
    for directory, method in ((ROOT / "dispatch" / "resident", "python"),
                              (ROOT / "templates" / "resident", "jinja2")):
        pattern = "**.py" if method == "python" else "**.html"
        for _, _, message, _, _ in extract_from_dir(
                directory, method_map=[(pattern, method)], keywords=keywords):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_text_on_the_resident_pages_has_english() -> None:
    with PO.open("rb") as source:
        catalog = read_po(source)
    texts = _texts_on_the_pages()
    assert len(texts) > 100
    missing = sorted(t for t in texts if t not in catalog or not catalog[t].string
                     or catalog[t].fuzzy)
    assert missing == [], "untranslated: see dispatch/translations/README.md"


def test_catalogs_compile_when_the_po_is_newer(tmp_path: Path) -> None:
    copy = tmp_path / "translations"
    shutil.copytree(i18n.TRANSLATIONS, copy)
    mo = copy / "en" / "LC_MESSAGES" / "messages.mo"
    mo.unlink(missing_ok=True)
    assert i18n.compile_catalogs(copy) == [mo]
    assert mo.stat().st_size > 1000
    assert i18n.compile_catalogs(copy) == []  # fresh: nothing to do
    po = mo.with_suffix(".po")
    os.utime(po, (mo.stat().st_mtime + 10, mo.stat().st_mtime + 10))
    assert i18n.compile_catalogs(copy) == [mo]


def test_the_receipt_in_english(app: Flask, resident: Resident) -> None:
    resident.client.set_cookie(i18n.COOKIE, "en")
    token = receipt_token(resident.message(category="safety"))
    html = resident.client.get(f"/c/{token}/receipt").get_data(as_text=True)
    assert "We have received your report" in html
    assert "Someone will respond within 2 hours" in html and "Safety hazard" in html


def test_an_unknown_language_cookie_falls_back_to_chinese(resident: Resident) -> None:
    resident.client.set_cookie(i18n.COOKIE, "fr")
    assert '<html lang="zh-CN">' in resident.scan().get_data(as_text=True)
