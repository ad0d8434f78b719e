"""Totals over several wallets, one per utility and commodity, each naming what it adds up."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from app.labels import UTILITY, label


@dataclass
class CommodityTotal:
    utility: str
    commodity: str  # KWH, KL or a currency code
    amount: Decimal = Decimal(0)
    estates: list[str] = field(default_factory=list)  # names, in the order the cards list them
    units: int = 0

    @property
    def title(self) -> str:
        """'Electricity · kWh · Maseru Heights': the utility, the unit or currency, the estates."""
        return " · ".join((label("utility", self.utility), label("commodity", self.commodity),
                           ", ".join(self.estates)))


def commodity_totals(cards) -> list[CommodityTotal]:
    """Add the cards' pockets up per (utility, commodity); kWh and rand never share a total."""
    totals: dict[tuple[str, str], CommodityTotal] = {}
    for card in cards:
        for pocket in card.pockets:
            total = totals.setdefault((pocket.utility, pocket.commodity),
                                      CommodityTotal(pocket.utility, pocket.commodity))
            total.amount += Decimal(pocket.balance)
            total.units += 1
            if card.estate.name not in total.estates:
                total.estates.append(card.estate.name)
    order = list(UTILITY)  # electricity, water, hot water, solar
    return sorted(totals.values(), key=lambda t: (order.index(t.utility) if t.utility in order else 99,
                                                  t.commodity))
