"""Phone numbers read to E.164 in the country they were written in; whole numbers only."""
import pytest
from hypothesis import given, settings, strategies as st

from app.phones import InvalidPhone, to_e164, try_e164


@pytest.mark.parametrize(("raw", "country", "expected"), [
    ("082 123 4567", "ZA", "+27821234567"),         # national, with the trunk 0
    ("+27 82 123 4567", "ZA", "+27821234567"),
    ("0027821234567", "ZA", "+27821234567"),        # the international prefix
    ("27821234567", "ZA", "+27821234567"),          # as M-PESA prints it: no "+"
    ("(082) 123-4567", "ZA", "+27821234567"),
    ("5775 5403", "LS", "+26657755403"),            # Lesotho: 8 digits, no trunk prefix
    ("26657755403", "LS", "+26657755403"),
    ("+266 5775-5403", "ZA", "+26657755403"),       # a Lesotho phone in a South African estate
    ("26657755403", "ZA", "+26657755403"),          # ... even without the "+"
    ("01 97 12 34 56", "BJ", "+2290197123456"),     # Benin: 10 digits since November 2024
    ("97 12 34 56", "BJ", "+2290197123456"),        # an old 8-digit number is the same phone
    ("+229 97 12 34 56", "LS", "+2290197123456"),
    ("0712 345 678", "KE", "+254712345678"),
    ("081 123 4567", "NA", "+264811234567"),
    ("71 234 567", "BW", "+26771234567"),
    ("77 123 456", "SN", None),  # 8 digits: too short for Senegal
    ("+44 7911 123456", "LS", "+447911123456"),     # international form: any country
    ("26657755403", None, "+26657755403"),          # no country needed when it names its own
])
def test_numbers_are_read_to_e164(raw, country, expected):
    assert try_e164(raw, country) == expected


@pytest.mark.parametrize(("raw", "country"), [
    ("", "ZA"), ("call me", "ZA"), ("123", "LS"), ("5775 540", "LS"),
    ("082 123 45678", "ZA"), ("+266 5775 540", "ZA"), ("57755403", None),
    ("57755403", "FR"),  # a national number of a country without a plan here
    ("５７７５５４０３", "LS"),  # full-width digits are not dialable
    ("+0123456789", None),
])
def test_what_is_not_a_number_of_the_country_is_refused(raw, country):
    with pytest.raises(InvalidPhone):
        to_e164(raw, country)
    assert try_e164(raw, country) is None


def test_the_same_local_digits_are_different_numbers_in_lesotho_and_benin():
    assert to_e164("5775 5403", "LS") != to_e164("5775 5403", "BJ")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["ZA", "LS", "BJ", "KE", "TZ", "NA", "BW", "XX", None]))
def test_any_text_gives_e164_or_invalid_phone(raw, country):
    result = try_e164(raw, country)
    assert result is None or (result.startswith("+") and result[1:].isdigit()
                              and 8 <= len(result) - 1 <= 15)
    if result is not None:
        assert to_e164(result, country) == result  # normalising twice changes nothing
