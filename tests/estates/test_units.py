"""Units (issue 14 item 2): create and edit with every validation message, occupancy history,
account numbers from the estate's pattern, and SMS payments that quote an account number."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from app.estates import account_numbers
from app.estates.account_numbers import (
    BadPattern, assign_account_numbers, check_pattern, give_missing_account_numbers,
)
from app.estates.units import (
    AccountNumberTaken, BadOccupancy, InvalidUnitValues, UnitNumberTaken, change_occupancy, create_unit,
    occupancy_history, update_unit,
)
from app.models import AuditLog, OccupancyChange, Unit
from app.models.payments import Payment, SmsMessage
from app.payments.mpesa_sms import handle_gateway_post, match_unit
from app.settings import put_setting
from tests import factories
from tests.payments.test_mpesa_parse import DOCUMENTED

VALID = {"number": "A12", "floor_area_m2": "84.5", "address": "12 Protea Road\nMidrand",
         "latitude": "-29.3167", "longitude": "27.4833", "occupancy_status": "occupied"}


def audits(session, action):
    return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


@pytest.fixture
def estate(session):
    made = factories.make_estate(session, code="MAK", name="Makebe")
    session.commit()
    return made


def test_a_new_unit_gets_its_values_history_account_number_and_audit(session, estate):
    user = factories.make_user(session, "agent", estate=estate, password=None)
    session.commit()
    made = create_unit(session, estate, VALID, user_id=user.id)
    session.expire_all()
    unit = session.get(Unit, made.unit.id)
    assert (unit.number, unit.floor_area_m2, unit.address) == ("A12", Decimal("84.5"), "12 Protea Road\nMidrand")
    assert (unit.latitude, unit.longitude) == (Decimal("-29.316700"), Decimal("27.483300"))
    assert unit.occupancy_status == "occupied"
    assert (unit.account_number, unit.account_sequence) == ("0001MAK", 1)
    [(change, email)] = occupancy_history(session, unit)
    assert (change.status, email) == ("occupied", user.email)
    [created] = audits(session, "unit.created")
    assert created.new["number"] == "A12" and created.new["account_number"] == "0001MAK"
    assert created.estate_id == estate.id


INVALID = [
    ({"number": ""}, "number", "Enter the unit number."),
    ({"number": "   "}, "number", "Enter the unit number."),
    ({"number": "X" * 33}, "number", "A unit number has at most 32 characters."),
    ({"number": "A\x001"}, "number", "A unit number is one line of letters, digits and punctuation."),
    ({"floor_area_m2": "big"}, "floor_area_m2", "Enter the floor area in m² as a number, like 84 or 84.5."),
    ({"floor_area_m2": "1e3"}, "floor_area_m2", "Enter the floor area in m² as a number, like 84 or 84.5."),
    ({"floor_area_m2": "NaN"}, "floor_area_m2", "Enter the floor area in m² as a number, like 84 or 84.5."),
    ({"floor_area_m2": "-1"}, "floor_area_m2", "The floor area cannot be negative."),
    ({"floor_area_m2": "1000001"}, "floor_area_m2", "The floor area is at most 1 000 000 m²."),
    ({"floor_area_m2": "84.555"}, "floor_area_m2", "Give the floor area to at most 2 decimals."),
    ({"address": "x" * 501}, "address", "An address has at most 500 characters."),
    ({"address": "Road\x00 1"}, "address", "The address holds a character that cannot be stored."),
    ({"latitude": "north"}, "latitude", "Enter the latitude in decimal degrees, like -29.316700."),
    ({"longitude": "east"}, "longitude", "Enter the longitude in decimal degrees, like 27.483300."),
    ({"latitude": "90.5"}, "latitude", "The latitude is between -90 and 90 degrees."),
    ({"latitude": "-91"}, "latitude", "The latitude is between -90 and 90 degrees."),
    ({"longitude": "180.1"}, "longitude", "The longitude is between -180 and 180 degrees."),
    ({"longitude": ""}, "longitude", "Enter the longitude too, or clear the latitude."),
    ({"latitude": ""}, "latitude", "Enter the latitude too, or clear the longitude."),
    ({"occupancy_status": "demolished"}, "occupancy_status", "Choose occupied, vacant or maintenance."),
]


def test_every_invalid_value_is_refused_with_its_message(session, estate):
    # One test for all cases: each needs only the estate, and emptying the database per case is slow.
    for values, field, message in INVALID:
        with pytest.raises(InvalidUnitValues) as refused:
            create_unit(session, estate, {**VALID, **values})
        assert refused.value.errors == {field: message}, values
        session.rollback()
    assert session.scalar(select(Unit.id)) is None


def test_edge_values_are_accepted(session, estate):
    made = create_unit(session, estate, {"number": "B1", "floor_area_m2": "0", "latitude": "-90",
                                         "longitude": "180"})
    assert made.unit.floor_area_m2 == 0 and made.unit.occupancy_status == "vacant"
    assert (made.unit.latitude, made.unit.longitude) == (Decimal("-90"), Decimal("180"))


def test_a_number_the_estate_has_is_refused_ignoring_capitals_but_another_estate_may_use_it(session, estate):
    create_unit(session, estate, VALID)
    with pytest.raises(UnitNumberTaken) as refused:
        create_unit(session, estate, {**VALID, "number": "a12"})
    assert refused.value.errors == {"number": "Makebe already has a unit a12."}
    session.rollback()
    other = factories.make_estate(session)
    assert create_unit(session, other, VALID).unit.number == "A12"


def test_editing_audits_old_and_new_values_and_refuses_a_taken_number(session, estate):
    first = create_unit(session, estate, VALID).unit
    second = create_unit(session, estate, {"number": "A13"}).unit
    change = update_unit(session, second, {"number": "A14", "floor_area_m2": "70", "address": "",
                                           "latitude": "", "longitude": ""})
    assert change.changed == {"number": ("A13", "A14"), "floor_area_m2": (None, Decimal("70"))}
    [updated] = audits(session, "unit.updated")
    assert (updated.old, updated.new) == ({"number": "A13", "floor_area_m2": None},
                                          {"number": "A14", "floor_area_m2": "70"})
    with pytest.raises(UnitNumberTaken):
        update_unit(session, second, {"number": first.number})
    session.rollback()
    # Saving the same values changes nothing and writes no audit row.
    assert update_unit(session, second, {"number": "A14", "floor_area_m2": "70.00"}).changed == {}
    assert len(audits(session, "unit.updated")) == 1


def test_an_account_number_may_be_set_by_hand_unique_across_estates_and_never_cleared(session, estate):
    unit = create_unit(session, estate, VALID).unit
    other = create_unit(session, factories.make_estate(session), {"number": "Z1"}).unit
    update_unit(session, unit, {"number": "A12", "account_number": " 45 mak "})
    assert unit.account_number == "45MAK"
    with pytest.raises(AccountNumberTaken) as refused:
        update_unit(session, other, {"number": "Z1", "account_number": "45mak"})
    assert refused.value.errors == {"account_number": "Account number 45MAK is already another unit's."}
    session.rollback()
    with pytest.raises(InvalidUnitValues) as refused:
        update_unit(session, unit, {"number": "A12", "account_number": ""})
    assert refused.value.errors == {"account_number": "A unit keeps its account number once it has one: payers quote it."}
    session.rollback()
    with pytest.raises(InvalidUnitValues) as refused:
        update_unit(session, unit, {"number": "A12", "account_number": "45_MAK"})
    assert refused.value.errors == {"account_number": "An account number is letters, digits, - and / (at most 32)."}


def test_occupancy_changes_keep_history_with_who_and_are_audited(session, estate):
    user = factories.make_user(session, "staff", password=None)
    session.commit()
    unit = create_unit(session, estate, {"number": "C1"}).unit
    assert change_occupancy(session, unit, "occupied", user_id=user.id) is True
    assert change_occupancy(session, unit, "occupied", user_id=user.id) is False
    assert change_occupancy(session, unit, "maintenance", user_id=user.id) is True
    assert [(c.status, email) for c, email in occupancy_history(session, unit)] == [
        ("maintenance", user.email), ("occupied", user.email), ("vacant", None)]
    assert [(a.old, a.new) for a in audits(session, "unit.occupancy")] == [
        ({"status": "vacant"}, {"status": "occupied"}), ({"status": "occupied"}, {"status": "maintenance"})]
    with pytest.raises(BadOccupancy) as refused:
        change_occupancy(session, unit, "gone")
    assert refused.value.errors == {"status": "Choose occupied, vacant or maintenance."}
    session.rollback()
    assert session.scalar(select(OccupancyChange.id).where(OccupancyChange.status == "gone")) is None


# --- account numbers ------------------------------------------------------------------------

def test_the_sequence_continues_across_a_pattern_change(session, estate):
    assert create_unit(session, estate, {"number": "1"}).unit.account_number == "0001MAK"
    assert create_unit(session, estate, {"number": "2"}).unit.account_number == "0002MAK"
    put_setting(session, account_numbers.PATTERN_SETTING, "{code}-{seq:03d}", estate.id)
    session.commit()
    assert create_unit(session, estate, {"number": "3"}).unit.account_number == "MAK-003"


def test_a_number_another_estate_holds_is_skipped(session, estate):
    put_setting(session, account_numbers.PATTERN_SETTING, "{seq}")  # global: every estate, no code
    other = factories.make_estate(session)
    session.commit()
    assert create_unit(session, estate, {"number": "1"}).unit.account_number == "1"
    assert create_unit(session, other, {"number": "1"}).unit.account_number == "2"
    assert create_unit(session, estate, {"number": "2"}).unit.account_number == "3"


def test_bulk_assignment_numbers_new_and_old_units_in_order_and_leaves_numbered_ones(session, estate):
    numbered = create_unit(session, estate, {"number": "1"}).unit
    old = factories.make_unit(session, estate, number="2")  # made before account numbers existed
    new = [Unit(estate_id=estate.id, number=f"N{i}") for i in range(3)]
    session.add_all(new)
    given = assign_account_numbers(session, estate, [numbered, old, *new])
    session.commit()
    assert [u.account_number for u in given] == ["0002MAK", "0003MAK", "0004MAK", "0005MAK"]
    assert numbered.account_number == "0001MAK"
    assert len(audits(session, "unit.account_number")) == 5  # one per unit, numbered included
    assert len(set(session.scalars(select(Unit.account_number)))) == 5


def test_the_backfill_gives_every_unit_without_a_number_one(session, estate):
    for number in ("1", "2", "3"):
        factories.make_unit(session, estate, number=number)
    session.commit()
    assert give_missing_account_numbers(session, estate) == 3
    assert give_missing_account_numbers(session, estate) == 0
    assert sorted(session.scalars(select(Unit.account_number))) == ["0001MAK", "0002MAK", "0003MAK"]


@pytest.mark.parametrize("pattern, message", [
    ("", "Enter a pattern, such as {seq:04d}{code}."),
    ("{code}", "The pattern must contain {seq}, so every unit gets its own number."),
    ("{seq", "Write placeholders in single braces, such as {seq:04d}{code}."),
    ("{seq} {code}", "Besides placeholders a pattern may hold only letters, digits, - and /."),
    ("{seq}{name}", "The placeholders are {seq} (the sequence, e.g. {seq:04d}) and {code} (the estate code)."),
    ("{seq.real}", "The placeholders are {seq} (the sequence, e.g. {seq:04d}) and {code} (the estate code)."),
    ("{seq!r}", "The placeholders are {seq} (the sequence, e.g. {seq:04d}) and {code} (the estate code)."),
    ("{seq:>10}", "Give {seq} a width such as {seq:04d} (4 digits, zero-padded), or none."),
    ("{seq}{code:5}", "{code} takes no width; write it as {code}."),
    ("X" * 40 + "{seq}", "The pattern makes numbers longer than 32 characters."),
])
def test_a_pattern_that_cannot_make_numbers_is_refused(pattern, message):
    with pytest.raises(BadPattern) as refused:
        check_pattern(pattern)
    assert refused.value.errors == {"account_number_pattern": message}


@pytest.mark.parametrize("pattern", ["{seq:04d}{code}", "{seq}", "{code}-{seq:05d}", "TP/{seq:4d}", "{seq:d}"])
def test_good_patterns_are_accepted(pattern):
    assert check_pattern(pattern) == pattern


# --- SMS payments quoting an account number -------------------------------------------------

def test_an_sms_payment_quoting_the_account_number_credits_that_unit(session):
    kit = factories.make_estate_with_wallet(session, currency="LSL", code="MAK")
    factories.make_meter(session, kit.unit)
    assign_account_numbers(session, kit.estate, [kit.unit])
    session.commit()
    # Lower-case and nobody's phone: only the account number names the unit.
    text = DOCUMENTED.replace("26657755403", "26650009999").replace("315103084", "0001mak")
    handle_gateway_post(session, {"messages": [{"id": "sms-1", "from": "MPESA", "content": text}]})
    session.expire_all()
    payment = session.scalar(select(Payment))
    assert (payment.status, payment.unit_id) == ("credited", kit.unit.id)
    assert session.scalar(select(SmsMessage.reason)) == "matched by reference 0001MAK"
    assert kit.pocket("electricity").balance == Decimal("1.00")
    # Typed with a space, the account number still names the unit.
    spaced = text.replace("0001mak", "0001 mak").replace("5L956Z39DJ", "5L956Z39DK")
    assert spaced != text and spaced.endswith("Reference: 0001 mak.")
    handle_gateway_post(session, {"messages": [{"id": "sms-2", "from": "MPESA", "content": spaced}]})
    session.expire_all()
    second = session.scalar(select(Payment).where(Payment.provider_ref == "5L956Z39DK"))
    assert (second.status, second.unit_id, second.reference) == ("credited", kit.unit.id, "0001MAK")
    assert kit.pocket("electricity").balance == Decimal("2.00")


def test_a_reference_matches_an_account_number_ignoring_spaces_and_capitals(session):
    estate = factories.make_estate(session, code="MAK")
    unit = factories.make_unit(session, estate, number="7")
    assign_account_numbers(session, estate, [unit])
    session.commit()
    assert match_unit(session, " 0001 mak ", None)[0] is unit
    assert match_unit(session, "0002MAK", None)[0] is None


def test_supply_notices_quote_the_account_number_as_the_mpesa_account(app, session):
    from app.metering.credit_control import MPESA_PAYBILL_KEY, topup_channels

    estate = factories.make_estate(session, code="MAK")
    old, new = factories.make_unit(session, estate, number="1"), factories.make_unit(session, estate, number="2")
    assign_account_numbers(session, estate, [new])
    put_setting(session, MPESA_PAYBILL_KEY, "400200", estate.id)
    session.commit()
    with app.test_request_context():
        assert topup_channels(session, estate, new)[-1] == "by M-PESA to paybill 400200, account 0001MAK"
        assert topup_channels(session, estate, old)[-1] == "by M-PESA to paybill 400200, account MAK-1"
