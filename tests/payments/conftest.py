"""Fixtures for the payments tests: a PayFast emulator on a free port, payment data, logins."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests import factories
from tests.emulators import serving
from tests.web.conftest import _fresh_rate_limits, committed, login, new_client  # noqa: F401

PASSPHRASE = "test-passphrase"


@pytest.fixture
def payfast_gateway(app, monkeypatch):
    """The PayFast emulator, with the app configured to trust and consult it."""
    from tests.emulators.payfast import create_app

    emulator = create_app(passphrase=PASSPHRASE)
    with serving(emulator) as base:
        monkeypatch.setitem(app.config, "PAYFAST_PASSPHRASE", PASSPHRASE)
        monkeypatch.setitem(app.config, "PAYFAST_PROCESS_URL", f"{base}/eng/process")
        monkeypatch.setitem(app.config, "PAYFAST_VALIDATE_URL", f"{base}/eng/query/validate")
        monkeypatch.setitem(app.config, "PAYFAST_VALID_SOURCES", "127.0.0.1")
        emulator.base_url = base
        yield emulator


@dataclass
class Kit:
    estate_id: int
    unit_id: int
    unit_number: str
    pocket_id: int
    tenant_email: str
    staff_email: str


@pytest.fixture
def kit(committed) -> Kit:
    """An estate with one rented unit (tenant with a phone) and a staff login."""
    from tests.helpers import make_login

    with committed() as s:
        made = factories.make_estate_with_wallet(s, currency="LSL", name="Ha Thetsane")
        factories.make_meter(s, made.unit)  # an electricity meter: the pocket top-ups go to
        tenant = make_login(s, "tenant", unit=made.unit, phone="+266 5775 5403",
                            full_name="Tamer Teker")
        from datetime import date
        from app.models import Tenancy
        s.add(Tenancy(unit_id=made.unit.id, person_id=tenant.person_id, move_in=date(2024, 1, 1)))
        staff = make_login(s, "staff")
        return Kit(made.estate.id, made.unit.id, made.unit.number, made.pocket("electricity").id,
                   tenant.email, staff.email)


@pytest.fixture(autouse=True)
def _system_actor():
    """Domain calls made directly by a test act as the system, not as the last request's user."""
    from app.audit import SYSTEM, current_actor

    token = current_actor.set(SYSTEM)
    yield
    current_actor.reset(token)
