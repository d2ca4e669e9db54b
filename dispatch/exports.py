"""Spreadsheet cells that stay text: no formula from a name, no control character.

A member renamed `=HYPERLINK("http://evil.example/x","点击")` by a grid secretary must reach
the monthly report as that text, not as a link a colleague clicks in Excel. OWASP's guidance
on CSV injection: a cell that starts with `= + - @`, a tab or a carriage return is a formula
to a spreadsheet program. In `.xlsx` such a cell is written with the string type (Excel never
evaluates a string cell, and the text survives an export and re-import unchanged); in `.csv`,
which has no types, it gets a leading apostrophe, which spreadsheet programs hide.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell

#: What makes a spreadsheet program read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_START)


def csv_cell(value: Any) -> Any:
    """A CSV field that a spreadsheet program reads as text."""
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        return "'" + value if is_formula_like(value) else value
    return value


def append_row(sheet: Any, values: Iterable[Any]) -> list[Cell]:
    """Append a row to an openpyxl sheet and return its cells; text stays text, whatever it
    starts with.

    The cells are made here rather than looked up after appending: openpyxl finds a sheet's
    last row by scanning every cell, which made a month's case sheet take seconds.
    """
    cells = []
    for value in values:
        if isinstance(value, str):
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell = Cell(sheet, value=value)
        if is_formula_like(value):
            cell.data_type = "s"
        cells.append(cell)
    sheet.append(cells)
    return cells
