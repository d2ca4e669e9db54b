"""Call-back phone numbers residents leave: validated, kept in E.164, checked against the blocklist.

A number without a country code must be a mainland mobile (13800138000, 138 0013 8000);
anything else needs the + form (+86 752 2345678, +852 …). Mainland landlines without +86
are refused because a call-back to a shared office phone rarely reaches the resident.
"""

from __future__ import annotations

import sqlalchemy as sa

from dispatch.db import db
from dispatch.models import BlockedPhone
from dispatch.phones import PhoneError, e164

__all__ = ["PhoneError", "is_blocked", "normalise", "try_normalise"]


def normalise(raw: str) -> str:
    """The E.164 form (+8613800138000) of a call-back number, or `PhoneError`."""
    return e164(raw, mobile_unless_international=True)


def try_normalise(raw: str) -> str | None:
    """`normalise`, or None for text that is not a number."""
    try:
        return normalise(raw)
    except PhoneError:
        return None


def is_blocked(e164: str) -> bool:
    """Whether staff have blocked this number (see `dispatch.staff.blocklist`)."""
    found = db.session.scalar(sa.select(BlockedPhone.id).where(BlockedPhone.phone == e164))
    return found is not None
