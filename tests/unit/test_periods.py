"""Periods are parsed in one place: `YYYY-MM` between 2000 and 2100, anything else InvalidPeriod;
local months, their bounds and "months back" are counted in the same place."""
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from app.periods import (
    InvalidPeriod, add_months, checked_period, current_period, first_day, is_period, last_complete_period,
    local_month_bounds, month_bounds, month_start, months_back, next_period, parse_period, period_of,
    previous_period, shift_month, shift_period,
)

NAIROBI = ZoneInfo("Africa/Nairobi")  # UTC+3 all year


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


def test_is_period_says_what_parse_period_would_accept():
    assert is_period("2026-03") and not is_period("2026-11\n") and not is_period("1999-12")


def test_months_step_across_the_year_end():
    assert shift_month(2026, 12, 1) == (2027, 1) and shift_month(2026, 1, -1) == (2025, 12)
    assert shift_month(2026, 3, -27) == (2023, 12)
    assert (previous_period("2026-01"), next_period("2026-12")) == ("2025-12", "2027-01")
    assert shift_period("2026-05", 14) == "2027-07"
    assert months_back("2026-02", 4) == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert months_back("2026-02", 1) == ["2026-02"]
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 1) and add_months(date(2026, 3, 15), -3) == date(2025, 12, 1)
    assert first_day("2026-02") == date(2026, 2, 1)
    with pytest.raises(InvalidPeriod):
        first_day("2026-2")


def test_local_months_follow_the_timezone():
    # 22:00 UTC on 31 January is already 1 February in Nairobi.
    moment = datetime(2026, 1, 31, 22, tzinfo=UTC)
    assert (period_of(moment, "Africa/Nairobi"), period_of(moment, UTC)) == ("2026-02", "2026-01")
    assert current_period(NAIROBI, now=moment) == "2026-02"
    assert last_complete_period("Africa/Nairobi", now=moment) == "2026-01"
    assert month_start(moment, "Africa/Nairobi") == datetime(2026, 1, 31, 21, tzinfo=UTC)
    assert local_month_bounds(2026, 12, NAIROBI) == (datetime(2026, 11, 30, 21, tzinfo=UTC),
                                                     datetime(2026, 12, 31, 21, tzinfo=UTC))
    assert month_bounds("2026-12", "Africa/Nairobi") == local_month_bounds(2026, 12, "Africa/Nairobi")
    # A daylight-saving zone: the month is as long as its local days, not 24 h times the days.
    start, end = month_bounds("2026-03", "Europe/London")
    assert (start, end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, 23, tzinfo=UTC))
    with pytest.raises(InvalidPeriod):
        month_bounds("9999-12", "Africa/Nairobi")
