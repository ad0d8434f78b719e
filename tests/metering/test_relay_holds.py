"""Relay holds (C7): a deliberate cut stays cut through top-ups until released or lapsed."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.metering import credit_control
from app.metering.ingest import ingest
from app.models import utcnow
from app.models.metering import RelayCommand, RelayHold
from tests.factories import make_meter, make_topup
from tests.metering.conftest import at, direct
from tests.metering.test_credit_control import enable


def states(session) -> list[str]:
    return [c.state for c in session.scalars(select(RelayCommand).order_by(RelayCommand.id))]


def test_a_held_meter_stays_off_after_a_top_up_and_comes_back_on_release(session, metered):
    enable(session, metered, minimum="0")
    hold = credit_control.place_hold(session, metered.meter, "arrears", "60 days in arrears")
    session.commit()
    assert states(session) == ["off"] and metered.meter.relay_state == "off"
    make_topup(session, metered.pocket, "50.00")
    credit_control.after_pocket_change(session, [metered.pocket.id])
    session.commit()
    assert states(session) == ["off"]  # the top-up left the hold in place
    credit_control.release_hold(session, hold, reason="debt paid")
    session.commit()
    assert states(session) == ["off", "on"]
    assert hold.released_at is not None and hold.release_reason == "debt paid"


def test_placing_the_same_kind_twice_keeps_one_hold_and_one_command(session, metered):
    enable(session, metered)
    first = credit_control.place_hold(session, metered.meter, "demand", "estate over 80 kW")
    second = credit_control.place_hold(session, metered.meter, "demand", "still over")
    session.commit()
    assert first.id == second.id and states(session) == ["off"]
    assert session.scalar(select(RelayHold.id).where(RelayHold.kind == "demand")) == first.id


def test_releasing_one_of_two_holds_keeps_the_supply_off(session, metered):
    enable(session, metered, minimum="0")
    arrears = credit_control.place_hold(session, metered.meter, "arrears", "suspended")
    credit_control.place_hold(session, metered.meter, "manual", "tamper inspection")
    credit_control.release_hold(session, arrears)
    session.commit()
    assert states(session) == ["off"]


def test_a_hold_with_a_time_lapses_and_restores_supply(session, metered):
    enable(session, metered, minimum="0")
    credit_control.place_hold(session, metered.meter, "spend_limit", "daily limit reached",
                              until=utcnow() + timedelta(hours=1))
    session.commit()
    assert credit_control.release_expired_holds(session) == 0
    assert credit_control.release_expired_holds(session, now=utcnow() + timedelta(hours=2)) == 1
    session.commit()
    assert states(session) == ["off", "on"]


def test_a_lapsed_hold_does_not_restore_a_pocket_at_zero(session, metered):
    enable(session, metered, minimum="0")
    ingest(session, [direct("23022673", at(90), "100"), direct("23022673", at(60), "160")])
    session.commit()
    credit_control.place_hold(session, metered.meter, "spend_limit", "limit", until=utcnow() + timedelta(minutes=1))
    credit_control.release_expired_holds(session, now=utcnow() + timedelta(minutes=2))
    session.commit()
    assert states(session) == ["off"]


def test_without_credit_control_a_release_switches_the_meter_back_on(session, metered):
    hold = credit_control.place_hold(session, metered.meter, "manual", "inspection")
    credit_control.release_hold(session, hold)
    session.commit()
    assert states(session) == ["off", "on"]


def test_water_and_sparkmeter_meters_are_never_held(session, metered):
    water = make_meter(session, metered.unit, serial="W-HOLD-1", utility="water")
    spark = make_meter(session, metered.unit, serial="SM-HOLD-1", protocol="sparkmeter")
    for meter in (water, spark):
        with pytest.raises(credit_control.HoldRefused):
            credit_control.place_hold(session, meter, "demand", "peak")
    assert states(session) == []
