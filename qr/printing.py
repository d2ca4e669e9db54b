"""Choosing what to print: the active stickers of a community, grid or building, by kind.

Labels are streamed from the database in batches, so printing the whole district keeps memory
flat; the sheet writer consumes them one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from dispatch.db import db
from dispatch.models import Community, Place, PlaceKind, Sticker, StickerStatus
from qr.codes import STICKER_KINDS, ensure_stickers
from qr.labels import StickerLabel, sticker_url
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


def places_in(community: Community, root: Place | None,
              kinds: tuple[PlaceKind, ...]) -> sa.Select[tuple[Place]]:
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
           batch: int = 500) -> tuple[int, Iterator[StickerLabel]]:
    """How many stickers the selection prints, and their labels streamed in order.

    Places without an active sticker get one first (committed), so every place prints.
    """
    community, root = resolve_scope(selection.scope)
    query = places_in(community, root, selection.kinds)
    issued = ensure_stickers(db.session.scalars(query))
    if issued:
        db.session.commit()
    rows = (sa.select(Sticker, Place).join(Place, Sticker.place_id == Place.id)
            .where(Sticker.status == StickerStatus.ACTIVE,
                   Place.id.in_(query.with_only_columns(Place.id)))
            .order_by(Place.position, Place.id, Sticker.id.desc()))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(
        rows.with_only_columns(Place.id).distinct().subquery()))

    def stream() -> Iterator[StickerLabel]:
        last_place = None
        for sticker, place in db.session.execute(rows.execution_options(yield_per=batch)):
            if place.id == last_place:  # a reissued place has two active codes: print the newest
                continue
            last_place = place.id
            yield StickerLabel(code=sticker.code, url=sticker_url(public_base_url, sticker.code),
                               community=community.name, place=place.label,
                               kind=str(place.kind), hotline=community.hotline)

    return total or 0, stream()


def print_selection(selection: Selection, public_base_url: str, out_path: Path, *,
                    layout: Layout, printed_on: date, max_per_file: int = 2000,
                    on_total: Callable[[int], None] | None = None,
                    progress: Callable[[int], None] | None = None) -> SheetSummary:
    """Write the selection's stickers to PDF sheet(s); `on_total` hears the count first.

    Raises LookupError for an unknown scope or a selection with nothing to print.
    """
    total, stream = labels(selection, public_base_url)
    if total == 0:
        kinds = ", ".join(str(k) for k in selection.kinds)
        raise LookupError(f"{selection.scope}: no {kinds} places to print")
    if on_total is not None:
        on_total(total)
    community, root = resolve_scope(selection.scope)
    title = community.name if root is None else f"{community.name} · {root.name}"
    return write_sheets(stream, out_path, layout=layout, title=title, printed_on=printed_on,
                        max_per_file=max_per_file, progress=progress)
