"""Meters (X6): adding and editing with their rules, and replacing one without a billing gap."""
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.estates.meters import (DuplicateMeter, InvalidMeterValues, MeterAlreadyOnUnit, MeterError,
                                MeterHistoryFixed, ReplacementRefused, add_meter, normalise_dev_eui,
                                replace_meter, update_meter)
from app.metering.ingest import ingest
from app.models import Account, AuditLog, LedgerTransaction, Meter, Wallet
from app.models.metering import DeadLetter, RelayCommand, TariffVersion
from tests.factories import make_estate_with_wallet, make_meter, make_topup, make_unit
from tests.metering.conftest import direct

BLOCKS = {"blocks": [{"up_to": "10", "rate": "1.00"}, {"up_to": None, "rate": "3.00"}]}


def unit_meter(**extra) -> dict:
    return {"serial": "SN-1001", "utility": "electricity", "role": "unit", "protocol": "mqtt_direct",
            "interval_minutes": "", "register_digits": "", **extra}


@pytest.fixture
def kit(session):
    """A ZAR estate on inclining blocks (10 kWh at R1, then R3) with a R10 standing charge,
    one unit with R100 in electricity and no meter yet."""
    kit = make_estate_with_wallet(session)
    session.add(TariffVersion(estate_id=kit.estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="block", rates=BLOCKS, standing_charge=Decimal("10")))
    make_topup(session, kit.pocket("electricity"), "100.00", clearing=kit.accounts.clearing)
    session.commit()
    return kit


def last_month_on(estate, day: int, hour: int = 10) -> datetime:
    this_month = datetime.now(estate.tz).date().replace(day=1)
    month = (this_month - timedelta(days=1)).replace(day=day)
    return datetime.combine(month, time(hour), estate.tz)


def balance(session, account) -> Decimal:
    session.expire_all()
    return session.get(Account, account.id).balance


def charges(session, estate_id) -> list[tuple[str, Decimal]]:
    """(kind, amount charged to the pocket) for the estate's consumption and standing charges."""
    session.expire_all()
    rows = session.scalars(select(LedgerTransaction).where(
        LedgerTransaction.estate_id == estate_id,
        LedgerTransaction.kind.in_(("consumption", "standing_charge"))).order_by(LedgerTransaction.id)).all()
    return [(t.kind, t.memo) for t in rows]


# --- adding and editing -------------------------------------------------------------------


def test_a_meter_added_to_a_unit_is_stored_canonically_opens_its_pocket_and_is_audited(session, kit):
    wallet = session.scalar(select(Wallet).where(Wallet.unit_id == kit.unit.id))
    for pocket in list(wallet.pockets):
        if pocket.utility == "water":
            wallet.pockets.remove(pocket)
            session.delete(pocket)
    session.commit()
    saved = add_meter(session, kit.unit, unit_meter(serial=" 000041273605 ", utility="water", protocol="chirpstack",
                                                    dev_eui="A8-17-58-FF-FE-03-12-34", interval_minutes="30",
                                                    register_digits="6"))
    meter = session.get(Meter, saved.meter.id)
    assert (meter.serial, meter.dev_eui, meter.interval_minutes, meter.register_digits) == \
        ("41273605", "a81758fffe031234", 30, 6)
    assert meter.reports_on_boundaries is False  # LoRaWAN devices send on their own timers
    pockets = session.scalars(select(Account.utility).join(Wallet, Wallet.id == Account.wallet_id)
                              .where(Wallet.unit_id == kit.unit.id)).all()
    assert "water" in pockets
    row = session.scalar(select(AuditLog).where(AuditLog.action == "meter.add"))
    assert row.new["serial"] == "41273605" and row.old is None


def test_a_duplicate_serial_is_refused_also_when_written_with_leading_zeros(session, kit):
    add_meter(session, kit.unit, unit_meter(serial="23022673"))
    other = make_unit(session, kit.estate)
    session.commit()
    for serial in ("23022673", "000023022673", " 23022673"):
        with pytest.raises(DuplicateMeter) as refused:
            add_meter(session, other, unit_meter(serial=serial))
        session.rollback()
        assert "already registered" in refused.value.errors["serial"]
    with pytest.raises(DuplicateMeter) as refused:
        add_meter(session, other, unit_meter(serial="000023022673"))
    assert "without leading zeros" in refused.value.errors["serial"]


def test_a_duplicate_dev_eui_is_refused_whatever_its_case_or_separators(session, kit):
    add_meter(session, kit.unit, unit_meter(serial="L1", protocol="chirpstack", dev_eui="0004a30b001c0530"))
    other = make_unit(session, kit.estate)
    session.commit()
    with pytest.raises(DuplicateMeter) as refused:
        add_meter(session, other, unit_meter(serial="L2", protocol="chirpstack", dev_eui="00:04:A3:0B:00:1C:05:30"))
    assert "already registered" in refused.value.errors["dev_eui"]


def test_bad_values_get_a_message_next_to_each_field(session, kit):
    with pytest.raises(InvalidMeterValues) as refused:
        add_meter(session, kit.unit, {"serial": "", "utility": "gas", "role": "bulk", "protocol": "carrier pigeon",
                                      "dev_eui": "xyz", "interval_minutes": "7", "register_digits": "40"})
    errors = refused.value.errors
    assert set(errors) == {"serial", "utility", "role", "protocol", "dev_eui", "interval_minutes",
                           "register_digits"}
    assert "divide a day" in errors["interval_minutes"]
    assert "16 hexadecimal digits" in errors["dev_eui"]
    assert "estate's meters page" in errors["role"]
    with pytest.raises(InvalidMeterValues) as refused:
        add_meter(session, kit.unit, unit_meter(protocol="chirpstack"))
    assert "DevEUI" in refused.value.errors["dev_eui"]
    with pytest.raises(InvalidMeterValues) as refused:
        add_meter(session, kit.unit, unit_meter(utility="water", bidirectional="1"))
    assert "net-metered" in refused.value.errors["bidirectional"]
    assert session.scalar(select(func.count(Meter.id))) == 0


def test_a_unit_has_one_meter_per_utility_and_bulk_meters_have_no_unit(session, kit):
    add_meter(session, kit.unit, unit_meter())
    with pytest.raises(MeterAlreadyOnUnit) as refused:
        add_meter(session, kit.unit, unit_meter(serial="SN-2"))
    assert "replace it instead" in refused.value.errors["utility"]
    session.rollback()
    bulk = add_meter(session, kit.estate, {"serial": "BULK-1", "utility": "electricity", "role": "bulk"}).meter
    assert bulk.unit_id is None and bulk.role == "bulk"
    with pytest.raises(InvalidMeterValues) as refused:
        add_meter(session, kit.estate, {"serial": "X-9", "utility": "electricity", "role": "unit"})
    assert "unit's page" in refused.value.errors["role"]


def test_editing_a_meter_audits_old_and_new_and_fixes_its_identity_once_it_has_readings(session, kit):
    meter = add_meter(session, kit.unit, unit_meter()).meter
    saved = update_meter(session, meter, unit_meter(interval_minutes="30", bidirectional="1"))
    assert saved.changed == {"interval_minutes": (None, 30), "bidirectional": (False, True)}
    row = session.scalar(select(AuditLog).where(AuditLog.action == "meter.update"))
    assert row.old == {"interval_minutes": None, "bidirectional": False}
    ingest(session, [direct("SN-1001", last_month_on(kit.estate, 3), "5")])
    session.commit()
    with pytest.raises(MeterHistoryFixed) as refused:
        update_meter(session, meter, unit_meter(serial="SN-9"))
    assert "Replace the meter instead" in refused.value.errors["serial"]


def test_dev_eui_normalisation():
    assert normalise_dev_eui("00-04-A3-0B-00-1C-05-30") == "0004a30b001c0530"
    assert normalise_dev_eui("  ") is None
    with pytest.raises(ValueError):
        normalise_dev_eui("0004a30b001c05")


# --- replacement ----------------------------------------------------------------------------


def _history(session, kit, serial="OLD-1"):
    """The old meter's readings on the 5th and 10th of last month: 6 kWh billed."""
    meter = add_meter(session, kit.unit, unit_meter(serial=serial)).meter
    ingest(session, [direct(serial, last_month_on(kit.estate, 5), "100")])
    session.commit()
    ingest(session, [direct(serial, last_month_on(kit.estate, 10), "106")])
    session.commit()
    return meter


def test_a_mid_month_replacement_bills_both_registers_once_as_if_one_meter(session, kit):
    old = _history(session, kit)
    closing_at = last_month_on(kit.estate, 15)
    done = replace_meter(session, old, "109", closing_at.replace(tzinfo=None).isoformat(),
                         unit_meter(serial="NEW-1"), "50")
    assert (done.closing.billed, done.opening.billed) == (1, 0)  # the closing span is billed; the opening is a baseline
    ingest(session, [direct("NEW-1", last_month_on(kit.estate, 20), "55")])
    session.commit()

    # The same consumption on one meter that was never replaced: 100, 106, 109, 114.
    control = make_estate_with_wallet(session)
    session.add(TariffVersion(estate_id=control.estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="block", rates=BLOCKS, standing_charge=Decimal("10")))
    make_topup(session, control.pocket("electricity"), "100.00", clearing=control.accounts.clearing)
    make_meter(session, control.unit, serial="CONTROL-1")
    session.commit()
    for day, register in ((5, "100"), (10, "106"), (15, "109"), (20, "114")):
        ingest(session, [direct("CONTROL-1", last_month_on(control.estate, day), register)])
        session.commit()

    # 6 + 3 kWh at R1, then 1 at R1 and 4 at R3 (the block position carried across), R10 once.
    assert balance(session, kit.pocket("electricity")) == Decimal("100") - Decimal("9") - Decimal("13") - Decimal("10")
    assert balance(session, kit.pocket("electricity")) == balance(session, control.pocket("electricity"))
    kinds = [kind for kind, _ in charges(session, kit.estate.id)]
    assert kinds.count("standing_charge") == 1 and kinds.count("consumption") == 3
    old = session.get(Meter, old.id)
    assert old.detached_at == closing_at and old.replaced_by_meter_id == done.new.id
    assert old.unit_id == kit.unit.id  # kept on the unit: its charges are still the unit's history


def test_replaying_the_closing_reading_posts_nothing_twice(session, kit):
    old = _history(session, kit)
    closing_at = last_month_on(kit.estate, 15)
    replace_meter(session, old, "109", closing_at, unit_meter(serial="NEW-1"), "50")
    before = session.scalar(select(func.count(LedgerTransaction.id)))
    report = ingest(session, [direct("OLD-1", closing_at, "109"), direct("OLD-1", last_month_on(kit.estate, 16), "111")])
    session.commit()
    assert report.billed == 0 and len(report.dead_letters) == 2
    assert "detached (replaced by meter NEW-1)" in report.dead_letters[0]
    assert session.scalar(select(func.count(DeadLetter.id))) == 2
    with pytest.raises(ReplacementRefused) as refused:
        replace_meter(session, session.get(Meter, old.id), "109", closing_at, unit_meter(serial="NEW-2"), "0")
    assert "already replaced by NEW-1" in refused.value.errors["closing_register"]
    assert session.scalar(select(func.count(LedgerTransaction.id))) == before


def test_a_closing_register_below_the_last_reading_is_refused_with_the_reason(session, kit):
    old = _history(session, kit)
    with pytest.raises(ReplacementRefused) as refused:
        replace_meter(session, old, "105", last_month_on(kit.estate, 15), unit_meter(serial="NEW-1"), "abc")
    errors = refused.value.errors
    assert "below the last reading, 106" in errors["closing_register"]
    assert "Enter a number" in errors["opening_register"]
    with pytest.raises(ReplacementRefused) as refused:
        replace_meter(session, old, "110", last_month_on(kit.estate, 7), unit_meter(serial="OLD-1"), "0")
    assert "last reading was at" in refused.value.errors["closing_time"]
    assert "already registered" in refused.value.errors["serial"]
    session.rollback()
    assert session.get(Meter, old.id).detached_at is None
    assert session.scalar(select(func.count(Meter.id))) == 1


def test_a_detached_meter_is_not_commanded_by_credit_control(session, kit):
    kit.estate.features = {"credit_control": True}
    session.commit()
    old = _history(session, kit)
    done = replace_meter(session, old, "109", last_month_on(kit.estate, 15), unit_meter(serial="NEW-1"), "50")
    ingest(session, [direct("NEW-1", last_month_on(kit.estate, 20), "200")])  # far below zero
    session.commit()
    topics = [c.topic for c in session.scalars(select(RelayCommand).order_by(RelayCommand.id))]
    assert topics == ["meters/NEW-1/commands"]
    assert session.get(Meter, old.id).relay_state != "off"
    assert session.get(Meter, done.new.id).relay_state == "off"


def test_errors_are_meter_errors(session, kit):
    with pytest.raises(MeterError):
        add_meter(session, kit.unit, {})


def test_a_late_reading_on_the_new_meter_and_a_second_swap_keep_the_units_month(session, kit):
    """Twice replaced in one month (A -> B -> C), with a late reading on B: still the bill of one meter."""
    old = _history(session, kit, serial="A-1")  # 100 on the 5th, 106 on the 10th
    b = replace_meter(session, old, "109", last_month_on(kit.estate, 12), unit_meter(serial="B-1"), "0").new
    ingest(session, [direct("B-1", last_month_on(kit.estate, 18), "4")])
    session.commit()
    ingest(session, [direct("B-1", last_month_on(kit.estate, 15), "1")])  # late: splits (12th, 18th]
    session.commit()
    replace_meter(session, session.get(Meter, b.id), "6", last_month_on(kit.estate, 20), unit_meter(serial="C-1"), "0")
    ingest(session, [direct("C-1", last_month_on(kit.estate, 25), "3")])
    session.commit()
    # A 9 kWh, B 6 (1 + 3 + 2), C 3: 18 kWh in the month, 10 at R1 and 8 at R3, R10 standing once.
    assert balance(session, kit.pocket("electricity")) == Decimal("100") - Decimal("10") - Decimal("24") - Decimal("10")
    session.expire_all()
    keys = session.scalars(select(LedgerTransaction.idempotency_key).where(
        LedgerTransaction.kind == "standing_charge")).all()
    assert keys == [f"standing:A-1:{last_month_on(kit.estate, 1):%Y-%m}"]
