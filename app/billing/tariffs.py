"""Tariffs (C5): what a span of consumption costs under an estate's effective-dated tariff versions.

Consumption between two readings is taken to flow evenly over the span. The span is cut at
every point where the price can change (a version's effective date, a local month start for
inclining blocks, a time-of-use window edge, all in the estate's timezone) and each piece is
priced on its own. Amounts come back unrounded; the caller quantises once per charge.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.billing import BillingError
from app.models.estate import Unit
from app.models.metering import TARIFF_KINDS, TariffVersion
from app.models.tariff import TariffClass
from app.sql_arrays import one_of


class TariffError(BillingError):
    """A tariff version that cannot price consumption (bad kind, rates or windows)."""


@dataclass(frozen=True)
class Price:
    """One tariff version in plain values (what `charge()` needs; no database)."""

    effective_from: date
    kind: str
    rates: dict
    standing_charge: Decimal = Decimal(0)
    solar_rate: Decimal | None = None  # feed-in: credited per unit a net-metered meter exports

    @classmethod
    def of(cls, version: TariffVersion) -> Price:
        return cls(version.effective_from, version.kind, dict(version.rates or {}),
                   Decimal(version.standing_charge or 0),
                   Decimal(version.solar_rate) if version.solar_rate is not None else None)


def unit_price(price: Price | None) -> Decimal | None:
    """What one kWh/kL is worth under a version in units estates: flat rate or TOU default rate.

    Inclining blocks have no single unit price (units estates cannot sell on them: C1).
    """
    if price is None:
        return None
    rate = price.rates.get("rate") if price.kind == "flat" else (
        price.rates.get("default_rate") if price.kind == "tou" else None)
    return Decimal(str(rate)) if rate not in (None, "") and Decimal(str(rate)) > 0 else None


# --- tariff classes --------------------------------------------------------------------------
# A unit is billed under its class's versions. Class keys: None for the estate's default class
# (a NULL class on a unit or version, or the class marked is_default), else the class id.
# A class follows the default class's prices until its own first version for a utility starts.

ClassKey = int | None


def follow_default(default: Sequence, own: Sequence) -> list:
    """A class's versions, oldest first: the default class's until its own first one starts."""
    if not own:
        return list(default)
    first = own[0].effective_from
    return [v for v in default if v.effective_from < first] + list(own)


def class_prices(session: Session, estate_ids: set[int]) -> dict[tuple[int, str, ClassKey], list[Price]]:
    """Every tariff version of the estates, by (estate id, utility, class key), oldest first."""
    rows = session.execute(select(TariffVersion, TariffClass.is_default)
                           .outerjoin(TariffClass, TariffClass.id == TariffVersion.tariff_class_id)
                           .where(TariffVersion.estate_id.in_(estate_ids))
                           .order_by(TariffVersion.effective_from))
    prices: dict[tuple[int, str, ClassKey], list[Price]] = {}
    for row, is_default in rows:
        key = None if row.tariff_class_id is None or is_default else row.tariff_class_id
        prices.setdefault((row.estate_id, row.utility, key), []).append(Price.of(row))
    return prices


def prices_for(prices: dict[tuple[int, str, ClassKey], list[Price]], estate_id: int, utility: str,
               class_key: ClassKey) -> list[Price]:
    """The versions a unit of this class pays for a utility (see `follow_default`)."""
    default = prices.get((estate_id, utility, None), [])
    return follow_default(default, prices.get((estate_id, utility, class_key), [])) if class_key else default


def load_prices(session: Session, estate_ids: set[int]) -> dict[tuple[int, str], list[Price]]:
    """The estates' default-class versions, by (estate id, utility), oldest first.

    What a unit of the default class pays; a unit's own prices come from `unit_prices` (or
    `class_prices` + `unit_class_keys` + `prices_for` for many units).
    """
    return {(estate_id, utility): versions
            for (estate_id, utility, key), versions in class_prices(session, estate_ids).items() if key is None}


def unit_class_keys(session: Session, unit_ids: set[int]) -> dict[int, ClassKey]:
    """Each unit's class key (None: the default class)."""
    if not unit_ids:
        return {}
    rows = session.execute(select(Unit.id, Unit.tariff_class_id, TariffClass.is_default)
                           .outerjoin(TariffClass, TariffClass.id == Unit.tariff_class_id)
                           .where(one_of(session, Unit.id, unit_ids)))  # one array parameter, not hundreds
    return {unit_id: (None if class_id is None or is_default else class_id) for unit_id, class_id, is_default in rows}


def class_versions(session: Session, estate_id: int, utility: str, class_key: ClassKey) -> list[TariffVersion]:
    """The version rows a class pays for a utility, oldest first (see `follow_default`)."""
    rows = session.execute(select(TariffVersion, TariffClass.is_default)
                           .outerjoin(TariffClass, TariffClass.id == TariffVersion.tariff_class_id)
                           .where(TariffVersion.estate_id == estate_id, TariffVersion.utility == utility)
                           .order_by(TariffVersion.effective_from)).all()
    default = [v for v, is_default in rows if v.tariff_class_id is None or is_default]
    if class_key is None:
        return default
    return follow_default(default, [v for v, _ in rows if v.tariff_class_id == class_key])


def version_on(session: Session, estate_id: int, utility: str, class_key: ClassKey, day: date) -> TariffVersion | None:
    """The version row a class pays on a local date, or None."""
    found = None
    for version in class_versions(session, estate_id, utility, class_key):
        if version.effective_from <= day:
            found = version
    return found


def unit_prices(session: Session, estate_id: int, unit_id: int, utility: str) -> list[Price]:
    """The versions one unit pays for a utility, under its class."""
    key = unit_class_keys(session, {unit_id}).get(unit_id)
    return prices_for(class_prices(session, {estate_id}), estate_id, utility, key)


def price_on(prices: Sequence[Price], day: date) -> Price | None:
    """The version in force on a local date (the latest that started on or before it)."""
    index = bisect_right([p.effective_from for p in prices], day)
    return prices[index - 1] if index else None


def month_start(moment: datetime, tz: ZoneInfo) -> date:
    """The first local day of the month a moment falls in."""
    return moment.astimezone(tz).date().replace(day=1)


def charge(prices: Sequence[Price], tz: ZoneInfo, start: datetime, end: datetime,
           quantity: Decimal, used_in_month: dict[date, Decimal]) -> Decimal:
    """Price `quantity` consumed evenly over (start, end]; `used_in_month` feeds and gains blocks."""
    amount = Decimal(0)
    for price, piece_start, piece_end, share in _priced_pieces(prices, tz, start, end, quantity):
        local = piece_start.astimezone(tz)
        amount += _price_piece(price, local, piece_end.astimezone(tz), share,
                               used_in_month, local.date().replace(day=1))
    return amount


def _priced_pieces(prices: Sequence[Price], tz: ZoneInfo, start: datetime, end: datetime,
                   quantity: Decimal) -> Iterator[tuple[Price, datetime, datetime, Decimal]]:
    """Split (start, end] where the price can change: (version, piece start, piece end, share)."""
    if end <= start:
        raise TariffError("a consumption span must end after it starts")
    pieces = _pieces(prices, tz, start, end)
    total_seconds = Decimal((end - start).total_seconds())
    left = quantity
    for index, (piece_start, piece_end) in enumerate(pieces):
        if index == len(pieces) - 1:
            share = left  # the last piece takes the remainder: shares always sum to quantity
        else:
            share = quantity * Decimal((piece_end - piece_start).total_seconds()) / total_seconds
        left -= share
        local_day = piece_start.astimezone(tz).date()
        price = price_on(prices, local_day)
        if price is None:
            raise TariffError(f"no tariff in force on {local_day}")
        yield price, piece_start, piece_end, share


def _price_piece(price: Price, local_start: datetime, local_end: datetime, quantity: Decimal,
                 used_in_month: dict[date, Decimal], month: date) -> Decimal:
    if price.kind == "flat":
        return quantity * Decimal(price.rates["rate"])
    if price.kind == "tou":
        middle = local_start + (local_end - local_start) / 2
        return quantity * _tou_rate(price, middle.time())
    if price.kind == "block":
        used = used_in_month.get(month, Decimal(0))
        used_in_month[month] = used + quantity
        return _block_amount(price, used, quantity)
    raise TariffError(f"tariff kind must be one of {', '.join(TARIFF_KINDS)}, not {price.kind!r}")


def _block_amount(price: Price, used: Decimal, quantity: Decimal) -> Decimal:
    """Fill the month's blocks from `used` onwards with `quantity`; a span may cross blocks."""
    return sum((room * rate for _, room, rate in _block_split(price, used, quantity)), Decimal(0))


def _tou_rate(price: Price, moment: time) -> Decimal:
    window = _tou_window(price, moment)
    return Decimal(window["rate"]) if window is not None else Decimal(price.rates["default_rate"])


def _pieces(prices: Sequence[Price], tz: ZoneInfo, start: datetime,
            end: datetime) -> list[tuple[datetime, datetime]]:
    """Cut (start, end] wherever the price may change."""
    cuts: set[datetime] = set()
    first_day, last_day = start.astimezone(tz).date(), end.astimezone(tz).date()
    edges: set[time] = {time(0)}
    for price in prices:
        for window in price.rates.get("windows", []) if price.kind == "tou" else []:
            edges.update({time.fromisoformat(window["start"]), time.fromisoformat(window["end"])})
    day = first_day
    while day <= last_day:
        for edge in edges:
            # Local wall time to UTC; zoneinfo resolves DST gaps and folds consistently.
            moment = datetime.combine(day, edge, tz)
            if start < moment < end:
                cuts.add(moment)
        day += timedelta(days=1)
    bounds = [start, *sorted(cuts), end]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@dataclass(frozen=True)
class ChargeLine:
    """One priced piece of a span: its times, tariff version, band or window, quantity and rate."""

    start: datetime
    end: datetime
    effective_from: date
    kind: str
    band: str  # "flat rate", "block 2: 50-100", "window 22:00-06:00", "outside the windows"
    quantity: Decimal
    rate: Decimal

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.rate


def charge_lines(prices: Sequence[Price], tz: ZoneInfo, start: datetime, end: datetime,
                 quantity: Decimal, used_in_month: dict[date, Decimal]) -> list[ChargeLine]:
    """Explain `charge()`: the same pieces and shares, each with the band or window that priced it."""
    lines: list[ChargeLine] = []
    for price, piece_start, piece_end, share in _priced_pieces(prices, tz, start, end, quantity):
        local = piece_start.astimezone(tz)

        def line(band: str, amount_of: Decimal, rate: Decimal) -> ChargeLine:
            return ChargeLine(piece_start, piece_end, price.effective_from, price.kind, band, amount_of, rate)

        if price.kind == "flat":
            lines.append(line("flat rate", share, Decimal(price.rates["rate"])))
        elif price.kind == "tou":
            middle = (local + (piece_end.astimezone(tz) - local) / 2).time()
            window = _tou_window(price, middle)
            if window is None:
                lines.append(line("outside the windows", share, Decimal(price.rates["default_rate"])))
            else:
                lines.append(line(f"window {window['start']}-{window['end']}", share, Decimal(window["rate"])))
        elif price.kind == "block":
            month = local.date().replace(day=1)
            used = used_in_month.get(month, Decimal(0))
            used_in_month[month] = used + share
            for band, room, rate in _block_split(price, used, share):
                lines.append(line(band, room, rate))
        else:
            raise TariffError(f"tariff kind must be one of {', '.join(TARIFF_KINDS)}, not {price.kind!r}")
    return lines


def _tou_window(price: Price, moment: time) -> dict | None:
    """The time-of-use window a local time of day falls in (windows may cross midnight), or None."""
    for window in price.rates.get("windows", []):
        start, end = time.fromisoformat(window["start"]), time.fromisoformat(window["end"])
        if start <= moment < end if start < end else (moment >= start or moment < end):
            return window
    return None


def _block_split(price: Price, used: Decimal, quantity: Decimal) -> list[tuple[str, Decimal, Decimal]]:
    """Fill the month's blocks from `used` with `quantity`: (band, quantity, rate) per block touched."""
    parts, position, remaining, floor = [], used, quantity, Decimal(0)
    for number, block in enumerate(price.rates["blocks"], start=1):
        ceiling = Decimal(block["up_to"]) if block.get("up_to") is not None else None
        if ceiling is not None and position >= ceiling:
            floor = ceiling
            continue
        room = remaining if ceiling is None else min(remaining, ceiling - max(position, floor))
        upper = f"{ceiling.normalize():f}" if ceiling is not None else "up"
        parts.append((f"block {number}: {floor.normalize():f}-{upper}", room, Decimal(block["rate"])))
        remaining -= room
        position += room
        if remaining <= 0:
            return parts
        floor = ceiling
    raise TariffError("the last block must be open-ended (up_to null)")
