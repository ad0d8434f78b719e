"""Fixtures for the family tests: one estate with two shared wallets and a login per grant level."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from tests import factories
from tests.web.conftest import _fresh_rate_limits, committed, login, new_client  # noqa: F401


@dataclass
class Family:
    estate_id: int
    unit_a: int  # shared with the levels below
    unit_b: int  # shared with nobody here (another family's)
    pocket_a: int
    meter_a: int
    emails: dict[str, str] = field(default_factory=dict)  # level (or staff, stranger) -> email
    grants: dict[str, int] = field(default_factory=dict)  # level -> grant id on unit A


@pytest.fixture
def family(committed) -> Family:
    return make_family(committed)


def make_family(committed) -> Family:
    """The world of the family tests, committed."""
    from app.models.families import WalletGrant
    from tests.helpers import make_login

    with committed() as s:
        kit = factories.make_estate_with_wallet(s, name="Protea Flats", features={"credit_control": True})
        meter = factories.make_meter(s, kit.unit)
        other = factories.make_unit(s, kit.estate)
        factories.make_wallet(s, other)
        factories.make_meter(s, other)
        made = Family(kit.estate.id, kit.unit.id, other.id, kit.pocket("electricity").id, meter.id)
        for level in ("view", "topup", "manage"):
            user = make_login(s, full_name=f"{level.title()} Person", phone=None)
            grant = WalletGrant(unit_id=kit.unit.id, user_id=user.id, level=level,
                                alerts_enabled=level == "manage", alert_channels=["in_app"])
            s.add(grant)
            s.flush()
            made.emails[level], made.grants[level] = user.email, grant.id
        stranger = make_login(s, full_name="Stranger")
        s.add(WalletGrant(unit_id=other.id, user_id=stranger.id, level="manage", alert_channels=["in_app"]))
        made.emails["stranger"] = stranger.email
        made.emails["staff"] = make_login(s, "staff").email
        kit.pocket("electricity").balance  # loaded
        s.flush()
    return made


def fund(committed, pocket_id: int, amount: str = "100.00") -> None:
    """Put money in a pocket through a real top-up posting."""
    from app.models import Account

    with committed() as s:
        factories.make_topup(s, s.get(Account, pocket_id), amount)


def money(value: str) -> Decimal:
    return Decimal(value)


@pytest.fixture
def family_factory(app, committed):
    """Make a fresh family world inside one test (hypothesis examples): empties the database first."""
    from tests.conftest import empty_database

    def make() -> Family:
        empty_database(app)
        return make_family(committed)
    return make
