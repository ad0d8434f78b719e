"""Owner-layer fixtures: a landlord with three units in a Nairobi estate (UTC+3), a neighbour's
unit in the same estate and another owner's estate, with roll-ups and ledger entries whose
figures the tests compute by hand."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.ledger import Entry, post, reverse
from app.ledger.accounts import open_wallet
from app.metering import rollups
from app.models import OccupancyChange, utcnow
from tests import factories
from tests.helpers import make_login
from tests.web.conftest import _fresh_rate_limits, committed, login, new_client  # noqa: F401

NAIROBI = ZoneInfo("Africa/Nairobi")


def local_month(offset: int, now: datetime | None = None) -> tuple[int, int]:
    """(year, month) of the Nairobi month `offset` months from now (0 this month, -1 last month)."""
    here = (now or utcnow()).astimezone(NAIROBI)
    index = here.year * 12 + here.month - 1 + offset
    return index // 12, index % 12 + 1


def at(offset: int, day: int, hour: float = 0) -> datetime:
    """A UTC instant: Nairobi local `day` of the month `offset` months from now, at `hour`."""
    year, month = local_month(offset)
    return (datetime(year, month, day, tzinfo=NAIROBI) + timedelta(hours=hour)).astimezone(UTC)


def period(offset: int) -> str:
    year, month = local_month(offset)
    return f"{year:04d}-{month:02d}"


def add_use(session, meter, moment: datetime, quantity: str) -> None:
    """Roll one reading's consumption into the meter's hour, day and month roll-ups."""
    totals: dict = {}
    rollups.add_to_buckets(totals, meter.id, moment, NAIROBI, Decimal(quantity))
    rollups.apply(session, totals)


def charge(session, pocket, revenue, amount: str, moment: datetime, kind: str = "consumption"):
    """Take `amount` from a pocket as billed consumption (or a standing charge)."""
    return post(session, Entry(estate_id=pocket.estate_id, kind=kind, idempotency_key=factories.unique("t:charge:"),
                               legs=[(pocket.id, -Decimal(amount)), (revenue.id, Decimal(amount))],
                               occurred_at=moment, memo="test charge"))


@dataclass
class Landlord:
    owner: str            # email of the landlord (grants on P1, P2, P3)
    other_owner: str      # email of the owner of the other estate
    neighbour_owner: str  # email of the owner of P4 (same estate as the landlord's units)
    estate: int
    other_estate: int
    units: dict[str, int]  # number -> id: P1, P2, P3 (landlord), P4 (neighbour), Q1 (other estate)


@pytest.fixture
def landlord(committed) -> Landlord:
    """Figures, this month unless said otherwise (Nairobi local months):
    P1 occupied: electricity 10.5 kWh, water 2 kL, solar 6 kWh; P2 vacant: electricity 4.25 kWh;
    P3 maintenance: electricity 0 (meter silent). P4 (neighbour): 1000 kWh. Q1 (other estate): 500 kWh.
    Ledger (electricity unless said): P1 top-up 300 and charges 20 + 5.50 this month, water top-up 50;
    last month P1 top-up 70, charge 40 (reversed this month) and charge 60; P2 top-up 80 two
    months ago. P4 top-up 999 and charge 111 this month; Q1 top-up 777.
    """
    with committed() as s:
        estate = factories.make_estate(s, name="Protea Park", timezone="Africa/Nairobi", currency="KES")
        accounts = factories.make_system_accounts(s, estate)
        units = {}
        for number, status in (("P1", "occupied"), ("P2", "vacant"), ("P3", "maintenance"), ("P4", "occupied")):
            units[number] = factories.make_unit(s, estate, number=number, occupancy_status=status)
            factories.make_wallet(s, units[number])
        other = factories.make_estate_with_wallet(s, name="Baobab Court", timezone="Africa/Nairobi", currency="KES")
        other.unit.number = "Q1"
        units["Q1"] = other.unit
        s.flush()

        meters = {
            "P1e": factories.make_meter(s, units["P1"]), "P1w": factories.make_meter(s, units["P1"], utility="water"),
            "P1s": factories.make_meter(s, units["P1"], utility="solar", role="solar"),
            "P2e": factories.make_meter(s, units["P2"]), "P3e": factories.make_meter(s, units["P3"]),
            "P4e": factories.make_meter(s, units["P4"]), "Q1e": factories.make_meter(s, units["Q1"]),
        }
        add_use(s, meters["P1e"], at(0, 1, 0.5), "4.5")   # 00:30 on the 1st: this month
        add_use(s, meters["P1e"], at(0, 2, 10), "6")
        add_use(s, meters["P1e"], at(0, 1, 0), "99")      # exactly local midnight: closes last month
        add_use(s, meters["P1w"], at(0, 1, 8), "2")
        add_use(s, meters["P1s"], at(0, 1, 12), "6")
        add_use(s, meters["P2e"], at(0, 2, 9), "4.25")
        add_use(s, meters["P2e"], at(-1, 15, 9), "3")     # last month
        add_use(s, meters["P4e"], at(0, 1, 9), "1000")
        add_use(s, meters["Q1e"], at(0, 1, 9), "500")

        wallets = {n: open_wallet(s, units[n]) for n in units}
        revenue = accounts.revenue["electricity"]
        clearing = accounts.clearing
        electricity = {n: wallets[n].pocket("electricity") for n in units}
        factories.make_topup(s, electricity["P1"], "300", clearing=clearing, occurred_at=at(0, 1, 9))
        factories.make_topup(s, wallets["P1"].pocket("water"), "50", clearing=clearing, occurred_at=at(0, 1, 9))
        charge(s, electricity["P1"], revenue, "20", at(0, 1, 10))
        charge(s, electricity["P1"], revenue, "5.50", at(0, 1, 11), kind="standing_charge")
        factories.make_topup(s, electricity["P1"], "70", clearing=clearing, occurred_at=at(-1, 3, 9))
        wrong = charge(s, electricity["P1"], revenue, "40", at(-1, 4, 9))
        charge(s, electricity["P1"], revenue, "60", at(-1, 20, 9))
        reverse(s, wrong.transaction_id, occurred_at=at(0, 1, 12))
        factories.make_topup(s, electricity["P2"], "80", clearing=clearing, occurred_at=at(-2, 10, 9))
        factories.make_topup(s, electricity["P4"], "999", clearing=clearing, occurred_at=at(0, 1, 9))
        charge(s, electricity["P4"], revenue, "111", at(0, 1, 10))
        factories.make_topup(s, other.pocket(), "777", clearing=other.accounts.clearing, occurred_at=at(0, 1, 9))

        owner = make_login(s, "owner", grants=[("owner", units["P2"]), ("owner", units["P3"])], unit=units["P1"])
        neighbour = make_login(s, "owner", unit=units["P4"])
        other_owner = make_login(s, "owner", estate=other.estate)
        return Landlord(owner.email, other_owner.email, neighbour.email, estate.id, other.estate.id,
                        {n: u.id for n, u in units.items()})


def set_history(session, unit_id: int, changes: list[tuple[datetime, str]]) -> None:
    """Record occupancy changes as app.estates.status.set_occupancy would have, at given moments."""
    for moment, status in changes:
        session.add(OccupancyChange(unit_id=unit_id, status=status, changed_at=moment))
