"""Operator finance as 1PWR reports it (U5): ARPU, revenue per period and consumption by tenure.

- An *account* is a unit. A payment is any money a unit paid: credited `payments` rows, and for
  mini-grid estates the Koios payments imported from SparkMeter (those not mirroring a payment of
  ours) and the ThunderCloud payments read from meter heartbeats, and the payments of the UISP CRM
  copy (S1). A UISP client belongs to an estate (its `estate` attribute) but names no unit: it is a
  unit's account when its `userIdent` is the unit's account number, else its unit number, in that
  estate (capitals ignored); payments of other clients, in another currency, or removed in UISP are
  not counted. UISP payments never become `payments` rows here, but a UISP payment whose provider
  payment id is the reference of a credited payment of the estate is the same money recorded twice
  and is left out.
- ARPU of a period = the period's payments / the *cumulative distinct paying accounts*: every
  unit that has paid at least once up to the end of that period (a unit that paid in January
  and not since still counts in June).
- Tenure: months since the account's first payment; consumption by tenure is each month's use
  of the unit meters, grouped by how old the account was that month.
`arpu_rows` and `tenure_rows` are pure functions over plain tuples, so hand-worked examples test them.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Estate, Meter, Unit
from app.models.payments import Payment
from app.models.sources import KoiosPayment, ThunderCloudPayment, UispClient, UispPayment

TENURE_BUCKETS = ((0, 2, "0-2 months"), (3, 5, "3-5 months"), (6, 11, "6-11 months"), (12, None, "12 months or more"))


@dataclass(frozen=True)
class PaymentEvent:
    estate_id: int
    unit_id: int
    day: date  # local to the estate
    amount: Decimal


@dataclass
class ArpuRow:
    estate_id: int
    period: str  # "2026-03" or "2026-Q1"
    revenue: Decimal
    paying: int  # accounts that paid in the period
    cumulative_accounts: int  # accounts that ever paid up to the period's end

    @property
    def arpu(self) -> Decimal | None:
        if not self.cumulative_accounts:
            return None
        return (self.revenue / self.cumulative_accounts).quantize(Decimal("0.01"))


def period_of(day: date, grain: str) -> str:
    """The month ("2026-03") or quarter ("2026-Q1") a local day falls in."""
    if grain == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year:04d}-{day.month:02d}"


def arpu_rows(events: Iterable[PaymentEvent], grain: str = "month", periods: list[str] | None = None) -> list[ArpuRow]:
    """ARPU per estate and period with cumulative distinct paying accounts as the denominator."""
    by_estate: dict[int, dict[str, list[PaymentEvent]]] = defaultdict(lambda: defaultdict(list))
    for event in events:
        by_estate[event.estate_id][period_of(event.day, grain)].append(event)
    rows = []
    for estate_id in sorted(by_estate):
        seen: set[int] = set()
        for period in sorted(set(by_estate[estate_id]) | set(periods or [])):
            paid = by_estate[estate_id].get(period, [])
            seen.update(e.unit_id for e in paid)  # cumulative: every account that has ever paid
            if periods is None or period in periods:
                rows.append(ArpuRow(estate_id, period, sum((e.amount for e in paid), Decimal(0)),
                                    len({e.unit_id for e in paid}), len(seen)))
    return rows


def tenure_months(first_payment: date, month: date) -> int:
    """Whole months from the first payment's month to `month` (0 in the month of the first payment)."""
    return (month.year - first_payment.year) * 12 + month.month - first_payment.month


def tenure_bucket(months: int) -> str:
    for low, high, label in TENURE_BUCKETS:
        if months >= low and (high is None or months <= high):
            return label
    return TENURE_BUCKETS[0][2]


@dataclass
class TenureRow:
    estate_id: int
    bucket: str
    account_months: int  # (unit, month) pairs in the bucket
    consumption: Decimal

    @property
    def average(self) -> Decimal | None:
        return (self.consumption / self.account_months).quantize(Decimal("0.01")) if self.account_months else None


def tenure_rows(first_payments: dict[int, tuple[int, date]], usage: Iterable[tuple[int, date, Decimal]]) -> list[TenureRow]:
    """Use per tenure bucket: first_payments unit -> (estate, first day); usage (unit, month start, quantity).

    Months before an account's first payment are not counted (it was not an account yet).
    """
    totals: dict[tuple[int, str], list] = {}
    for unit_id, month, quantity in usage:
        if unit_id not in first_payments:
            continue
        estate_id, first = first_payments[unit_id]
        months = tenure_months(first, month)
        if months < 0:
            continue
        row = totals.setdefault((estate_id, tenure_bucket(months)), [0, Decimal(0)])
        row[0] += 1
        row[1] += quantity
    order = [label for _, _, label in TENURE_BUCKETS]
    return [TenureRow(estate_id, bucket, n, total) for (estate_id, bucket), (n, total)
            in sorted(totals.items(), key=lambda item: (item[0][0], order.index(item[0][1])))]


# --- reading the sources -----------------------------------------------------------------------


def payment_events(session: Session, estate: Estate) -> list[PaymentEvent]:
    """Every payment a unit of the estate made, from the four sources, by local day."""
    tz = estate.tz
    events = []
    references = set()
    for unit_id, paid_at, amount, reference in session.execute(
            select(Payment.unit_id, Payment.paid_at, Payment.amount, Payment.provider_ref)
            .where(Payment.estate_id == estate.id, Payment.status == "credited", Payment.unit_id.is_not(None),
                   Payment.paid_at.is_not(None))):
        events.append(PaymentEvent(estate.id, unit_id, paid_at.astimezone(tz).date(), Decimal(amount)))
        if reference:
            references.add(reference)
    for unit_id, paid_at, amount in session.execute(
            select(KoiosPayment.unit_id, KoiosPayment.paid_at, KoiosPayment.amount)
            .where(KoiosPayment.estate_id == estate.id, KoiosPayment.unit_id.is_not(None),
                   KoiosPayment.payment_id.is_(None))):  # a mirror of our own push is already a payment
        events.append(PaymentEvent(estate.id, unit_id, paid_at.astimezone(tz).date(), Decimal(amount)))
    for unit_id, detected_at, amount in session.execute(
            select(ThunderCloudPayment.unit_id, ThunderCloudPayment.detected_at, ThunderCloudPayment.amount)
            .join(Unit, Unit.id == ThunderCloudPayment.unit_id).where(Unit.estate_id == estate.id)):
        events.append(PaymentEvent(estate.id, unit_id, detected_at.astimezone(tz).date(), Decimal(amount)))
    events.extend(_uisp_events(session, estate, references))
    return events


def _uisp_events(session: Session, estate: Estate, references: set[str]) -> list[PaymentEvent]:
    """The estate's UISP payments of clients that are a unit's account (see the module docstring)."""
    by_account, by_number = {}, {}
    for unit_id, number, account in session.execute(
            select(Unit.id, Unit.number, Unit.account_number).where(Unit.estate_id == estate.id)):
        by_number.setdefault(number.strip().upper(), unit_id)
        if account:
            by_account[account.strip().upper()] = unit_id
    events = []
    for ident, created_at, amount, provider_id in session.execute(
            select(UispClient.user_ident, UispPayment.created_at, UispPayment.amount, UispPayment.provider_payment_id)
            .join(UispClient, UispClient.uisp_id == UispPayment.client_uisp_id)
            .where(UispClient.estate_id == estate.id, UispClient.user_ident.is_not(None),
                   UispPayment.removed_at.is_(None), UispPayment.currency == estate.currency)):
        key = ident.strip().upper()
        unit_id = by_account.get(key) or by_number.get(key)
        if unit_id is None or (provider_id and provider_id in references):
            continue
        events.append(PaymentEvent(estate.id, unit_id, created_at.astimezone(estate.tz).date(), Decimal(amount)))
    return events


def estate_tenure(session: Session, estate: Estate, events: list[PaymentEvent], utility: str = "electricity") -> list[TenureRow]:
    """The estate's monthly use of a utility's unit meters by account tenure."""
    from app.analytics.losses import _utc
    from app.models import ConsumptionRollup

    first: dict[int, tuple[int, date]] = {}
    for event in events:
        if event.unit_id not in first or event.day < first[event.unit_id][1]:
            first[event.unit_id] = (event.estate_id, event.day)
    # Only accounts (units that have paid) have a tenure: other units' meters are not read.
    meters = dict(session.execute(select(Meter.id, Meter.unit_id).where(
        Meter.estate_id == estate.id, Meter.role == "unit", Meter.utility == utility,
        Meter.unit_id.in_(list(first) or [-1]))).all())
    if not meters:
        return []
    usage: dict[tuple[int, date], Decimal] = defaultdict(Decimal)
    local_month: dict[datetime, date] = {}  # a dozen distinct month starts: each converted once
    for meter_id, start, consumption in session.execute(
            select(ConsumptionRollup.meter_id, ConsumptionRollup.period_start, ConsumptionRollup.consumption)
            .where(ConsumptionRollup.grain == "month", ConsumptionRollup.meter_id.in_(list(meters)))):
        month = local_month.get(start)
        if month is None:
            month = local_month[start] = _utc(start).astimezone(estate.tz).date().replace(day=1)
        usage[(meters[meter_id], month)] += Decimal(consumption)
    return tenure_rows(first, [(unit, month, quantity) for (unit, month), quantity in usage.items()])
