"""Sticker codes: short, unguessable, tied to a place, reissued after damage, revoked on abuse.

A code is 12 characters of Crockford's base32 (digits and upper-case letters without I, L, O
and U): 60 random bits, so stickers cannot be enumerated, and every character is in QR's
alphanumeric mode. Reading is forgiving: any case, dashes and spaces ignored, and the letters
people confuse with digits (I, L → 1; O → 0) read as those digits.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dispatch import clock
from dispatch.db import db
from dispatch.models import Place, PlaceKind, Sticker, StickerStatus

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 12  # 12 × 5 bits = 60 bits of randomness
STICKER_KINDS = (PlaceKind.UNIT, PlaceKind.ELEVATOR, PlaceKind.AREA)
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0", "-": None, " ": None})


def new_code() -> str:
    """A fresh random code."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise(seen: str) -> str | None:
    """The canonical form of a code as scanned or typed, or None if it cannot be one."""
    code = seen.strip().upper().translate(_READ_AS)
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def find(seen: str) -> Sticker | None:
    """The sticker a scanned or typed code names, in any state, or None."""
    code = normalise(seen)
    if code is None:
        return None
    return db.session.scalar(sa.select(Sticker).where(Sticker.code == code))


def issue(place: Place, *, replaces: Sticker | None = None) -> Sticker:
    """Give `place` a new active sticker (flushed, not committed)."""
    if place.kind not in STICKER_KINDS:
        raise ValueError(f"{place.code}: only units, elevators and areas carry stickers")
    for _ in range(5):
        sticker = Sticker(code=new_code(), place=place, created_at=clock.now(),
                          replaces_id=replaces.id if replaces else None)
        try:
            with db.session.begin_nested():
                db.session.add(sticker)
        except IntegrityError:  # a collision in 2**60 is not expected, but is harmless
            continue
        return sticker
    raise RuntimeError("could not find a free sticker code")


def ensure_stickers(places: Iterable[Place]) -> int:
    """Issue a sticker to each place that has no active one; returns how many were issued."""
    wanted = [p for p in places if p.kind in STICKER_KINDS]
    if not wanted:
        return 0
    have = set(db.session.scalars(sa.select(Sticker.place_id).where(
        Sticker.status == StickerStatus.ACTIVE, Sticker.place_id.in_([p.id for p in wanted]))))
    issued, now = 0, clock.now()
    for place in wanted:
        if place.id not in have:
            db.session.add(Sticker(code=new_code(), place=place, created_at=now))
            issued += 1
    db.session.flush()
    return issued


def active_sticker(place: Place) -> Sticker | None:
    """The newest active sticker of a place: the one to print."""
    return db.session.scalar(
        sa.select(Sticker).where(Sticker.place_id == place.id,
                                 Sticker.status == StickerStatus.ACTIVE)
        .order_by(Sticker.id.desc()).limit(1))


def reissue(sticker: Sticker, note: str | None = None) -> Sticker:
    """A replacement for a damaged sticker; the old one keeps working until it is retired."""
    replacement = issue(sticker.place, replaces=sticker)
    replacement.note = note
    return replacement


def retire(sticker: Sticker) -> None:
    """Take a replaced sticker out of use: scanning it then shows the helpful page."""
    sticker.status = StickerStatus.RETIRED
    sticker.retired_at = clock.now()


def revoke(sticker: Sticker, note: str | None = None) -> None:
    """Stop an abused sticker: its scans are recorded, and reach no member."""
    sticker.status = StickerStatus.REVOKED
    sticker.revoked_at = clock.now()
    sticker.note = note or sticker.note


DIAL_DIGITS = 19  # 2**60 has 19 decimal digits


def dial_digits(code: str) -> str:
    """The code as the digits a phone dials after the voice number's pause (tel:…,,<digits>#).

    Keypads only send digits, so the code's 60 bits are written in decimal, zero-padded to a
    fixed width: unguessable as the code itself, and `code_from_digits` reads them back.
    """
    canonical = normalise(code)
    if canonical is None:
        raise ValueError(f"not a sticker code: {code!r}")
    value = 0
    for char in canonical:
        value = value * len(ALPHABET) + ALPHABET.index(char)
    return f"{value:0{DIAL_DIGITS}d}"


def code_from_digits(digits: str) -> str | None:
    """The sticker code that `dial_digits` turned into `digits`, or None if it cannot be one."""
    digits = digits.strip().rstrip("#")
    if len(digits) != DIAL_DIGITS or not digits.isdigit():
        return None
    value = int(digits)
    if value >= len(ALPHABET) ** LENGTH:
        return None
    chars = []
    for _ in range(LENGTH):
        value, index = divmod(value, len(ALPHABET))
        chars.append(ALPHABET[index])
    return "".join(reversed(chars))
