"""The utility pages' faster reads give the figures the direct computation gives (issue 19, speed):
revenue assurance's grouped month read against each meter's month charged on its own (flat with a
mid-month change, time of use, blocks, a negative month, a utility without a tariff)."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from app.analytics.revenue_assurance import PRICED_UTILITIES, revenue_months
from app.billing.tariffs import TariffError, charge, class_prices, price_on, prices_for, unit_class_keys
from app.models import ConsumptionRollup, Estate, Meter, TariffClass, TariffVersion
from app.money import quantize
from app.periods import month_bounds, months_back
from tests import factories


def _expected_per_meter(s, estate, last, count):
    """The expected revenue as it was computed before: every meter's month charged on its own."""
    tz = estate.tz
    meters = s.query(Meter).filter(Meter.estate_id == estate.id, Meter.role == "unit", Meter.unit_id.is_not(None),
                                   Meter.utility.in_(PRICED_UTILITIES)).all()
    keys = unit_class_keys(s, {m.unit_id for m in meters})
    prices = class_prices(s, {estate.id})
    out = {}
    for period in months_back(last, count):
        start, end = month_bounds(period, tz)
        expected, unpriced = Decimal(0), 0
        for meter in meters:
            row = s.query(ConsumptionRollup).filter_by(meter_id=meter.id, grain="month", period_start=start).one_or_none()
            if row is None:
                continue
            versions = prices_for(prices, estate.id, meter.utility, keys.get(meter.unit_id))
            price = price_on(versions, start.astimezone(tz).date())
            if price is None:
                unpriced += 1
                continue
            try:
                amount = charge(versions, tz, start, end, row.consumption, {}) if row.consumption > 0 else Decimal(0)
            except TariffError:
                unpriced += 1
                continue
            expected += amount + price.standing_charge
        out[period] = (quantize(expected, estate.currency), unpriced)
    return out


def test_grouped_expected_revenue_equals_each_meter_charged_on_its_own(committed):
    with committed() as s:
        estate = factories.make_estate(s, name="Tariff Mix", timezone="Africa/Johannesburg")
        tou = TariffClass(estate_id=estate.id, code="TOU", name="Time of use")
        block = TariffClass(estate_id=estate.id, code="BLK", name="Blocks")
        s.add_all([tou, block])
        s.flush()
        s.add_all([
            TariffVersion(estate_id=estate.id, utility="electricity", kind="flat", rates={"rate": "2.10"},
                          standing_charge=Decimal("12.50"), effective_from=date(2026, 1, 1)),
            TariffVersion(estate_id=estate.id, utility="electricity", kind="flat", rates={"rate": "2.35"},
                          standing_charge=Decimal("12.50"), effective_from=date(2026, 4, 16)),  # mid-month change
            TariffVersion(estate_id=estate.id, tariff_class_id=tou.id, utility="electricity", kind="tou",
                          effective_from=date(2026, 1, 1), rates={"default_rate": "3.00", "windows": [
                              {"start": "22:00", "end": "06:00", "rate": "1.00"}]}),
            TariffVersion(estate_id=estate.id, tariff_class_id=block.id, utility="electricity", kind="block",
                          effective_from=date(2026, 1, 1), rates={"blocks": [
                              {"up_to": "50", "rate": "1.50"}, {"up_to": None, "rate": "3.00"}]}),
            TariffVersion(estate_id=estate.id, utility="water", kind="flat", rates={"rate": "18.00"},
                          effective_from=date(2026, 5, 1)),  # water priced from May only
        ])
        tz = estate.tz
        uses = ("0", "17.25", "120.5", "-3.2", "64.125", "250")
        for n, use in enumerate(uses):
            unit = factories.make_unit(s, estate, number=f"T{n}")
            unit.tariff_class_id = (None, tou.id, block.id)[n % 3]
            meters = [factories.make_meter(s, unit), factories.make_meter(s, unit, utility="water")]
            for month in (3, 4, 5):
                start = datetime(2026, month, 1, tzinfo=tz)
                for meter in meters:
                    s.add(ConsumptionRollup(meter_id=meter.id, grain="month", period_start=start,
                                            consumption=Decimal(use) * month, readings=100))
        s.flush()
        reference = _expected_per_meter(s, estate, "2026-05", 3)
        months = revenue_months(s, s.get(Estate, estate.id), "2026-05", 3)
        # The same meters priced and unpriced; the amounts equal to the cent, except that a month whose
        # exact total sits on a half cent may round the other way (a unit's price scaled by the month's
        # use differs from each meter's own pieces in the 28th significant digit): never more than 0.01.
        assert {m.period: m.unpriced_meters for m in months} == {p: u for p, (_e, u) in reference.items()}
        assert all(abs(m.expected - reference[m.period][0]) <= Decimal("0.01") for m in months)
        assert sum(m.expected == reference[m.period][0] for m in months) >= 2
        assert reference["2026-03"][1] == 6 and reference["2026-05"][1] == 0  # water unpriced before May
