"""Spreadsheet cells that stay text: no formula from a name, no control character.

A member renamed `=HYPERLINK("http://evil.example/x","点击")` by a grid secretary must reach
the monthly report as that text, not as a link a colleague clicks in Excel. OWASP's guidance
on CSV injection: a cell that starts with `= + - @`, a tab or a carriage return is a formula
to a spreadsheet program. In `.xlsx` such a cell is written with the string type (Excel never
evaluates a string cell, and the text survives an export and re-import unchanged); in `.csv`,
which has no types, it gets a leading apostrophe, which spreadsheet programs hide.

Long sheets (a month's cases) are written as worksheet XML here (`rows_xml`) and put into the
workbook openpyxl saved (`splice`): openpyxl spends tens of microseconds on each cell, seconds
on a month of a busy community, where formatting the same cells as text takes milliseconds.
Every text cell is written as an inline string, as openpyxl writes text, so a formula-like
text is text there too.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel

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
        cell = Cell(sheet, row=1, column=1, value=value)  # placed by append
        if is_formula_like(value):
            cell.data_type = "s"
        cells.append(cell)
    sheet.append(cells)
    return cells


def cleaned(values: Iterable[Any]) -> list[Any]:
    """A row's values as a sheet holds them: text without the characters XML cannot carry."""
    return [ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in values]


def _cell_xml(ref: str, style: int, value: Any) -> str:
    """One cell as openpyxl writes it (text first: most cells are text)."""
    if type(value) is str and value:
        text = escape(value) if ("&" in value or "<" in value or ">" in value) else value
        space = (' xml:space="preserve"'
                 if (text[0].isspace() or text[-1].isspace()) and text.strip() else "")
        return f'<c r="{ref}" s="{style}" t="inlineStr"><is><t{space}>{text}</t></is></c>'
    if value is None or value == "":
        return f'<c r="{ref}" s="{style}"/>'
    if isinstance(value, bool):
        return f'<c r="{ref}" s="{style}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, (int, float)):
        number = "" if math.isnan(value) or math.isinf(value) else f"{value:.16g}"
        return f'<c r="{ref}" s="{style}" t="n"><v>{number}</v></c>'
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise TypeError("a spreadsheet time is local and naive")
        serial = to_excel(value)  # type: ignore[no-untyped-call]
        return f'<c r="{ref}" s="{style}" t="n"><v>{serial:.16g}</v></c>'
    return _cell_xml(ref, style, str(value))


def rows_xml(rows: Sequence[Sequence[Any]], styles: Sequence[Sequence[int]], first_row: int,
             heights: Sequence[float | None]) -> str:
    """Worksheet XML for `rows` (values cleaned, `cleaned`) from row number `first_row`: each
    cell with its style id (openpyxl's `Cell.style_id` in the same workbook), each row with
    its height in points (None: as tall as one line)."""
    width = max((len(row) for row in rows), default=0)
    letters = [get_column_letter(n + 1) for n in range(width)]
    parts = []
    for n, (values, row_styles, height) in enumerate(zip(rows, styles, heights, strict=True)):
        number = first_row + n
        tall = f' ht="{height:.16g}" customHeight="1"' if height else ""
        parts.append(f'<row r="{number}"{tall}>')
        parts.extend(_cell_xml(f"{letter}{number}", style, value)
                     for letter, style, value in zip(letters, row_styles, values, strict=False))
        parts.append("</row>")
    return "".join(parts)


DIMENSION = re.compile(rb'<dimension ref="[^"]*"/>')


def splice(xlsx: bytes, rows: Mapping[int, tuple[str, str]]) -> bytes:
    """The saved workbook with rows added at the end of some sheets: {sheet number (1 for the
    first sheet): (rows' XML, the sheet's new dimension such as "A1:W1647")}."""
    parts = {f"xl/worksheets/sheet{number}.xml": added for number, added in rows.items()}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as saved, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as spliced:
        names = saved.namelist()
        missing = set(parts) - set(names)
        if missing:
            raise ValueError(f"no such sheet part: {sorted(missing)}")
        for name in names:
            data = saved.read(name)
            if name in parts:
                xml, dimension = parts[name]
                data = DIMENSION.sub(f'<dimension ref="{dimension}"/>'.encode(), data, count=1)
                if b"</sheetData>" in data:
                    data = data.replace(b"</sheetData>", xml.encode() + b"</sheetData>", 1)
                else:
                    data = data.replace(b"<sheetData/>",
                                        b"<sheetData>" + xml.encode() + b"</sheetData>", 1)
            spliced.writestr(name, data, compresslevel=1)
    return out.getvalue()
