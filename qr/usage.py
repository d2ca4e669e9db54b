"""How stickers are used: scan counts, the last scan, and the stickers nobody scans any more.

A sticker that nobody scans for months may have been torn off, painted over or never put up;
someone should walk past and look. Both questions are answered from the `ix_scan_sticker_at`
index alone (sticker, time), so they stay cheap however many scans a district collects.
The time is always the caller's `now`: the report is a function of the data and a clock.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from dispatch.db import db
from dispatch.models import Community, Place, PlaceKind, Scan, Sticker, StickerStatus
from qr.codes import STICKER_KINDS
from qr.printing import places_in

#: A sticker printed this long ago and not scanned since is worth a look.
UNSCANNED_DAYS = 90


@dataclass(frozen=True, slots=True)
class ScanCount:
    """How often a sticker was scanned, and when last (UTC; None if never)."""

    scans: int
    last: datetime | None


NEVER = ScanCount(0, None)


def scan_counts(sticker_ids: Collection[int]) -> dict[int, ScanCount]:
    """Scan count and last scan of each sticker; stickers never scanned are left out."""
    if not sticker_ids:
        return {}
    rows = db.session.execute(
        sa.select(Scan.sticker_id, sa.func.count(), sa.func.max(Scan.at))
        .where(Scan.sticker_id.in_(list(sticker_ids)))
        .group_by(Scan.sticker_id))
    return {sticker_id: ScanCount(count, last) for sticker_id, count, last in rows
            if sticker_id is not None}  # never None: the WHERE names each sticker


@dataclass(frozen=True, slots=True)
class Unscanned:
    """An active sticker with no scan in the period: where it is, and when it was last seen."""

    sticker: Sticker
    place: Place
    last: datetime | None


def unscanned(community: Community, now: datetime, *, days: int = UNSCANNED_DAYS,
              root: Place | None = None) -> list[Unscanned]:
    """Active stickers issued at least `days` before `now` with no scan since, in place order.

    Stickers issued more recently are left out: a fresh sticker may not be on the wall yet.
    `root` (a grid or building) narrows the report to the places under it.
    """
    since = now - timedelta(days=days)
    places = places_in(community, root, STICKER_KINDS).with_only_columns(Place.id).order_by(None)
    scanned_since = sa.exists().where(Scan.sticker_id == Sticker.id, Scan.at >= since)
    last = (sa.select(sa.func.max(Scan.at)).where(Scan.sticker_id == Sticker.id)
            .correlate(Sticker).scalar_subquery())
    rows = db.session.execute(
        sa.select(Sticker, Place, last)
        .join(Place, Sticker.place_id == Place.id)
        .where(Sticker.status == StickerStatus.ACTIVE, Sticker.created_at <= since,
               Place.id.in_(places), ~scanned_since)
        .order_by(Place.position, Place.id, Sticker.id))
    return [Unscanned(sticker, place, last) for sticker, place, last in rows]


def building_of(place: Place) -> Place | None:
    """The building (or, for a shared area, the grid) whose sticker page lists `place`."""
    return place.ancestor(PlaceKind.BUILDING) or place.ancestor(PlaceKind.GRID)
