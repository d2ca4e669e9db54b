"""Choosing what to print: the active stickers of a community, grid or building, by kind.

Labels are streamed from the database in batches, so printing the whole district keeps memory
flat; the sheet writer consumes them one at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from dispatch.db import db
from dispatch.models import Community, Place, PlaceKind, Sticker, StickerStatus
from qr.codes import STICKER_KINDS, ensure_stickers
from qr.labels import StickerLabel, check_printable_url, sticker_url
from qr.sheet import Layout, SheetSummary, write_sheets


@dataclass(frozen=True, slots=True)
class Selection:
    """What to print; `scope` is a community, grid or building code."""

    scope: str
    kinds: tuple[PlaceKind, ...] = STICKER_KINDS


def resolve_scope(code: str) -> tuple[Community, Place | None]:
    """The community and (for a grid or building code) the place a scope code names."""
    community = db.session.scalar(sa.select(Community).where(Community.code == code))
    if community is not None:
        return community, None
    place = db.session.scalar(sa.select(Place).where(Place.code == code))
    if place is None or place.kind not in (PlaceKind.GRID, PlaceKind.BUILDING):
        raise LookupError(f"{code!r} is not a community, grid or building code")
    return place.community, place


def scope_name(community: Community, root: Place | None) -> str:
    """A scope as sheets and reports head it: 东湖花园, or 东湖花园 · 第二网格."""
    return community.name if root is None else f"{community.name} · {root.name}"


def places_in(community: Community, root: Place | None,
              kinds: tuple[PlaceKind, ...]) -> sa.Select[Place]:
    """Places of `kinds` under `root` (or the whole community), in printing order."""
    query = sa.select(Place).where(Place.community_id == community.id, Place.kind.in_(kinds))
    if root is not None:
        # At most four levels: grid > building > unit > elevator.
        ancestors = [aliased(Place) for _ in range(3)]
        parent = Place.parent_id
        conditions = [Place.id == root.id, Place.parent_id == root.id]
        for ancestor in ancestors:
            query = query.outerjoin(ancestor, ancestor.id == parent)
            conditions.append(ancestor.parent_id == root.id)
            parent = ancestor.parent_id
        query = query.where(sa.or_(*conditions))
    return query.order_by(Place.position, Place.id)


def labels(selection: Selection, public_base_url: str, *,
           batch: int = 500) -> tuple[int, Generator[StickerLabel]]:
    """How many stickers the selection prints, and their labels streamed in order.

    Places without an active sticker get one first, flushed but not committed: the caller
    commits once the sheets are written, so a failed print issues nothing. One query streams
    the newest active sticker of each place, and carries the total as a window count, so
    SQLite and PostgreSQL run the same SQL.
    """
    community, root = resolve_scope(selection.scope)
    query = places_in(community, root, selection.kinds)
    ensure_stickers(db.session.scalars(query))
    newest = (sa.select(sa.func.max(Sticker.id))
              .where(Sticker.status == StickerStatus.ACTIVE,
                     Sticker.place_id.in_(query.with_only_columns(Place.id).order_by(None)))
              .group_by(Sticker.place_id))
    rows = db.session.execute(
        sa.select(Sticker.code, Place, sa.func.count().over())
        .join(Place, Sticker.place_id == Place.id)
        .where(Sticker.id.in_(newest))
        .order_by(Place.position, Place.id)
        .execution_options(yield_per=batch))
    first = next(rows, None)
    if first is None:
        rows.close()
        nothing: tuple[StickerLabel, ...] = ()
        return 0, (label for label in nothing)

    def stream() -> Generator[StickerLabel]:
        with rows:  # a server-side cursor on PostgreSQL: closed even when printing stops early
            for code, place, _ in itertools.chain([first], rows):
                yield sticker_label(place, code, public_base_url)

    return first[2], stream()


def sticker_label(place: Place, code: str, public_base_url: str) -> StickerLabel:
    """What the sticker with `code` at `place` prints; the staff page draws the same."""
    community = place.community
    return StickerLabel(code=code, url=sticker_url(public_base_url, code),
                        community=community.name, place=place.label,
                        place_code=place.code, kind=str(place.kind), hotline=community.hotline)


def print_selection(selection: Selection, public_base_url: str, out_path: Path, *,
                    layout: Layout, printed_on: date, max_per_file: int = 2000,
                    on_total: Callable[[int], None] | None = None,
                    progress: Callable[[int], object] | None = None,
                    allow_insecure_url: bool = False) -> SheetSummary:
    """Write the selection's stickers to PDF sheet(s), in one transaction with the codes issued.

    The base URL must be public https (`check_printable_url`) unless `allow_insecure_url`, for
    tests and demos; it is printed in each page's header so a wrong one is seen before cutting.

    Codes issued for places that had none are committed only once every file is written; on
    any failure they are rolled back and the files of this run removed, so a failed print
    leaves nothing half-done. `on_total` hears the count first. Raises LookupError for an
    unknown scope or a selection with nothing to print, ValueError for a sticker that cannot
    be printed (a character the font lacks, modules too small).
    """
    if not allow_insecure_url:
        check_printable_url(public_base_url)
    community, root = resolve_scope(selection.scope)
    title = scope_name(community, root)
    stream = None
    try:
        total, stream = labels(selection, public_base_url)
        if total == 0:
            kinds = ", ".join(str(k) for k in selection.kinds)
            raise LookupError(f"{selection.scope}: no {kinds} places to print")
        if on_total is not None:
            on_total(total)
        summary = write_sheets(stream, out_path, layout=layout, title=title,
                               printed_on=printed_on, max_per_file=max_per_file,
                               progress=progress, base_url=public_base_url)
        db.session.commit()
    except BaseException:
        if stream is not None:
            stream.close()
        db.session.rollback()
        raise
    return summary
