"""Money is Decimal, rounded to each currency's minor units with banker's rounding (C9)."""
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

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


# --- typed amounts (forms): parse_amount is strict -------------------------------------

@pytest.mark.parametrize(("text", "commodity", "expected"), [
    ("100", "ZAR", "100"), ("100.5", "ZAR", "100.5"), ("12,50", "LSL", "12.50"),
    (" 7.25 ", "ZAR", "7.25"), ("1500", "XOF", "1500"), ("0.125", "KWH", "0.125"),
])
def test_typed_amounts_are_read_exactly(text, commodity, expected):
    from app.money import parse_amount
    assert parse_amount(text, commodity) == Decimal(expected)


@pytest.mark.parametrize(("text", "commodity", "reason"), [
    ("1e3", "ZAR", "exponents"), ("1E3", "ZAR", "exponents"), ("NaN", "ZAR", "not an amount"),
    ("Infinity", "ZAR", "not an amount"), ("-10", "ZAR", "negative"), ("+10", "ZAR", "signs"),
    ("1,234.50", "ZAR", "thousands"), ("1 234", "ZAR", "spaces"), ("1,234", "ZAR", "at most 2"),
    ("12.345", "ZAR", "at most 2"), ("1500.5", "XOF", "no decimals"), ("1500.", "ZAR", "not an amount"),
    (".5", "ZAR", "not an amount"), ("", "ZAR", "enter an amount"), ("１２", "ZAR", "not an amount"),
    ("0x10", "ZAR", "not an amount"), ("1_000", "ZAR", "not an amount"), ("9" * 40, "ZAR", "not an amount"),
])
def test_typed_amounts_refuse_anything_else_with_a_reason(text, commodity, reason):
    from app.money import parse_amount
    with pytest.raises(MoneyError, match=reason):
        parse_amount(text, commodity)


def test_exponents_are_refused_on_the_wire_too():
    with pytest.raises(MoneyError, match="exponent"):
        to_decimal("1e3")


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="0123456789.,-+eE \t_xnaNIfity", max_size=12),
       st.sampled_from(["ZAR", "XOF", "KWH"]))
def test_typed_amounts_are_digits_with_one_separator_or_refused(text, commodity):
    from app.money import parse_amount
    import re
    places = minor_units(commodity)
    pattern = r"[0-9]+" + (rf"([.,][0-9]{{1,{places}}})?" if places else "")
    try:
        value = parse_amount(text, commodity)
    except MoneyError as error:
        assert not re.fullmatch(pattern, text.strip()), (text, error)
        assert str(error)  # every refusal says why
    else:
        assert re.fullmatch(pattern, text.strip()), text
        assert value == Decimal(text.strip().replace(",", "."))
        assert quantize(value, commodity) == value  # never more decimals than the currency has


@settings(max_examples=60, deadline=None)
@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False),
       st.sampled_from([".", ","]))
def test_every_plain_amount_reads_back(amount, separator):
    from app.money import parse_amount
    assert parse_amount(f"{amount:.2f}".replace(".", separator), "ZAR") == amount
