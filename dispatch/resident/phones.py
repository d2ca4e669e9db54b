"""Call-back phone numbers residents leave: validated, kept in E.164, checked against the blocklist.

A number without a country code must be a mainland mobile (13800138000, 138 0013 8000);
anything else needs the + form (+86 752 2345678, +852 …). Mainland landlines without +86
are refused because a call-back to a shared office phone rarely reaches the resident.
"""

from __future__ import annotations

import phonenumbers
import sqlalchemy as sa
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from dispatch.db import db
from dispatch.models import BlockedPhone

_MOBILE = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


class PhoneError(ValueError):
    """The text is not a phone number Linli can call back."""


def normalise(raw: str) -> str:
    """The E.164 form (+8613800138000) of a call-back number, or `PhoneError`."""
    text = raw.strip()
    if not text or len(text) > 32:
        raise PhoneError(raw)
    try:
        number = phonenumbers.parse(text, "CN")
    except NumberParseException:
        raise PhoneError(raw) from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(raw)
    international = text.startswith(("+", "00"))
    if not international and phonenumbers.number_type(number) not in _MOBILE:
        raise PhoneError(raw)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


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
