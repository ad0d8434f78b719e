"""Billing consumption (C1-C6): price the spans of readings and build the ledger entries for them.

The readings pipeline (`app.metering.ingest`) decodes, validates and stores readings, then hands
the spans between them here: each span is priced under the estate's tariffs and posted as a
consumption charge (with the month's standing charge, or a solar export credit) through the
ledger. A late reading that splits a billed span is priced again by `Reprice`: the affected
spans are priced as in-order arrival would have priced them and the difference is posted as
one adjustment keyed `reprice:<serial>:<timestamp of the late reading>`.

Block positions: a span starting at `s` is priced from the consumption rolled up in the local
month of `s` by readings up to `s` (a reading counts in the month its roll-up bucket is in).
Batched, unbatched and re-priced spans all follow this one rule, so the totals agree.

Replaced meters (X6): billing is per unit and utility, not per meter serial. A meter that
replaced another (`Meter.replaced_by_meter_id` on the old one) continues its predecessors'
month: their consumption counts in its block position, and the month's standing charge keeps
the key of the first meter of the chain (`standing:<first serial>:<YYYY-MM>`), so a swap
mid-month charges it once. A meter never replaced keys as before: stored keys stay valid.
Each unit pays its tariff class's versions (`tariffs.prices_for`; a unit without a class, the
estate's default class). Nothing here commits: the pipeline's caller commits the batch.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing import charges, tariffs
from app.labels import label
from app.ledger import Entry, post_many
from app.ledger.accounts import open_wallet, system_account
from app.metering import rollups
from app.models import Account, Estate, Meter, Reading, Unit, Wallet
from app.money import UTILITY_UNITS, format_amount, quantize
from app.sql_arrays import one_of


class BillingBatch(Protocol):
    """What billing reads and adds to in the pipeline's batch."""

    now: datetime
    entries: list[Entry]  # late readings' bills and re-pricings, posted with the batch's bills
    prices: dict[tuple, list]  # tariff versions by (estate id, utility, class key), loaded once
    alerts: list[dict]  # meter alert rows


@dataclass(frozen=True)
class Billed:
    """What `bill` posted: the pockets charged (for credit control) and the new entries counted."""

    pockets: list[int]
    billed: int
    repriced: int


def _no_tariff(batch: BillingBatch, meter: Meter, quantity: Decimal, end: datetime) -> None:
    """Raise the meter alert for consumption no tariff prices."""
    detail = f"{format_amount(quantity, UTILITY_UNITS[meter.utility])} to {end.isoformat()} not billed: no tariff"
    batch.alerts.append({"meter_id": meter.id, "kind": "no_tariff", "detail": detail[:500], "raised_at": batch.now})


@dataclass
class Span:
    """Consumption to bill: the register's rise over (start, end] on one meter.

    Every span, even one with nothing to bill, carries the standing charge of the local month
    its end falls in (once per meter and month), so which months are charged depends on the
    readings a meter sent, never on the order they arrived in.
    """

    meter: Meter
    start: datetime
    end: datetime
    quantity: Decimal
    late: bool = False  # billed on a later reading's key because an earlier one arrived after it


class Reprice:
    """What a late reading changes in money: the spans around it, priced before and after."""

    def __init__(self, meter: Meter, estate: Estate, pocket: Account, counterpart: Account, versions: list,
                 window: tuple[datetime, datetime], position: Decimal, old: Decimal) -> None:
        self.meter, self.estate, self.pocket, self.versions = meter, estate, pocket, versions
        self.counterpart = counterpart  # revenue, or units issued in units estates
        self.window, self.position, self.old = window, position, old
        self.split_end = window[1]  # the reading after the late one: the adjustment's moment
        self.ends: list[datetime] = []  # the window's span ends: each owes its month's standing charge
        self.standing_serial = meter.serial  # the key of its standing charges (the chain's first meter)

    @classmethod
    def before_split(cls, session: Session, batch: BillingBatch, meter: Meter, estate: Estate,
                     before: Reading | None, at: datetime, after: Reading | None) -> Reprice | None:
        """Price the stored spans the late reading will touch, or None when money cannot change."""
        units_mode = estate.wallet_denomination == "units"
        if after is None or meter.unit_id is None or meter.role != "unit" \
                or (units_mode and not meter.bidirectional):
            return None  # units estates bill quantities: a split moves none, unless it moves an export
        # Cached per estate, utility and the unit's tariff class.
        cache_key = (estate.id, meter.utility, tariffs.unit_class_keys(session, {meter.unit_id}).get(meter.unit_id))
        if cache_key not in batch.prices:
            batch.prices[cache_key] = tariffs.unit_prices(session, estate.id, meter.unit_id, meter.utility)
        versions = batch.prices[cache_key]
        if not versions and not units_mode:
            return None
        pocket = _pockets(session, {(meter.unit_id, meter.utility)}).get((meter.unit_id, meter.utility))
        if pocket is None:
            return None
        start = before.taken_at if before is not None else at
        end = after.taken_at
        if any(p.kind == "block" for p in versions):
            # Moving consumption between months, or adding a first span, shifts the block
            # position of every later span in the month of `after`: price those too.
            month_end = _month_start(after.taken_at - _TICK, estate.tz, months=1)
            following = session.scalar(select(Reading.taken_at).where(
                Reading.meter_id == meter.id, Reading.taken_at >= month_end).order_by(Reading.taken_at).limit(1))
            end = following or session.scalar(select(Reading.taken_at).where(
                Reading.meter_id == meter.id).order_by(Reading.taken_at.desc()).limit(1))
            position = _position(session, meter, estate, start)
        else:
            position = Decimal(0)  # flat and time-of-use prices do not depend on it
        plan = cls(meter, estate, pocket, _counterpart(session, estate, meter.utility), versions, (start, end),
                   position, Decimal(0))
        plan.standing_serial = standing_serial(meter, earlier_meters(session, [meter.id]))
        plan.old, plan.split_end = plan._priced(session), after.taken_at
        return plan

    def _value(self, start: datetime, end: datetime, quantity: Decimal, position: Decimal) -> Decimal | None:
        """What one span takes from the pocket, in its terms: the bill, or minus an export's
        credit (as `bill` posts them); None when no tariff prices the consumption."""
        if quantity < 0:
            return -charges.export_credit(self.estate, self.pocket, self.versions, end, -quantity)[0]
        if self.estate.wallet_denomination == "units":
            return quantize(quantity, self.pocket.commodity)
        return price_span(self.versions, self.estate, start, end, quantity, position)

    def _priced(self, session: Session) -> Decimal:
        """The stored spans in the window priced as in-order arrival prices them."""
        rows = session.execute(select(Reading.taken_at, Reading.consumption).where(
            Reading.meter_id == self.meter.id, Reading.taken_at >= self.window[0],
            Reading.taken_at <= self.window[1]).order_by(Reading.taken_at)).all()
        tz, total = self.estate.tz, Decimal(0)
        positions: dict[date, Decimal] = defaultdict(Decimal)
        self.ends = []
        if rows:
            positions[_month_of_span(rows[0][0], tz)] = self.position
        for (start, _), (end, consumption) in zip(rows, rows[1:]):
            self.ends.append(end)
            if consumption:
                amount = self._value(start, end, consumption, positions[_month_of_span(start, tz)])
                total += amount or Decimal(0)
            positions[_month_of_reading(end, tz)] += consumption or Decimal(0)
        return total

    def post_difference(self, session: Session, batch: BillingBatch, at: datetime, first_span: Span | None) -> None:
        """Queue what brings the billed total to the in-order total: a bill for a span nobody
        billed (the meter's first reading got an earlier one) and an adjustment for the rest."""
        difference = self._priced(session) - self.old
        meter, estate, counterpart = self.meter, self.estate, self.counterpart
        if first_span is not None:
            # In-order arrival bills this span at the month position of its start: the window's.
            amount = self._value(first_span.start, first_span.end, first_span.quantity, self.position)
            if amount is None:
                _no_tariff(batch, meter, first_span.quantity, first_span.end)
            elif first_span.quantity < 0:
                batch.entries += charges.export_credit_entries(estate, meter, self.pocket, counterpart, self.versions,
                                                               first_span.end, -first_span.quantity)
                difference -= amount
            elif amount:
                batch.entries.append(_consumption_entry(estate, meter, self.pocket, counterpart, first_span, amount))
                difference -= amount
        # Keyed per meter and month: the months already charged replay and post nothing.
        for end in self.ends:
            batch.entries += _standing_charge(estate, meter, self.pocket, counterpart, self.versions, end,
                                              self.standing_serial)
        if difference == 0:
            return
        moment = at.astimezone(UTC)
        batch.entries.append(Entry(
            estate_id=estate.id, kind="adjustment", idempotency_key=f"reprice:{meter.serial}:{moment.isoformat()}",
            legs=[(self.pocket.id, -difference), (counterpart.id, difference)], occurred_at=self.split_end,
            memo=f"{label('utility', meter.utility)} re-priced on meter {meter.serial}: "
                 f"late reading at {moment:%Y-%m-%d %H:%M} UTC",
        ))


_TICK = timedelta(microseconds=1)


def _month_start(moment: datetime, tz, months: int = 0) -> datetime:
    """The start (an instant) of the local month `moment` falls in, `months` later."""
    local = moment.astimezone(tz)
    year, month = divmod(local.year * 12 + local.month - 1 + months, 12)
    return datetime(year, month + 1, 1, tzinfo=tz).astimezone(UTC)


def _month_of_span(start: datetime, tz) -> date:
    """The local month a span starting at `start` takes its block position from."""
    return start.astimezone(tz).date().replace(day=1)


def _month_of_reading(moment: datetime, tz) -> date:
    """The local month a reading's consumption is rolled up in (a boundary closes the month before)."""
    return (moment - _TICK).astimezone(tz).date().replace(day=1)


def _position(session: Session, meter: Meter, estate: Estate, start: datetime) -> Decimal:
    """Consumption of the readings in the local month of `start`, up to `start` (with the
    meters this one replaced: the unit's month continues across a swap)."""
    since = _month_start(start, estate.tz)
    ids = [meter.id, *(m for m, _ in earlier_meters(session, [meter.id]).get(meter.id, []))]
    return session.scalar(select(func.coalesce(func.sum(Reading.consumption), 0)).where(
        Reading.meter_id.in_(ids), Reading.taken_at > since, Reading.taken_at <= start)) or Decimal(0)


def earlier_meters(session: Session, meter_ids) -> dict[int, list[tuple[int, str]]]:
    """The meters each of these replaced, directly or not, as (id, serial), oldest first.

    One query per step back along the chains (none found: one query in all); meters that
    replaced nothing are absent from the answer.
    """
    chains: dict[int, list[tuple[int, str]]] = {}
    frontier = {meter_id: meter_id for meter_id in set(meter_ids)}  # meter looked behind -> whose chain
    seen: set[int] = set(frontier)
    while frontier:
        rows = session.execute(select(Meter.id, Meter.serial, Meter.replaced_by_meter_id).where(
            one_of(session, Meter.replaced_by_meter_id, set(frontier)))).all()
        step = {}
        for meter_id, serial, replaced_by in rows:
            if meter_id in seen:
                continue  # a cycle (hand-edited data) must not loop forever
            seen.add(meter_id)
            owner = frontier[replaced_by]
            chains.setdefault(owner, []).insert(0, (meter_id, serial))
            step[meter_id] = owner
        frontier = step
    return chains


def standing_serial(meter: Meter, chains: dict[int, list[tuple[int, str]]]) -> str:
    """The serial a meter's standing charges are keyed by: the first meter of its chain."""
    chain = chains.get(meter.id)
    return chain[0][1] if chain else meter.serial


def price_span(versions: list, estate: Estate, start: datetime, end: datetime, quantity: Decimal,
                position: Decimal) -> Decimal | None:
    """A span's charge rounded once, from the block position given; None when no tariff covers it."""
    tz = estate.tz
    if not versions:
        return None
    first_day = start.astimezone(tz).date()
    price = tariffs.price_on(versions, first_day)
    if price is None:
        return None
    if price.kind == "flat" and price is tariffs.price_on(versions, end.astimezone(tz).date()):
        # One flat rate over the whole span: what charge() adds up piece by piece, in one step.
        return quantize(quantity * Decimal(price.rates["rate"]), estate.currency)
    return quantize(tariffs.charge(versions, tz, start, end, quantity, {_month_of_span(start, tz): position}),
                    estate.currency)


def bill(session: Session, batch: BillingBatch, spans: list[Span], estates: dict[int, Estate]) -> Billed:
    """Price each span and post the charges (and the batch's queued entries) through the ledger."""
    spans = [s for s in spans if s.meter.unit_id is not None and s.meter.role == "unit"]
    if not spans and not batch.entries:
        return Billed([], 0, 0)
    pockets = _pockets(session, {(s.meter.unit_id, s.meter.utility) for s in spans}) if spans else {}
    prices = tariffs.class_prices(session, {s.meter.estate_id for s in spans}) if spans else {}
    classes = tariffs.unit_class_keys(session, {s.meter.unit_id for s in spans})

    def versions_of(meter: Meter) -> list:
        """The versions the meter's unit pays (its tariff class's)."""
        return tariffs.prices_for(prices, meter.estate_id, meter.utility, classes.get(meter.unit_id))

    blocks = [s for s in spans if any(p.kind == "block" for p in versions_of(s.meter))]
    chains = earlier_meters(session, {s.meter.id for s in spans})
    used = _used_in_month(session, blocks, estates, chains)
    counterparts: dict[tuple[int, str], Account] = {}
    zones = {estate_id: estate.tz for estate_id, estate in estates.items()}
    entries: list[Entry] = []
    for span in spans:
        meter, estate = span.meter, estates[span.meter.estate_id]
        tz = zones[estate.id]
        pocket = pockets.get((meter.unit_id, meter.utility))
        if pocket is None:
            continue
        units_mode = estate.wallet_denomination == "units"
        if (estate.id, meter.utility) not in counterparts:
            counterparts[(estate.id, meter.utility)] = _counterpart(session, estate, meter.utility)
        counterpart = counterparts[(estate.id, meter.utility)]
        versions = versions_of(meter)
        entries += _standing_charge(estate, meter, pocket, counterpart, versions, span.end,
                                    standing_serial(meter, chains))
        if span.quantity < 0:  # a net-metered export: credited at the solar rate (C5)
            used[meter.id][_month_of_reading(span.end, tz)] += span.quantity  # as roll-ups count it
            entries += charges.export_credit_entries(estate, meter, pocket, counterpart, versions,
                                                     span.end, -span.quantity)
            continue
        if span.quantity == 0:
            continue
        if units_mode:
            amount = quantize(span.quantity, pocket.commodity)
        else:
            positions = used[meter.id]
            amount = price_span(versions, estate, span.start, span.end, span.quantity,
                                positions[_month_of_span(span.start, tz)])
            # The next span's position counts this one where roll-ups count it.
            positions[_month_of_reading(span.end, tz)] += span.quantity
            if amount is None:
                _no_tariff(batch, meter, span.quantity, span.end)
                continue
        if amount == 0:
            continue
        entries.append(_consumption_entry(estate, meter, pocket, counterpart, span, amount))
    entries = _without_repeats(entries + batch.entries)
    posted = post_many(session, entries)
    billed = sum(1 for e, p in zip(entries, posted, strict=True) if p.created and e.kind == "consumption")
    repriced = sum(1 for e, p in zip(entries, posted, strict=True) if p.created and e.kind == "adjustment")
    # Credit control only looks at pockets in estates that switched it on.
    charged = {pockets[(s.meter.unit_id, s.meter.utility)].id for s in spans
               if (s.meter.unit_id, s.meter.utility) in pockets
               and estates[s.meter.estate_id].feature_enabled("credit_control")}
    return Billed(sorted(charged | {e.legs[0][0] for e in batch.entries
                                    if estates[e.estate_id].feature_enabled("credit_control")}), billed, repriced)


def _counterpart(session: Session, estate: Estate, utility: str) -> Account:
    """Where a pocket's charges go: revenue, or the units-issued account in units estates."""
    if estate.wallet_denomination == "units":
        return system_account(session, estate, "units_issued", utility, utility=utility,
                              commodity=UTILITY_UNITS[utility])
    return system_account(session, estate, "revenue", utility, utility=utility)


def _without_repeats(entries: list[Entry]) -> list[Entry]:
    """Drop exact repeats (a meter's standing charge for the month comes with each of its spans)."""
    # The ledger would replay them anyway, after validating each: a third of a batch's entries.
    seen: dict[str, tuple] = {}
    kept = []
    for entry in entries:
        legs = tuple(entry.legs)
        if seen.get(entry.idempotency_key) == legs:
            continue
        seen.setdefault(entry.idempotency_key, legs)
        kept.append(entry)
    return kept


def _consumption_entry(estate: Estate, meter: Meter, pocket: Account, counterpart: Account, span: Span,
                       amount: Decimal) -> Entry:
    """The bill for one span, keyed by the reading that closed it."""
    quantity_text = format_amount(span.quantity, UTILITY_UNITS[meter.utility])
    return Entry(
        estate_id=estate.id, kind="consumption",
        idempotency_key=f"reading:{meter.serial}:{span.end.astimezone(UTC).isoformat()}",
        legs=[(pocket.id, -amount), (counterpart.id, amount)], occurred_at=span.end,
        memo=f"{label('utility', meter.utility)} {quantity_text} on meter {meter.serial}",
    )


def _standing_charge(estate: Estate, meter: Meter, pocket: Account, revenue: Account,
                     versions: list, moment: datetime, key_serial: str) -> list[Entry]:
    """The month's standing charge, once per unit, utility and local month, in money or in units."""
    return charges.standing_charge_entries(estate, meter, pocket, revenue, versions, moment, key_serial=key_serial)


def _pockets(session: Session, wanted: set[tuple[int, str]]) -> dict[tuple[int, str], Account]:
    """The pockets by (unit id, utility) of the meters billed; missing ones are opened (on demand)."""
    unit_ids = {unit_id for unit_id, _ in wanted}
    rows = session.execute(select(Wallet.unit_id, Account).join(Account, Account.wallet_id == Wallet.id)
                           .where(one_of(session, Wallet.unit_id, unit_ids))).all()
    found = {(unit_id, account.utility): account for unit_id, account in rows}
    for unit_id in sorted({u for u, _ in wanted - set(found)}):
        missing = tuple(utility for u, utility in sorted(wanted - set(found)) if u == unit_id)
        wallet = open_wallet(session, session.get(Unit, unit_id), missing)
        found.update({(unit_id, pocket.utility): pocket for pocket in wallet.pockets})
    return found


def _used_in_month(session: Session, spans: list[Span], estates: dict[int, Estate],
                   chains: dict[int, list[tuple[int, str]]]) -> dict[int, dict[date, Decimal]]:
    """Consumption already rolled up per meter and local month, for inclining blocks; a meter
    that replaced others counts theirs too (the unit's month carries across the swap)."""
    wanted: set[tuple[int, datetime]] = set()
    counted_for: dict[int, set[int]] = defaultdict(set)  # meter whose roll-up -> meters it counts for
    estate_of: dict[int, int] = {}
    for span in spans:
        tz = estates[span.meter.estate_id].tz
        ids = [span.meter.id, *(m for m, _ in chains.get(span.meter.id, []))]
        for meter_id in ids:
            counted_for[meter_id].add(span.meter.id)
            estate_of[meter_id] = span.meter.estate_id
            for month in (_month_of_span(span.start, tz), _month_of_reading(span.end, tz)):
                wanted.add((meter_id, datetime(month.year, month.month, 1, tzinfo=tz).astimezone(UTC)))
    stored = rollups.month_totals(session, wanted)
    used: dict[int, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for (meter_id, start), total in stored.items():
        month = start.astimezone(estates[estate_of[meter_id]].tz).date()
        for billed in counted_for[meter_id]:
            used[billed][month] += total
    return used
