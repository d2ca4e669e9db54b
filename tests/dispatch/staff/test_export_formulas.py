"""Exports keep text as text: a name that looks like a formula never becomes one (defect 1)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from openpyxl import load_workbook

from dispatch.community import export_file, files
from dispatch.db import db
from dispatch.models import Community, Member
from tests.dispatch.staff.conftest import client_for

EVIL = '=HYPERLINK("http://evil.example/x","点击")'
CMD = "=cmd|' /C calc'!A0"


def _poison(app: Flask) -> None:
    """What a grid secretary typed: members and a category named as formulas."""
    with app.app_context():
        for member in db.session.scalars(sa.select(Member)):
            member.name = EVIL
        community = db.session.scalars(sa.select(Community)).one()
        categories = [{**c, "name": CMD} for c in community.settings["categories"]]
        community.settings = {**community.settings, "categories": categories}
        db.session.commit()


def _cells(book: Any) -> list[Any]:
    return [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row]


def test_monthly_workbook_writes_formula_like_names_as_text(app: Flask,
                                                           console: dict[str, Any]) -> None:
    _poison(app)
    response = client_for(app, "admin").get("/staff/reports/2026-03.xlsx")
    assert response.status_code == 200
    cells = _cells(load_workbook(io.BytesIO(response.data)))
    assert [c.value for c in cells if c.data_type == "f"] == []
    assert EVIL in {c.value for c in cells} and CMD in {c.value for c in cells}


def test_cases_csv_prefixes_formula_like_cells(app: Flask, console: dict[str, Any]) -> None:
    _poison(app)
    response = client_for(app, "admin").get("/staff/reports/2026-03/cases.csv")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    values = [value for row in rows[1:] for value in row]
    assert "'" + EVIL in values
    assert not [v for v in values if v.startswith(("=", "+", "@", "\t", "\r"))]


def test_community_export_writes_formula_like_names_as_text_and_reimports_them(
        app: Flask, console: dict[str, Any], tmp_path: Path) -> None:
    _poison(app)
    path = tmp_path / "export.xlsx"
    with app.app_context():
        export_file(path)
    cells = _cells(load_workbook(path))
    assert [c.value for c in cells if c.data_type == "f"] == []
    names = {row.get("name") for row in files.read(path).rows("members")}
    assert names == {EVIL}
