"""Money is Decimal, rounded to each currency's minor units with banker's rounding (C9)."""
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from app.money import MoneyError, format_amount, minor_units, quantize, to_decimal


@pytest.mark.parametrize(("amount", "commodity", "expected"), [
    ("1.005", "ZAR", "1.00"),       # half to even: down to the even cent
    ("1.015", "ZAR", "1.02"),       # half to even: up to the even cent
    ("1.0051", "ZAR", "1.01"),      # above half always rounds up
    ("-2.345", "LSL", "-2.34"),
    ("1500.5", "XOF", "1500"),      # CFA franc has no minor unit
    ("1501.5", "XOF", "1502"),
    ("99.49", "XOF", "99"),
    ("1.23456", "KWH", "1.235"),    # energy is kept to the watt-hour
    ("0.0005", "KWH", "0.000"),
    ("0.0015", "KL", "0.002"),      # water to the litre
    (7, "ZAR", "7.00"),
    (Decimal("3.1"), "ZAR", "3.10"),
])
def test_quantize_rounds_to_the_currency_minor_units(amount, commodity, expected):
    result = quantize(amount, commodity)
    assert result == Decimal(expected)
    assert str(result) == expected  # the exponent is the currency's, not the input's


def test_minor_units_per_currency():
    assert (minor_units("ZAR"), minor_units("xof"), minor_units("KWH")) == (2, 0, 3)


def test_unknown_currency_is_refused():
    with pytest.raises(MoneyError, match="unknown currency"):
        quantize("1", "ZZZ")


@pytest.mark.parametrize("amount", [1.1, 0.0, float("nan")])
def test_floats_are_refused(amount):
    with pytest.raises(MoneyError, match="float"):
        to_decimal(amount)
    with pytest.raises(MoneyError):
        quantize(amount, "ZAR")


@pytest.mark.parametrize("text", ["abc", "", "12.3.4", "NaN", "Infinity", "-inf"])
def test_non_numbers_are_refused(text):
    with pytest.raises(MoneyError):
        to_decimal(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("1 234.50", "1234.50"), (" 12.5 ", "12.5"), ("1,000.25", "1000.25"), ("-3", "-3"),
])
def test_user_typed_amounts_are_read_exactly(text, expected):
    assert to_decimal(text) == Decimal(expected)


@pytest.mark.parametrize(("amount", "commodity", "expected"), [
    ("1234.5", "ZAR", "R 1\u202f234.50"),
    ("-12", "LSL", "M -12.00"),
    ("1500.4", "XOF", "CFA 1\u202f500"),
    ("42.1254", "KWH", "42.125 kWh"),
    ("1234567.891", "KL", "1\u202f234\u202f567.891 kL"),
    ("0.005", "ZAR", "R 0.00"),
])
def test_format_amount_for_display(amount, commodity, expected):
    assert format_amount(Decimal(amount), commodity) == expected


@given(
    st.decimals(min_value=-10**9, max_value=10**9, allow_nan=False, allow_infinity=False, places=6),
    st.sampled_from(["ZAR", "XOF", "KWH"]),
)
def test_quantize_is_within_half_a_minor_unit_and_stable(amount, commodity):
    result = quantize(amount, commodity)
    step = Decimal(1).scaleb(-minor_units(commodity))
    assert abs(result - amount) <= step / 2
    assert quantize(result, commodity) == result
    assert -result == quantize(-amount, commodity)  # symmetric: a reversal rounds the same way


@pytest.mark.parametrize("text, expected", [
    ("12,50", Decimal("12.50")),
    ("1,234.50", Decimal("1234.50")),
    ("1 234,50", Decimal("1234.50")),
    ("1,234,567", Decimal("1234567")),
])
def test_decimal_comma_and_thousands_separators(text, expected):
    assert to_decimal(text) == expected
