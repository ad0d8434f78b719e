"""Ledger entries the tariff adds around consumption: monthly standing charges and solar exports.

Both work in either wallet denomination (C1):
- currency estates move money between the pocket and the utility's revenue account;
- units estates move kWh/kL between the pocket and the units-issued account. A standing
  charge is a currency amount, so it is converted at the unit price of the version in force
  (flat rate, or the time-of-use default rate: `tariffs.unit_price`), the same price top-ups
  buy units at. With no unit price in force the charge cannot be valued and is not posted.
- A net-metered meter's export (negative consumption) is credited at the version's solar
  (feed-in) rate; in units estates that value is converted to units at the unit price.
  Without a solar rate the export is recorded in the readings and roll-ups but not credited.

Keys make replays free: `standing:<serial>:<YYYY-MM>` once per unit, utility and local month
(the serial of the first meter in a replacement chain, so a meter swap keeps the key),
and exports share the reading's own key `reading:<serial>:<timestamp>`.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from app.billing.tariffs import Price, price_on, unit_price
from app.labels import label
from app.ledger import Entry
from app.models import Account, Estate, Meter
from app.money import SYMBOLS, UTILITY_UNITS, format_amount, quantize


def _label(meter: Meter) -> str:
    return label("utility", meter.utility)


def in_pocket_terms(estate: Estate, pocket: Account, value: Decimal, price: Price | None) -> Decimal | None:
    """A currency value as the pocket holds it: money, or units at the version's unit price."""
    if estate.wallet_denomination != "units":
        return quantize(value, estate.currency)
    rate = unit_price(price)
    if rate is None:
        return None
    return quantize(value / rate, pocket.commodity)


def standing_charge_entries(estate: Estate, meter: Meter, pocket: Account, counterpart: Account,
                            versions: Sequence[Price], moment: datetime, *,
                            key_serial: str | None = None) -> list[Entry]:
    """The month's standing charge, once per unit, utility and local month, in the pocket's terms.

    `key_serial` is the serial the month is keyed by (the first meter of a replacement chain:
    `consumption.standing_serial`); default the meter's own.
    """
    # A reading stamped exactly on a month boundary closes the month before it (as in roll-ups).
    local = (moment - timedelta(microseconds=1)).astimezone(estate.tz)
    price = _month_price(versions, local.date())
    if price is None or price.standing_charge <= 0:
        return []
    amount = in_pocket_terms(estate, pocket, price.standing_charge, price)
    if not amount or amount <= 0:
        return []
    memo = f"{_label(meter)} standing charge {local:%b %Y}"
    if estate.wallet_denomination == "units":
        memo += f": {format_amount(price.standing_charge, estate.currency)} as {format_amount(amount, pocket.commodity)}"
    return [Entry(estate_id=estate.id, kind="standing_charge",
                  idempotency_key=f"standing:{key_serial or meter.serial}:{local:%Y-%m}",
                  legs=[(pocket.id, -amount), (counterpart.id, amount)], occurred_at=moment, memo=memo)]


def _month_price(versions: Sequence[Price], day: date) -> Price | None:
    """The version whose standing charge a month carries: the one in force on its 1st.

    Priced per month, not per reading, so every span of the month builds the same
    `standing:` entry (one idempotency key, one amount) even when a version starts mid-month;
    a month whose first version starts after the 1st takes that first version.
    """
    first = day.replace(day=1)
    price = price_on(versions, first)
    if price is None:
        price = next((p for p in versions if first <= p.effective_from <= day), None)
    return price


def export_credit(estate: Estate, pocket: Account, versions: Sequence[Price], end: datetime,
                  exported: Decimal) -> tuple[Decimal, Price | None]:
    """What exporting `exported` (a positive quantity) up to `end` credits, in the pocket's terms
    (0 without a solar rate), and the version that set the rate."""
    price = price_on(versions, end.astimezone(estate.tz).date()) if versions else None
    if price is None or not price.solar_rate or exported <= 0:
        return Decimal(0), price
    amount = in_pocket_terms(estate, pocket, exported * price.solar_rate, price)
    return (amount if amount and amount > 0 else Decimal(0)), price


def export_credit_entries(estate: Estate, meter: Meter, pocket: Account, counterpart: Account,
                          versions: Sequence[Price], end: datetime, exported: Decimal) -> list[Entry]:
    """Credit `exported` (a positive quantity) at the solar rate of the version in force at `end`."""
    amount, price = export_credit(estate, pocket, versions, end, exported)
    if not amount:
        return []
    quantity = format_amount(exported, UTILITY_UNITS[meter.utility])
    rate = f"{format_amount(price.solar_rate, estate.currency)}/{SYMBOLS[UTILITY_UNITS[meter.utility]]}"
    return [Entry(estate_id=estate.id, kind="solar_export",
                  idempotency_key=f"reading:{meter.serial}:{end.astimezone(UTC).isoformat()}",
                  legs=[(pocket.id, amount), (counterpart.id, -amount)], occurred_at=end,
                  memo=f"Solar export {quantity} on meter {meter.serial} at {rate}")]
