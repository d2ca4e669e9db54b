"""The monthly workbook printed as the district prints it: LibreOffice turns it into a PDF.

The goal from issue #18: one printed page per 40 cases on the case sheet, plus the summary
and the definitions. LibreOffice (Debian's `libreoffice-calc-nogui`, installed by
`scripts/install.sh --tests`) reads the page setup the workbook carries, as Excel does.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from flask import Flask
from openpyxl import load_workbook

from tests.conftest import unavailable
from tests.dispatch.staff.conftest import client_for
from tests.dispatch.staff.history import busy_month

CASES_PER_PAGE = 40
A4_LANDSCAPE = (841.9, 595.3)  # points


def print_to_pdf(workbook: Path, out: Path) -> Path:
    """The workbook printed to PDF by LibreOffice, with a profile of its own.

    Two LibreOffice processes sharing a profile lock each other out, so parallel test runs
    each get theirs (under `out`).
    """
    soffice = shutil.which("soffice")
    if soffice is None:
        unavailable("LibreOffice (soffice)", FileNotFoundError("soffice not on PATH"))
    profile = (out / "profile").as_uri()
    subprocess.run([soffice, f"-env:UserInstallation={profile}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(out), str(workbook)],
                   check=True, capture_output=True, timeout=120)
    return out / f"{workbook.stem}.pdf"


def test_eighty_cases_print_on_two_pages_plus_summary_and_definitions(
        app: Flask, console: dict[str, Any], tmp_path: Path) -> None:
    with app.app_context():
        busy_month(80 - 9)  # with the nine March cases of the console's history
    workbook = tmp_path / "TS-2026-03.xlsx"
    workbook.write_bytes(client_for(app, "admin").get("/staff/reports/2026-03.xlsx").data)
    assert load_workbook(workbook)["案件"].max_row == 81  # the header and 80 cases
    pdf = pypdfium2.PdfDocument(print_to_pdf(workbook, tmp_path))
    texts = [page.get_textpage().get_text_range() for page in pdf]
    # The footer ("案件  第 2 页，共 4 页") comes first in a page's text: it names the sheet.
    sheets = [text.split()[0] if text.strip() else "" for text in texts]
    assert sheets == ["汇总"] + ["案件"] * math.ceil(80 / CASES_PER_PAGE) + ["口径说明"]
    assert all("诉求内容" in text for text, sheet in zip(texts, sheets, strict=True)
               if sheet == "案件")  # the header row repeats on every page of cases
    assert all(page.get_size() == pytest.approx(A4_LANDSCAPE, abs=1) for page in pdf)
