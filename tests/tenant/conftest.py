"""Tenant fixtures: a metered, funded unit with a tenant login, readings fed through the real pipeline.

The web helpers (committed, login, world, ...) are the ones of tests/web, imported here so
pytest offers them to these tests too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import pytest

from app.metering.ingest import Message, ingest
from app.models import Tenancy
from app.models.metering import TariffVersion
from tests import factories
from tests.helpers import make_login
from tests.web.conftest import _fresh_rate_limits, committed, login, new_client, world  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def _forget_request_actor():
    """Requests in a shared context leave their audit actor behind; put the system actor back."""
    from app.audit import SYSTEM, current_actor

    token = current_actor.set(SYSTEM)
    yield
    current_actor.reset(token)


@dataclass
class Home:
    estate: int
    unit: int
    electricity_meter: int
    water_meter: int
    pocket: int          # electricity pocket
    water_pocket: int
    clearing: int
    tenant: str          # email
    tenant_id: int


@pytest.fixture
def home(committed) -> Home:
    """Protea Park (ZAR, Johannesburg): unit P1 with R500 electricity and R300 water, meters
    E-1 (electricity, flat R2.00/kWh) and W-1 (water, flat R20.00/kL), rented by Ayanda."""
    with committed() as s:
        kit = factories.make_estate_with_wallet(s, name="Protea Park", timezone="Africa/Johannesburg")
        for utility, rate in (("electricity", "2.00"), ("water", "20.00")):
            s.add(TariffVersion(estate_id=kit.estate.id, utility=utility, effective_from=date(2020, 1, 1),
                                kind="flat", rates={"rate": rate}))
        electricity = factories.make_meter(s, kit.unit, serial="E-1")
        water = factories.make_meter(s, kit.unit, serial="W-1", utility="water")
        factories.make_topup(s, kit.pocket("electricity"), "500.00", clearing=kit.accounts.clearing,
                             memo="PayFast top-up", occurred_at=datetime(2026, 9, 1, 8, tzinfo=kit.estate.tz))
        factories.make_topup(s, kit.pocket("water"), "300.00", clearing=kit.accounts.clearing,
                             memo="EFT", occurred_at=datetime(2026, 9, 1, 9, tzinfo=kit.estate.tz))
        tenant = make_login(s, "tenant", unit=kit.unit, full_name="Ayanda Dlamini", phone="+27825550101")
        s.add(Tenancy(unit_id=kit.unit.id, person_id=tenant.person_id, move_in=date(2026, 1, 1)))
        return Home(kit.estate.id, kit.unit.id, electricity.id, water.id, kit.pocket("electricity").id,
                    kit.pocket("water").id, kit.accounts.clearing.id, tenant.email, tenant.id)


def reading(serial: str, moment: datetime, register: str, unit: str = "kWh") -> Message:
    """A direct meter's reading message (kWh, or kL for water)."""
    field = "energy" if unit == "kWh" else "volume"
    body = {"meter": serial, "time": moment.isoformat(), field: f"{register} {unit}"}
    return Message(f"meters/{serial}/readings", json.dumps(body).encode())


def feed(committed, messages: list[Message]) -> None:
    """Run messages through the real ingest pipeline (billing, roll-ups) and commit."""
    with committed() as s:
        report = ingest(s, messages)
        assert report.dead_letters == [], report.dead_letters


def register_series(start: datetime, hours: int, step_hours: int, per_step: Decimal,
                    first: Decimal = Decimal("1000")) -> list[tuple[datetime, Decimal]]:
    """(time, register) every `step_hours` for `hours`, rising `per_step` each time."""
    from datetime import timedelta

    points, register = [], first
    for i in range(0, hours + 1, step_hours):
        points.append((start + timedelta(hours=i), register))
        register += per_step
    return points
