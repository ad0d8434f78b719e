"""Metering fixtures: an estate with a metered, funded unit and a tariff; message builders."""
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from app.metering.ingest import Message
from app.models import Account, Estate, Meter, Unit
from app.models.metering import TariffVersion
from tests.factories import make_estate_with_wallet, make_meter, make_topup, make_user
from tests.helpers import sign_in


def at(minutes_ago: int) -> datetime:
    """A half-hour-aligned moment `minutes_ago` before the last half hour."""
    now = datetime.now(UTC)
    aligned = now.replace(minute=(now.minute // 30) * 30, second=0, microsecond=0)
    return aligned - timedelta(minutes=minutes_ago)


def direct(serial: str, moment: datetime, register: str, topic_serial: str | None = None) -> Message:
    """A direct meter's reading message as it arrives on `meters/<serial>/readings`."""
    body = {"meter": serial, "time": moment.isoformat(), "energy": f"{register} kWh", "voltage": "230.1 V"}
    return Message(f"meters/{topic_serial or serial}/readings", json.dumps(body).encode())


@dataclass
class Metered:
    estate: Estate
    unit: Unit
    meter: Meter
    pocket: Account
    revenue: Account


@pytest.fixture
def metered(session) -> Metered:
    """A ZAR estate on a flat R2.00/kWh tariff; one unit with R100 and an electricity meter."""
    kit = make_estate_with_wallet(session)
    session.add(TariffVersion(estate_id=kit.estate.id, utility="electricity",
                              effective_from=date(2020, 1, 1), kind="flat", rates={"rate": "2.00"}))
    meter = make_meter(session, kit.unit, serial="000023022673")
    make_topup(session, kit.pocket("electricity"), "100.00", clearing=kit.accounts.clearing)
    session.commit()
    return Metered(kit.estate, kit.unit, meter, kit.pocket("electricity"),
                   kit.accounts.revenue["electricity"])


def balance(session, account: Account) -> Decimal:
    """The account's balance as committed now."""
    session.expire_all()
    return session.get(Account, account.id).balance


@pytest.fixture(autouse=True)
def _forget_request_actor():
    """Test-client requests run in the test's context, so the audit actor they set would outlive
    them (and name a user the next test's empty database lacks): put the system actor back."""
    from app.audit import SYSTEM, current_actor

    token = current_actor.set(SYSTEM)
    yield
    current_actor.reset(token)


@pytest.fixture
def fresh_rate_limits(app):
    """Tests that sign in start from untouched login rate limits."""
    from app.extensions import limiter

    limiter.reset()


@pytest.fixture
def staff_client(session, metered, app, fresh_rate_limits):
    """A test client signed in as staff (with the `metered` estate present)."""
    staff = make_user(session, "staff")
    session.commit()
    client = app.test_client()
    assert sign_in(client, staff.email).status_code == 302
    return client
