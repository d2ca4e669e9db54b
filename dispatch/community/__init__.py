"""The community: its places, people, duty rosters and dispatch settings, in and out of files.

Web views, CLI commands and tests all import and export through these functions, each of
which is one transaction: a file either applies whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from dispatch.community import demo, files
from dispatch.community.files import CommunityData, Row
from dispatch.community.load import Changes, CommunityFileError, export_community, import_community
from dispatch.db import db
from dispatch.models import Community

__all__ = ["Changes", "CommunityFileError", "export_file", "import_data", "import_file",
           "load_demo"]


def import_data(data: CommunityData) -> tuple[Community, Changes]:
    """Apply already-read file tables in one transaction; nothing is kept on any error."""
    try:
        community, changes = import_community(db.session, data)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return community, changes


def import_file(path: Path) -> tuple[Community, Changes]:
    """Import a `.yaml` or `.xlsx` community file."""
    return import_data(files.read(path))


def export_file(path: Path, code: str | None = None) -> Community:
    """Write the community with `code` (or the only one) to a `.yaml` or `.xlsx` file."""
    query = sa.select(Community).order_by(Community.id)
    if code:
        query = query.where(Community.code == code)
    communities = list(db.session.scalars(query))
    if len(communities) != 1:
        raise LookupError(f"no community {code!r}" if code else
                          "several communities: name one with --community")
    files.write(path, export_community(db.session, communities[0]))
    return communities[0]


def load_demo(seed: int = 2018) -> tuple[Community, Changes]:
    """Generate the Donghu-sized demo community, import it, and give every place a sticker."""
    from qr.codes import ensure_stickers

    community, changes = import_data(tables_to_data(demo.generate(seed), "demo"))
    ensure_stickers(community.places)
    db.session.commit()
    return community, changes


def tables_to_data(tables: dict[str, list[dict]], file: str) -> CommunityData:
    """Wrap in-memory tables (an export, the demo) as if they had been read from a file."""
    data = CommunityData(file)
    for table, rows in tables.items():
        data.tables[table] = [Row(dict(r), file, table, n) for n, r in enumerate(rows, start=1)]
    return data
