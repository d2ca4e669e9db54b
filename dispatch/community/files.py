"""The community file on disk: one YAML document, or the same tables as an Excel workbook.

Both formats read into the same `CommunityData`: named tables of rows, each row remembering
where it came from (file, sheet, row, and the column of each field), so that a validation
error can point a staff member at the exact cell to fix.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from openpyxl import Workbook, load_workbook
from openpyxl.utils import get_column_letter

from dispatch import exports

#: The largest community file read (a district of 30,000 households is about 2 MB of YAML),
#: and the most rows one table may have: beyond them the file is refused, not half-read.
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_ROWS = 50_000
#: YAML aliases allowed in one file. A community file needs none; a "billion laughs" file
#: needs a few dozen to expand into gigabytes.
MAX_ALIASES = 20

#: Every table of the file and its columns, in the order they are written.
TABLES: dict[str, tuple[str, ...]] = {
    "community": ("code", "name", "timezone", "hotline"),
    "categories": ("code", "name", "name_en", "urgency", "respond_minutes", "example",
                   "example_en"),
    # Words in a resident's message that suggest an urgent category (消防通道 → safety).
    "urgent_words": ("word", "category"),
    "policies": ("urgency", "rung_minutes", "repeat_last", "on_site_minutes", "referral_hours",
                 "call_after_minutes", "working_hours"),
    "routing": ("category", "rung", "roles"),
    "places": ("code", "kind", "name", "parent", "org_name", "floors", "households", "notes"),
    "members": ("code", "name", "public_name", "kind", "organisation", "party_member", "grid",
                "phones", "wecom", "channels", "dnd", "active", "notes"),
    "responsibilities": ("member", "place", "rung", "role", "order", "categories"),
    "shifts": ("member", "days", "start", "end"),
    "overrides": ("member", "kind", "starts", "ends", "stand_in", "note"),
    "robots": ("place", "kind", "key", "secret"),
}


@dataclass(frozen=True, slots=True)
class Location:
    """Where a value came from; printed as `file, sheet members, row 14, column F (phones)`."""

    file: str
    sheet: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        parts = [self.file, f"sheet {self.sheet}"]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        return ", ".join(parts)


@dataclass(slots=True)
class Row:
    values: dict[str, Any]
    file: str
    sheet: str
    number: int
    #: How the file names each field's column: "F (phones)" in a workbook, "phones" in YAML.
    columns: dict[str, str] = field(default_factory=dict)

    def where(self, column: str | None = None) -> Location:
        label = None if column is None else self.columns.get(column, column)
        return Location(self.file, self.sheet, self.number, label)

    def get(self, key: str) -> Any:
        return self.values.get(key)


@dataclass(slots=True)
class CommunityData:
    """The tables of one community file, as read, before validation."""

    file: str
    tables: dict[str, list[Row]] = field(default_factory=dict)
    problems: list[tuple[Location, str]] = field(default_factory=list)

    def rows(self, table: str) -> list[Row]:
        return self.tables.get(table, [])


def read(path: Path) -> CommunityData:
    """Read a `.yaml`/`.yml` or `.xlsx` community file."""
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        data = CommunityData(path.name)
        data.problems.append((Location(path.name, "-"), f"the file is larger than "
                              f"{MAX_FILE_BYTES // 2**20} MB ({size // 2**20} MB); split it"))
        return data
    if suffix in (".yaml", ".yml"):
        return read_yaml(path)
    if suffix == ".xlsx":
        return read_xlsx(path)
    raise ValueError(f"{path.name}: expected a .yaml or .xlsx community file")


def write(path: Path, tables: dict[str, list[dict[str, Any]]]) -> None:
    """Write tables as YAML or a workbook, chosen by the file's suffix."""
    if path.suffix.lower() == ".xlsx":
        write_xlsx(path, tables)
    else:
        write_yaml(path, tables)


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping, for error messages, and
    refuses more than `MAX_ALIASES` aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases = getattr(self, "aliases", 0) + 1
            if self.aliases > MAX_ALIASES:
                # types-PyYAML leaves peek_event unannotated
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_ALIASES} aliases (*name): refused",
                    event.start_mark)
        return super().compose_node(parent, index)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Hashable, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 reads 18:00 as the number 1080 and 2026-12-01 as a date. Keep both as text:
# the validator parses times itself, in the community's local time.
_DECIMAL = re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$")
_LineLoader.yaml_implicit_resolvers = {
    key: [(tag, _DECIMAL if tag == "tag:yaml.org,2002:int" else regexp)
          for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_yaml(path: Path) -> CommunityData:
    data = CommunityData(path.name)
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)
    except UnicodeDecodeError as exc:
        data.problems.append((Location(path.name, "-"), f"not UTF-8 text (byte {exc.start})"))
        return data
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = mark.line + 1 if mark is not None else None
        data.problems.append((Location(path.name, "-", row), f"not valid YAML: {exc}"))
        return data
    if not isinstance(document, dict):
        data.problems.append((Location(path.name, "-"), "expected a mapping of tables"))
        return data
    for table, content in document.items():
        if table == "__line__":
            continue
        if table not in TABLES:
            data.problems.append((Location(path.name, str(table)), "unknown section"))
            continue
        items = [content] if table == "community" and isinstance(content, dict) else content
        if not isinstance(items, list):
            data.problems.append((Location(path.name, table), "expected a list of rows"))
            continue
        rows = data.tables.setdefault(table, [])
        if len(items) > MAX_ROWS:
            data.problems.append((Location(path.name, table), f"more than {MAX_ROWS} rows"))
            continue
        for index, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                data.problems.append((Location(path.name, table, index), "expected a mapping"))
                continue
            line = item.pop("__line__", index)
            unknown = [k for k in item if k not in TABLES[table]]
            for key in unknown:
                data.problems.append((Location(path.name, table, line, key), "unknown column"))
            rows.append(Row({k: _plain(v) for k, v in item.items()}, path.name, table, line))
    return data


def _plain(value: Any) -> Any:
    """Strip the loader's line markers from nested mappings."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _FlowRow(dict[str, Any]):
    """A table row written on one line, so a long roster reads like a spreadsheet."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _FlowRow, lambda dumper, row: dumper.represent_mapping(
        "tag:yaml.org,2002:map", row.items(), flow_style=True))

#: Tables short enough, or nested enough, to read better one field per line.
_BLOCK_TABLES = ("community", "categories", "policies")


def write_yaml(path: Path, tables: dict[str, list[dict[str, Any]]]) -> None:
    document: dict[str, Any] = {}
    for table, columns in TABLES.items():
        row_type = dict if table in _BLOCK_TABLES else _FlowRow
        rows = [row_type((c, r[c]) for c in columns if r.get(c) not in (None, "", []))
                for r in tables.get(table, [])]
        if table == "community":
            document[table] = rows[0] if rows else {}
        elif rows:
            document[table] = rows
    text = yaml.dump(document, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=4096)
    path.write_text(_HEADER + text, encoding="utf-8")


_HEADER = """\
# Linli community file. Codes are the keys: re-importing this file updates in place.
# Times are local to the community's time zone. Columns: see docs/example-community.yaml.
"""


def read_xlsx(path: Path) -> CommunityData:
    data = CommunityData(path.name)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        data.problems.append((Location(path.name, "-"), f"not a readable workbook: {exc}"))
        return data
    try:
        for sheet in workbook.worksheets:
            if sheet.title not in TABLES:
                data.problems.append((Location(path.name, sheet.title), "unknown sheet"))
                continue
            data.tables[sheet.title] = _sheet_rows(data, path.name, sheet)
    finally:
        workbook.close()
    return data


def _sheet_rows(data: CommunityData, file: str, sheet: Any) -> list[Row]:
    lines = sheet.iter_rows(values_only=True)
    header = next(lines, None) or ()
    columns: dict[int, str] = {}
    for index, name in enumerate(header):
        if name is None:
            continue
        name = str(name).strip()
        letter = get_column_letter(index + 1)
        if name not in TABLES[sheet.title]:
            data.problems.append((Location(file, sheet.title, 1, f"{letter} ({name})"),
                                  "unknown column"))
            continue
        columns[index] = name
    labels = {name: f"{get_column_letter(i + 1)} ({name})" for i, name in columns.items()}
    rows: list[Row] = []
    for number, cells in enumerate(lines, start=2):
        if len(rows) >= MAX_ROWS:
            data.problems.append((Location(file, sheet.title, number),
                                  f"more than {MAX_ROWS} rows: split the file"))
            break
        values = {columns[i]: _cell(v) for i, v in enumerate(cells) if i in columns}
        if all(v in (None, "") for v in values.values()):
            continue
        rows.append(Row(values, file, sheet.title, number, labels))
    return rows


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    return value


def write_xlsx(path: Path, tables: dict[str, list[dict[str, Any]]]) -> None:
    workbook = Workbook()
    workbook.remove(workbook.worksheets[0])  # the empty sheet every new Workbook starts with
    for table, columns in TABLES.items():
        sheet = workbook.create_sheet(table)
        sheet.append(list(columns))
        for row in tables.get(table, []):
            exports.append_row(sheet, [_xlsx_value(row.get(c)) for c in columns])
        for index, name in enumerate(columns, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = max(10, len(name) + 4)
        sheet.freeze_panes = "A2"
    workbook.save(path)


def _xlsx_value(value: Any) -> Any:
    """Lists become comma-separated text, the form staff type into a cell."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return value
