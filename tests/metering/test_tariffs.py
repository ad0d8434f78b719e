"""Tariffs: flat, inclining blocks, time-of-use across midnight in local time, effective dates."""
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.billing.tariffs import Price, TariffError, charge

JHB = ZoneInfo("Africa/Johannesburg")  # UTC+2, no DST
NAIROBI = ZoneInfo("Africa/Nairobi")  # UTC+3


def flat(rate, since=date(2026, 1, 1), standing="0"):
    return Price(since, "flat", {"rate": rate}, Decimal(standing))


BLOCKS = Price(date(2026, 1, 1), "block", {"blocks": [
    {"up_to": "50", "rate": "1.00"}, {"up_to": "100", "rate": "2.00"}, {"up_to": None, "rate": "3.00"}]})


def test_flat_rate_times_quantity():
    start, end = datetime(2026, 3, 1, 10, tzinfo=UTC), datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert charge([flat("2.85")], JHB, start, end, Decimal("1.5"), {}) == Decimal("4.275")


def test_one_reading_crossing_two_block_boundaries_is_priced_per_block():
    used = {date(2026, 3, 1): Decimal("40")}
    start, end = datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 10, 1, tzinfo=UTC)
    # 10 at 1.00 (to 50), 50 at 2.00 (to 100), 10 at 3.00.
    assert charge([BLOCKS], JHB, start, end, Decimal("70"), used) == Decimal("140")
    assert used[date(2026, 3, 1)] == Decimal("110")


def test_blocks_restart_at_the_local_month_start():
    # 21:00 to 23:00 UTC on 31 March is 23:00 to 01:00 in Johannesburg: half falls in April.
    used = {date(2026, 3, 1): Decimal("500")}
    start, end = datetime(2026, 3, 31, 21, tzinfo=UTC), datetime(2026, 3, 31, 23, tzinfo=UTC)
    assert charge([BLOCKS], JHB, start, end, Decimal("20"), used) == Decimal("10") * 3 + Decimal("10") * 1


def test_time_of_use_window_crossing_midnight_in_local_time():
    tou = Price(date(2026, 1, 1), "tou", {"default_rate": "3.00", "windows": [
        {"start": "22:00", "end": "06:00", "rate": "1.00"}]})
    # 18:00-20:00 UTC is 21:00-23:00 in Nairobi: one hour peak, one hour off-peak.
    start, end = datetime(2026, 6, 1, 18, tzinfo=UTC), datetime(2026, 6, 1, 20, tzinfo=UTC)
    assert charge([tou], NAIROBI, start, end, Decimal("2"), {}) == Decimal("4")
    # 01:00-02:00 UTC is 04:00-05:00 local the next morning: still inside the night window.
    morning = charge([tou], NAIROBI, datetime(2026, 6, 2, 1, tzinfo=UTC),
                     datetime(2026, 6, 2, 2, tzinfo=UTC), Decimal("2"), {})
    assert morning == Decimal("2")


def test_new_version_applies_from_its_local_effective_date_mid_month():
    versions = [flat("2.00", date(2026, 1, 1)), flat("3.00", date(2026, 3, 15))]
    # 21:00 14 March to 23:00 14 March UTC = 23:00 14th to 01:00 15th local.
    start, end = datetime(2026, 3, 14, 21, tzinfo=UTC), datetime(2026, 3, 14, 23, tzinfo=UTC)
    assert charge(versions, JHB, start, end, Decimal("2"), {}) == Decimal("5.00")


def test_no_version_in_force_is_an_error():
    with pytest.raises(TariffError, match="no tariff"):
        charge([flat("2", date(2027, 1, 1))], JHB, datetime(2026, 3, 1, tzinfo=UTC),
               datetime(2026, 3, 1, 1, tzinfo=UTC), Decimal(1), {})
