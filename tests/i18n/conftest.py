"""Fixtures for the language tests: compiled catalogues, a rented unit with a phone, logins."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from tests import factories
from tests.web.conftest import _fresh_rate_limits, committed, login, new_client  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def compile_catalogues() -> None:
    """What `make translations` does: each .po compiled to its .mo when it is newer."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po in ROOT.glob("translations/*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            with po.open("rb") as source:
                catalog = read_po(source, locale=po.parts[-3])
            with mo.open("wb") as target:
                write_mo(target, catalog)


@pytest.fixture(scope="session", autouse=True)
def _catalogues():
    compile_catalogues()


@dataclass
class Rented:
    estate_id: int
    unit_id: int
    unit_number: str
    person_id: int
    email: str
    phone: str


@pytest.fixture
def rented(committed) -> Rented:
    """A Lesotho estate (M-PESA paybill) with one rented unit whose tenant has a login and a phone."""
    from app.models import Tenancy
    from app.settings import put_setting
    from tests.helpers import make_login

    with committed() as s:
        made = factories.make_estate_with_wallet(s, currency="LSL", country="LS", timezone="Africa/Maseru",
                                                 name="Ha Thetsane")
        factories.make_meter(s, made.unit)
        put_setting(s, "mpesa_paybill", "400200", made.estate.id)
        tenant = make_login(s, "tenant", unit=made.unit, phone="+266 5775 5403", full_name="Palesa Mokoena")
        s.add(Tenancy(unit_id=made.unit.id, person_id=tenant.person_id, move_in=date(2024, 1, 1)))
        s.flush()
        return Rented(made.estate.id, made.unit.id, made.unit.number, tenant.person_id, tenant.email,
                      "+26657755403")
