"""Demand management (U5): a synthetic peak holds the heaviest consumers in order, never water,
and supply comes back after the hold time or once demand stays low."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.analytics.demand import check_demand, current_demand
from app.metering.credit_control import release_expired_holds
from app.models import ConsumptionRollup, Estate, Notification, Reading, RelayCommand
from app.models.metering import RelayHold
from app.settings import put_setting
from tests import factories
from tests.helpers import make_login

NOW = datetime(2026, 6, 1, 18, 0, tzinfo=UTC)


def _bulk_reading(s, bulk, at, kwh):
    s.add(Reading(meter_id=bulk.id, taken_at=at, register=Decimal(1000) + kwh, consumption=Decimal(kwh)))


@pytest.fixture
def site(committed):
    """Credit control on, holds opted in, threshold 10 kW (restore 8 kW after 15 min), at most 2 units for 30 min.

    Last hour's use: meter A 5 kWh, B 3, C 1, a SparkMeter meter 9 and a water meter 50: A and B are held.
    """
    with committed() as s:
        estate = factories.make_estate(s, name="Peak Gardens", features={"credit_control": True})
        for key, value in (("demand_threshold_kw", "10"), ("demand_restore_kw", "8"), ("demand_restrict", True),
                           ("demand_max_units", 2), ("demand_hold_minutes", 30), ("demand_restore_minutes", 15)):
            put_setting(s, key, value, estate.id)
        bulk = factories.make_meter(s, estate=estate, role="bulk", interval_minutes=30)
        _bulk_reading(s, bulk, NOW - timedelta(minutes=30), 4)
        _bulk_reading(s, bulk, NOW, 6)  # 6 kWh in half an hour: 12 kW
        meters = {}
        for name, utility, protocol, used in (("A", "electricity", "mqtt_direct", 5), ("B", "electricity", "mqtt_direct", 3),
                                              ("C", "electricity", "mqtt_direct", 1), ("S", "electricity", "sparkmeter", 9),
                                              ("W", "water", "mqtt_direct", 50)):
            unit = factories.make_unit(s, estate, number=name)
            wallet = factories.make_wallet(s, unit)
            factories.make_topup(s, next(p for p in wallet.pockets if p.utility == utility), "100.00")
            meter = factories.make_meter(s, unit, utility=utility, protocol=protocol)
            meter.relay_state = "on"
            s.add(ConsumptionRollup(meter_id=meter.id, grain="hour", period_start=NOW - timedelta(hours=1),
                                    consumption=Decimal(used), readings=2))
            meters[name] = meter.id
        make_login(s, "utility", estate=estate)
        return {"estate": estate.id, "bulk": bulk.id, **meters}


def _commands(s):
    return [(c.meter_id, c.state) for c in s.scalars(select(RelayCommand).order_by(RelayCommand.id))]


def test_a_peak_holds_the_heaviest_consumers_in_order_and_never_water(committed, site):
    with committed() as s:
        estate = s.get(Estate, site["estate"])
        assert current_demand(s, estate.id, NOW) == Decimal("12.000")
        event = check_demand(s, estate, now=NOW)
        s.commit()
        assert (event.state, event.held_meter_ids) == ("restricted", [site["A"], site["B"]])
        assert _commands(s) == [(site["A"], "off"), (site["B"], "off")]  # SparkMeter skipped, water never
        holds = s.scalars(select(RelayHold)).all()
        assert {(h.kind, h.until) for h in holds} == {("demand", NOW + timedelta(minutes=30))}
        assert all("12.000 kW above 10" in h.reason for h in holds)
        assert s.scalars(select(Notification).where(Notification.template == "utility_demand")).all()
        again = check_demand(s, estate, now=NOW + timedelta(minutes=5))  # still over: the same event
        s.commit()
        assert again.id == event.id and len(_commands(s)) == 2
        # The hold time runs out (the relay_holds job): supply returns to both.
        release_expired_holds(s, NOW + timedelta(minutes=31))
        s.commit()
        assert sorted(_commands(s)[2:]) == sorted([(site["A"], "on"), (site["B"], "on")])


def test_supply_returns_once_demand_stays_under_the_restore_level(committed, site):
    with committed() as s:
        estate = s.get(Estate, site["estate"])
        check_demand(s, estate, now=NOW)
        s.commit()
        bulk_id = site["bulk"]
        _bulk_reading(s, type("M", (), {"id": bulk_id}), NOW + timedelta(minutes=30), 3)  # 6 kW
        _bulk_reading(s, type("M", (), {"id": bulk_id}), NOW + timedelta(minutes=60), 3)
        s.commit()
        event = check_demand(s, estate, now=NOW + timedelta(minutes=31))
        assert event.state == "restricted" and event.below_since is not None  # low, not for long enough yet
        event = check_demand(s, estate, now=NOW + timedelta(minutes=61))
        s.commit()
        assert event.state == "restored" and event.ended_at is not None
        assert sorted(_commands(s)[2:]) == sorted([(site["A"], "on"), (site["B"], "on")])
        assert all(h.release_reason.startswith("demand back to") for h in s.scalars(select(RelayHold)))


def test_without_the_opt_in_only_warnings_are_sent(committed, site):
    with committed() as s:
        put_setting(s, "demand_restrict", False, site["estate"])
        s.commit()
        event = check_demand(s, s.get(Estate, site["estate"]), now=NOW)
        s.commit()
        assert event.state == "warning" and _commands(s) == []


def test_the_demand_page_opens(committed, site, login):
    with committed() as s:
        from app.models import User
        email = s.scalar(select(User.email).where(User.email.like("utility%")))
    client = login(email)
    page = client.get(f"/utility/estates/{site['estate']}/demand")
    assert page.status_code == 200 and "Demand by hour of day" in page.get_data(as_text=True)
    assert client.get(f"/utility/estates/{site['estate']}/demand?format=csv&table=events").status_code == 200
