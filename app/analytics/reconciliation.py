"""Revenue reconciliation (O2): billed vs collected per utility and month over a set of units.

Both sides are read from the units' wallet pockets, so they are in the pocket's commodity:
money in currency estates, kWh/kL in units estates (C1).
- billed: consumption and standing charges taken from the pockets;
- collected: top-ups paid into the pockets.
A reversal counts as the kind of the transaction it reverses, in its own month, so a
reversed charge lowers the billed figure of the month the reversal was posted in.
The difference is collected minus billed: below zero, the units used more than was paid in
(wallets drawn down or going into arrears); a shortfall of more than FLAG_SHARE of what was
billed is flagged. A surplus is normal for prepaid wallets (credit bought ahead) and is not.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from app.ledger.pocket_flows import fold
from app.models import Account, Estate, Unit, Wallet
from app.models.reporting import PocketFlowTotal
from app.periods import months_back, period_of

BILLED_KINDS = ("consumption", "standing_charge")
COLLECTED_KINDS = ("topup",)
MAX_MONTHS = 36
# A shortfall bigger than this share of what was billed is flagged for a closer look.
FLAG_SHARE = Decimal("0.10")
COMMODITY_LABELS = {"KWH": "kWh", "KL": "kL"}


def pocket_flows(session: Session, unit_ids: Select, period_filter,
                 estate_ids: list[int] | None = None) -> list[tuple]:
    """Billed and collected sums of these units' pockets as (period, utility, commodity, side, amount).

    Read from the pocket roll-ups (brought up to date first); `period_filter` is a SQL
    condition on PocketFlowTotal.period (and may use Estate); `estate_ids` are the units'
    estates when the caller knows them already.
    """
    if estate_ids is None:
        estate_ids = list(session.scalars(select(Unit.estate_id).distinct().where(Unit.id.in_(unit_ids))))
    fold(session, estate_ids)
    rows = session.execute(
        select(PocketFlowTotal.period, Account.utility, Account.commodity, PocketFlowTotal.kind,
               func.sum(PocketFlowTotal.amount))
        .select_from(PocketFlowTotal)
        .join(Account, Account.id == PocketFlowTotal.account_id)
        .join(Wallet, Wallet.id == Account.wallet_id)
        .join(Estate, Estate.id == Account.estate_id)
        .where(Wallet.unit_id.in_(unit_ids), period_filter,
               PocketFlowTotal.kind.in_(BILLED_KINDS + COLLECTED_KINDS))
        .group_by(PocketFlowTotal.period, Account.utility, Account.commodity, PocketFlowTotal.kind)
    )
    flows = []
    for period, utility, commodity, row_kind, total in rows:
        total = Decimal(total or 0)
        if row_kind in BILLED_KINDS:
            flows.append((period, utility, commodity, "billed", -total))  # charges leave the pocket
        else:
            flows.append((period, utility, commodity, "collected", total))
    return flows


def current_period_filter(timezones: list[str], now: datetime):
    """A condition on PocketFlowTotal.period: each estate's own current month."""
    return or_(*[and_(Estate.timezone == tz, PocketFlowTotal.period == period_of(now, tz))
                 for tz in timezones]) if timezones else PocketFlowTotal.period == ""


@dataclass
class ReconciliationLine:
    """One utility's billed and collected figures for one month (or the total, period None)."""

    period: str | None
    utility: str
    commodity: str
    billed: Decimal
    collected: Decimal

    @property
    def difference(self) -> Decimal:
        return self.collected - self.billed

    @property
    def flagged(self) -> bool:
        """Less was collected than billed, by more than FLAG_SHARE of the billed amount."""
        return self.difference < 0 and -self.difference > FLAG_SHARE * abs(self.billed)

    @property
    def quiet(self) -> bool:
        return self.billed == 0 and self.collected == 0


@dataclass
class UtilityReconciliation:
    utility: str
    commodity: str
    months: list[ReconciliationLine]
    total: ReconciliationLine

    @property
    def commodity_label(self) -> str:
        return COMMODITY_LABELS.get(self.commodity, self.commodity)

    @property
    def quiet_before(self) -> int:
        """How many leading months had nothing billed or collected (shown as one row)."""
        count = 0
        for line in self.months:
            if not line.quiet:
                break
            count += 1
        return count


@dataclass
class Reconciliation:
    periods: list[str]
    utilities: list[UtilityReconciliation]

    def lines(self) -> list[ReconciliationLine]:
        """Every month line and each utility's total, in page order (for exports)."""
        return [line for u in self.utilities for line in [*u.months, u.total]]


def reconcile(session: Session, unit_ids: Select, last_period: str, months: int) -> Reconciliation:
    """Billed vs collected per utility and month for the `months` periods ending with `last_period`."""
    periods = months_back(last_period, months)
    flows = pocket_flows(session, unit_ids, PocketFlowTotal.period.in_(periods))
    sums: dict[tuple[str, str], dict[str, dict[str, Decimal]]] = defaultdict(
        lambda: defaultdict(lambda: {"billed": Decimal(0), "collected": Decimal(0)}))
    for period, utility, commodity, side, amount in flows:
        sums[(utility, commodity)][period][side] += amount
    utilities = []
    for (utility, commodity) in sorted(sums, key=_utility_order):
        by_period = sums[(utility, commodity)]
        lines = [ReconciliationLine(p, utility, commodity, by_period[p]["billed"], by_period[p]["collected"])
                 for p in periods]
        total = ReconciliationLine(None, utility, commodity, sum((line.billed for line in lines), Decimal(0)),
                                   sum((line.collected for line in lines), Decimal(0)))
        utilities.append(UtilityReconciliation(utility, commodity, lines, total))
    return Reconciliation(periods, utilities)


def _utility_order(key: tuple[str, str]) -> tuple[int, str]:
    from app.models.meter import UTILITIES

    utility, commodity = key
    return (UTILITIES.index(utility) if utility in UTILITIES else len(UTILITIES), commodity)
