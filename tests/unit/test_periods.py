"""Periods are parsed in one place: `YYYY-MM` between 2000 and 2100, anything else InvalidPeriod."""
import pytest
from hypothesis import given, settings, strategies as st

from app.periods import InvalidPeriod, checked_period, parse_period


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-03", (2026, 3)), ("2000-01", (2000, 1)), ("2100-12", (2100, 12)),
])
def test_a_month_parses_to_year_and_month(text, expected):
    assert parse_period(text) == expected
    assert checked_period(text) == text


@pytest.mark.parametrize("text", [
    "9999-12", "1999-12", "2101-01", "2026-13", "2026-00", "2026-11\x00", "2026-11\n", "2026-1",
    "26-11", "2026/11", " 2026-11", "2026-11-01", "", None, "٢٠٢٦-١١",  # Arabic-Indic digits
])
def test_anything_else_is_an_invalid_period(text):
    with pytest.raises(InvalidPeriod):
        parse_period(text)


def test_invalid_period_is_a_value_error_with_a_reason():
    with pytest.raises(ValueError, match="months run 01 to 12"):
        parse_period("2026-13")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=12))
def test_parse_period_accepts_only_what_it_can_give_back(text):
    try:
        year, month = parse_period(text)
    except InvalidPeriod:
        return
    assert text == f"{year:04d}-{month:02d}" and 2000 <= year <= 2100
