"""The community: its places, people, duty rosters and dispatch settings, in and out of files.

Web views, CLI commands and tests all import and export through these functions, each of
which is one transaction: a file either applies whole or not at all.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dispatch.community import demo, files
from dispatch.community.apply import Changes, import_community
from dispatch.community.check import CommunityFileError
from dispatch.community.export import export_community
from dispatch.community.files import CommunityData, Location, Row
from dispatch.db import db
from dispatch.models import Community

__all__ = ["Changes", "CommunityFileError", "export_file", "import_data", "import_file",
           "load_demo"]


#: A whole file must have these: without them every member would be deactivated.
WHOLE_FILE_TABLES = ("community", "members")


def import_data(data: CommunityData,
                partial: Collection[str] | None = None) -> tuple[Community, Changes]:
    """Apply already-read file tables in one transaction; nothing is kept on any error.

    A file is the whole community: a member missing from it is deactivated. So a file without
    a members table (a workbook with only the community sheet) is refused, unless `partial`
    names the tables it updates; every other table is then taken as it stands now.
    """
    try:
        if data.problems:  # the file could not be read whole: say why, before anything else
            raise CommunityFileError(list(data.problems))
        if partial:
            data = _completed(data, set(partial))
        else:
            missing = [t for t in WHOLE_FILE_TABLES if t not in data.tables]
            if missing:
                raise CommunityFileError([(Location(data.file, table), (
                    f"no {table} sheet: importing this file would deactivate every member. "
                    f"To update only the sheets it has, import with --partial "
                    f"{','.join(t for t in files.TABLES if t in data.tables) or 'community'}"))
                    for table in missing])
        community, changes = import_community(db.session(), data)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return community, changes


def import_file(path: Path,
                partial: Collection[str] | None = None) -> tuple[Community, Changes]:
    """Import a `.yaml` or `.xlsx` community file (`partial`: only the tables named)."""
    return import_data(files.read(path), partial)


def _completed(data: CommunityData, partial: set[str]) -> CommunityData:
    """The file's tables named in `partial`, and the community's current state for the rest."""
    problems = [(Location(data.file, t), "--partial names a table this file does not have")
                for t in sorted(partial) if t not in data.tables]
    problems += [(Location(data.file, t), "unknown table in --partial")
                 for t in sorted(partial) if t not in files.TABLES]
    code = next((str(r.get("code")) for r in data.rows("community") if r.get("code")), None)
    community = db.session.scalar(sa.select(Community).where(Community.code == code)) if (
        code) else None
    if community is None:
        problems.append((Location(data.file, "community"),
                         "--partial updates an existing community: name it in the community "
                         "sheet"))
    if problems or data.problems:
        raise CommunityFileError(list(data.problems) + problems)
    assert community is not None  # its absence is one of the problems raised above
    current = tables_to_data(export_community(db.session(), community), "(current)")
    for table in files.TABLES:
        if table not in partial:
            data.tables[table] = current.rows(table)
    return data


def export_file(path: Path, code: str | None = None) -> Community:
    """Write the community with `code` (or the only one) to a `.yaml` or `.xlsx` file."""
    query = sa.select(Community).order_by(Community.id)
    if code:
        query = query.where(Community.code == code)
    communities = list(db.session.scalars(query))
    if len(communities) != 1:
        raise LookupError(f"no community {code!r}" if code else
                          "several communities: name one with --community")
    files.write(path, export_community(db.session(), communities[0]))
    return communities[0]


def load_demo(seed: int = 2018) -> tuple[Community, Changes]:
    """Generate the Donghu-sized demo community, import it, and give every place a sticker."""
    from qr.codes import ensure_stickers

    community, changes = import_data(tables_to_data(demo.generate(seed), "demo"))
    ensure_stickers(community.places)
    db.session.commit()
    return community, changes


def tables_to_data(tables: dict[str, list[dict[str, Any]]], file: str) -> CommunityData:
    """Wrap in-memory tables (an export, the demo) as if they had been read from a file."""
    data = CommunityData(file)
    for table, rows in tables.items():
        data.tables[table] = [Row(dict(r), file, table, n) for n, r in enumerate(rows, start=1)]
    return data
