"""Call-back phones: mainland mobiles in any common spelling, anything else in + form."""

from __future__ import annotations

import pytest

from dispatch.resident import phones


@pytest.mark.parametrize(("raw", "e164"), [
    ("13800138000", "+8613800138000"),
    ("138 0013 8000", "+8613800138000"),
    ("138-0013-8000", "+8613800138000"),
    ("+86 138 0013 8000", "+8613800138000"),
    ("008613800138000", "+8613800138000"),
    ("+86 752 2345678", "+867522345678"),  # a landline, given in international form
    ("+852 6123 4567", "+85261234567"),
    ("+1 650 253 0000", "+16502530000"),
])
def test_valid_numbers_are_stored_in_e164(raw: str, e164: str) -> None:
    assert phones.normalise(raw) == e164


@pytest.mark.parametrize("raw", ["", "12345", "0752-2345678", "1380013800", "23800138000",
                                 "+86 12345", "电话", "1" * 40])
def test_other_text_is_refused(raw: str) -> None:
    with pytest.raises(phones.PhoneError):
        phones.normalise(raw)
    assert phones.try_normalise(raw) is None
