"""Credit control (C7) through the pipeline: relay off at zero, on after a top-up, water flagged."""
import json
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select

from app.settings import put_setting
from app.metering import credit_control
from app.metering.ingest import Message, ingest
from app.models import utcnow
from app.models.metering import MeterAlert, RelayCommand, TariffVersion
from tests.factories import make_meter, make_topup
from tests.metering.conftest import at, direct


def commands(session) -> list[tuple[str, str]]:
    return [(c.topic, c.state) for c in session.scalars(select(RelayCommand).order_by(RelayCommand.id))]


def enable(session, metered, minimum="30"):
    metered.estate.features = {"credit_control": True}
    metered.estate.minimum_activation_amount = Decimal(minimum)
    session.commit()


def test_crossing_zero_queues_one_relay_off_on_the_meter_topic(session, metered):
    enable(session, metered)
    ingest(session, [direct("23022673", at(90), "100"), direct("23022673", at(60), "160")])
    ingest(session, [direct("23022673", at(30), "161")])  # still below zero: nothing new
    session.commit()
    assert commands(session) == [("meters/23022673/commands", "off")]
    assert metered.meter.relay_state == "off"


def test_top_up_to_the_minimum_activation_amount_turns_the_relay_on(session, metered):
    enable(session, metered, minimum="30")
    ingest(session, [direct("23022673", at(90), "100"), direct("23022673", at(60), "160")])
    session.commit()
    make_topup(session, metered.pocket, "40.00")  # R20: above zero, below the minimum
    credit_control.after_pocket_change(session, [metered.pocket.id])
    assert len(commands(session)) == 1
    make_topup(session, metered.pocket, "20.00")  # R40
    credit_control.after_pocket_change(session, [metered.pocket.id])
    session.commit()
    assert [state for _, state in commands(session)] == ["off", "on"]


def test_flag_off_means_no_commands(session, metered):
    ingest(session, [direct("23022673", at(90), "100"), direct("23022673", at(60), "160")])
    session.commit()
    assert commands(session) == []


def test_chirpstack_meters_get_a_downlink_on_their_application_topic(session, metered):
    enable(session, metered)
    lora = make_meter(session, metered.unit, serial="LORA1", protocol="chirpstack", dev_eui="0004a30b001c0530")
    metered.meter.unit_id = None  # only the LoRa meter bills this unit now
    put_setting(session, "chirpstack_application_id", "app-1")
    session.commit()
    uplink = {"time": at(60).isoformat(), "deviceInfo": {"devEui": "0004A30B001C0530"}, "object": {"energy": 1}}
    later = dict(uplink, time=at(30).isoformat(), object={"energy": 61})
    ingest(session, [Message(f"application/app-1/device/{lora.dev_eui}/event/up", json.dumps(u).encode())
                     for u in (uplink, later)])
    session.commit()
    command = session.scalar(select(RelayCommand))
    assert command.topic == "application/app-1/device/0004a30b001c0530/command/down"
    body = json.loads(credit_control.command_payload(command, lora))
    assert body["devEui"] == lora.dev_eui and body["object"]["state"] == "off"


def test_publish_ack_and_timeout(session, metered):
    enable(session, metered)
    ingest(session, [direct("23022673", at(90), "100"), direct("23022673", at(60), "160")])
    session.commit()
    sent = []
    assert credit_control.publish_pending(session, lambda t, p: sent.append((t, p)) or True) == 1
    assert credit_control.publish_pending(session, lambda t, p: sent.append((t, p)) or True) == 0
    command = session.scalar(select(RelayCommand))
    assert credit_control.flag_silent_meters(session, now=utcnow() + timedelta(minutes=6)) == 1
    assert command.status == "timed_out"
    assert session.scalar(select(MeterAlert.kind).where(MeterAlert.kind == "relay_no_ack"))
    credit_control.record_ack(session, json.dumps({"command_id": command.command_id}).encode())
    assert command.status == "acknowledged"
    assert credit_control.record_ack(session, b"not json") is None


def test_water_is_never_cut_but_flagged_past_its_credit_limit(session, metered):
    enable(session, metered)
    session.add(TariffVersion(estate_id=metered.estate.id, utility="water", effective_from=date(2020, 1, 1),
                              kind="flat", rates={"rate": "10"}))
    make_meter(session, metered.unit, serial="W1", utility="water")
    put_setting(session, "water_credit_limit", "50", metered.estate.id)
    session.commit()
    ingest(session, [direct("W1", at(90), "0"), direct("W1", at(60), "4")])  # within the limit
    session.commit()
    assert session.scalar(select(MeterAlert.id)) is None
    ingest(session, [direct("W1", at(30), "6")])
    session.commit()
    assert session.scalars(select(MeterAlert.kind)).all() == ["water_credit_limit"]
    assert commands(session) == []


def supply_notices(session) -> list[tuple[str, str, str]]:
    from app.models import Notification

    return [(n.channel, n.subject, n.body) for n in session.scalars(
        select(Notification).where(Notification.template == "supply_change").order_by(Notification.id))]


def test_tenant_hears_once_of_the_cut_and_once_of_the_restore_with_balance_and_how_to_pay(session, metered):
    from app.models import Tenancy
    from tests.factories import make_user

    enable(session, metered, minimum="30")
    tenant = make_user(session, "tenant", unit=metered.unit, phone="+27820000001")
    session.add(Tenancy(unit_id=metered.unit.id, person_id=tenant.person.id, move_in=date(2020, 1, 1)))
    put_setting(session, credit_control.MPESA_PAYBILL_KEY, "400200", metered.estate.id)
    session.commit()
    ingest(session, [direct("23022673", at(120), "100"), direct("23022673", at(90), "160")])
    ingest(session, [direct("23022673", at(60), "161")])  # still cut: no second notice
    session.commit()
    notices = supply_notices(session)
    assert [(channel, subject) for channel, subject, _ in notices] == [
        (c, f"Supply cut: electricity at unit {metered.unit.number}") for c in ("in_app", "email", "sms")]
    body = notices[1][2]
    assert "switched off: the balance is R -20.00." in body
    assert f"/tenant/topup?unit_id={metered.unit.id}" in body
    assert f"M-PESA to paybill 400200, account {metered.estate.code}-{metered.unit.number}" in body
    assert "worth at least R 30.00" in body

    make_topup(session, metered.pocket, "60.00")  # R38: above the minimum, relay on
    credit_control.after_pocket_change(session, [metered.pocket.id])
    make_topup(session, metered.pocket, "10.00")  # already on: nothing more to say
    credit_control.after_pocket_change(session, [metered.pocket.id])
    session.commit()
    subjects = [subject for _, subject, _ in supply_notices(session)]
    assert subjects.count(f"Supply restored: electricity at unit {metered.unit.number}") == 3
    assert len(subjects) == 6


def test_supply_notice_waits_for_the_commit_and_vanishes_with_a_rollback(session, metered, monkeypatch):
    from app.notify import email as notify_module
    from app.models import Tenancy
    from tests.factories import make_user

    sent = []
    monkeypatch.setattr(notify_module, "send_email", sent.append)
    enable(session, metered)
    tenant = make_user(session, "tenant", unit=metered.unit)
    session.add(Tenancy(unit_id=metered.unit.id, person_id=tenant.person.id, move_in=date(2020, 1, 1)))
    session.commit()
    ingest(session, [direct("23022673", at(90), "100"), direct("23022673", at(60), "160")])
    assert sent == []  # nothing leaves before the commit
    session.rollback()
    assert supply_notices(session) == [] and sent == []


def test_a_unit_with_two_electricity_meters_hears_of_the_cut_once(session, metered):
    from app.models import Tenancy
    from tests.factories import make_user

    enable(session, metered)
    make_meter(session, metered.unit, serial="23022674")
    tenant = make_user(session, "tenant", unit=metered.unit)
    session.add(Tenancy(unit_id=metered.unit.id, person_id=tenant.person.id, move_in=date(2020, 1, 1)))
    session.commit()
    ingest(session, [direct("23022673", at(90), "100"), direct("23022673", at(60), "160")])
    session.commit()
    assert sorted(state for _, state in commands(session)) == ["off", "off"]
    assert [channel for channel, _, _ in supply_notices(session)] == ["in_app", "email"]
