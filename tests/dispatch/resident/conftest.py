"""Fixtures for the resident pages: the small test community with a sticker on every place."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch.db import db
from dispatch.models import Community, Place, Sticker
from qr import codes
from tests.dispatch.resident.helpers import Resident


@pytest.fixture
def stickers(app: Flask, community: int) -> dict[str, str]:
    """Place code → sticker code for every unit, elevator and area of the test community."""
    return issue_stickers(app, community)


def issue_stickers(app: Flask, community_id: int) -> dict[str, str]:
    with app.app_context():
        community = db.session.get(Community, community_id)
        codes.ensure_stickers(community.places)
        db.session.commit()
        rows = db.session.execute(sa.select(Sticker.code, Place.code)
                                  .join(Place, Place.id == Sticker.place_id))
        return {place: code for code, place in rows}


@pytest.fixture
def resident(client: Any, stickers: dict[str, str]) -> Any:
    """A resident's browser: the test client plus the codes it can scan."""
    return Resident(client, stickers)
