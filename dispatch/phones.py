"""Phone numbers, read one way everywhere: E.164, a number without a country code read as
Chinese. Rosters (community files, the console) take any valid number; a resident's call-back
number must be a mobile unless written with its country code (`resident.phones`)."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

_MOBILE = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
#: Longer text is not a phone number, whatever it holds.
MAX_LENGTH = 32


class PhoneError(ValueError):
    """The text is not a phone number Linli can use."""


def e164(raw: str, *, mobile_unless_international: bool = False) -> str:
    """The E.164 form (+8613800138000) of `raw`, or `PhoneError`.

    `mobile_unless_international`: a number written without + or 00 must be a mobile (a
    call-back to a shared office line rarely reaches the resident).
    """
    text = raw.strip()
    if not text or len(text) > MAX_LENGTH:
        raise PhoneError(raw)
    try:
        number = phonenumbers.parse(text, "CN")
    except NumberParseException:
        raise PhoneError(raw) from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(raw)
    if mobile_unless_international and not text.startswith(("+", "00")) \
            and phonenumbers.number_type(number) not in _MOBILE:
        raise PhoneError(raw)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)
