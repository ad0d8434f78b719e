"""Creating and editing an estate: validation by field, the currency lock, audit rows, money afterwards."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from app.estates.profile import (EstateCodeTaken, EstateError, EstateMoneyLocked, InvalidEstateField,
                                 create_estate, form_values, locked_fields, update_estate)
from app.ledger.accounts import open_wallet, system_account
from app.models import Account, AuditLog, Estate, Setting
from app.settings import get_setting
from tests import factories

GOOD = {"code": "kwa-01", "name": "Kwame Court", "country": "BJ", "currency": "XOF",
        "timezone": "Africa/Porto-Novo", "fiscal_year_start_month": "1", "wallet_denomination": "currency",
        "minimum_activation_amount": "500", "features": "1", "feature_credit_control": "1"}


def _create(session, **changes):
    return create_estate(session, {**GOOD, **changes}).estate


def test_create_estate_takes_minor_units_from_cldr_and_stores_only_chosen_settings(session):
    estate = _create(session, setting_tariff_notice_days="14", setting_brand_colour="")
    assert (estate.code, estate.currency, estate.currency_minor_units, estate.country) == ("KWA-01", "XOF", 0, "BJ")
    assert estate.minimum_activation_amount == Decimal("500")
    assert estate.feature_enabled("credit_control") and not estate.feature_enabled("statements")
    own = dict(session.execute(select(Setting.key, Setting.value).where(Setting.estate_id == estate.id)).all())
    assert own == {"tariff_notice_days": 14}, "an empty setting stays unset (the default applies)"
    created = session.scalar(select(AuditLog).where(AuditLog.action == "estate.create"))
    assert created.estate_id == estate.id and created.new["currency"] == "XOF" and created.new["currency_minor_units"] == 0
    assert create_estate(session, {**GOOD, "code": "LS-1", "currency": "LSL", "country": "LS"}).estate.currency_minor_units == 2


@pytest.mark.parametrize(("field", "typed", "message"), [
    ("code", "", "enter a short code"),
    ("code", "has space", "1 to 16 letters"),
    ("code", "-AB", "not at either end"),
    ("code", "A" * 17, "1 to 16 letters"),
    ("name", " ", "enter the estate's name"),
    ("name", "x" * 201, "at most 200 characters"),
    ("name", "a\x00b", "control characters"),
    ("country", "XX", "choose a country"),
    ("country", "EU", "choose a country"),  # a region, not a country
    ("currency", "ZZZ", "choose a currency"),
    ("currency", "ZWD", "choose a currency"),  # retired
    ("timezone", "Mars/Olympus", "choose a timezone"),
    ("fiscal_year_start_month", "13", "1 to 12"),
    ("fiscal_year_start_month", "0", "1 to 12"),
    ("fiscal_year_start_month", "March", "1 to 12"),
    ("wallet_denomination", "tokens", "choose money or units"),
    ("minimum_activation_amount", "-1", "cannot be negative"),
    ("minimum_activation_amount", "10.5", "XOF amounts have no decimals"),
    ("minimum_activation_amount", "1e3", "is not an amount"),
    ("setting_tariff_notice_days", "soon", "is not a whole number"),
    ("setting_brand_colour", "red", "is not a colour"),
    ("setting_payment_max_amount", "0", "below the minimum"),
])
def test_every_field_refuses_bad_input_with_its_own_message(session, field, typed, message):
    with pytest.raises(InvalidEstateField) as refused:
        _create(session, **{field: typed})
    assert list(refused.value.errors) == [field]
    assert message in refused.value.errors[field]
    assert session.scalar(select(Estate.id)) is None


def test_a_code_is_unique_whatever_its_case(session):
    factories.make_estate(session, code="SUN")
    with pytest.raises(EstateCodeTaken) as refused:
        _create(session, code="sun")
    assert refused.value.errors == {"code": "another estate already has the code SUN"}


def test_several_problems_are_reported_together(session):
    with pytest.raises(InvalidEstateField) as refused:
        _create(session, name="", currency="NOPE", setting_brand_colour="blue")
    assert set(refused.value.errors) == {"name", "currency", "setting_brand_colour"}


def test_edit_audits_old_and_new_values_and_clears_a_setting(session):
    estate = _create(session, setting_mpesa_paybill="400200")
    saved = update_estate(session, estate, {**form_values(session, estate), "name": "Kwame Gardens",
                                            "timezone": "Africa/Lagos", "feature_credit_control": "",
                                            "feature_statements": "1", "setting_mpesa_paybill": "",
                                            "setting_loss_threshold_percent": "20"})
    assert set(saved.changes) == {"name", "timezone", "feature_credit_control", "feature_statements",
                                  "setting_mpesa_paybill", "setting_loss_threshold_percent"}
    rows = {row.action: row for row in session.scalars(select(AuditLog).where(AuditLog.estate_id == estate.id))}
    assert rows["estate.update"].old == {"name": "Kwame Court", "timezone": "Africa/Porto-Novo"}
    assert rows["estate.update"].new["name"] == "Kwame Gardens"
    assert rows["setting.clear"].old == {"mpesa_paybill": "400200"}
    assert rows["setting.put"].new == {"loss_threshold_percent": "20"}
    features = session.scalars(select(AuditLog).where(AuditLog.action == "estate.feature")).all()
    assert sorted((tuple(r.old.items()), tuple(r.new.items())) for r in features) == [
        ((("credit_control", True),), (("credit_control", False),)),
        ((("statements", False),), (("statements", True),))]
    assert get_setting(session, "mpesa_paybill", estate.id) is None
    again = update_estate(session, estate, form_values(session, estate))
    assert again.changes == {}, "saving the form unchanged changes nothing"


def test_currency_and_denomination_lock_once_the_estate_has_a_posting(session):
    estate = _create(session)
    unit = factories.make_unit(session, estate)
    pocket = open_wallet(session, unit, ("electricity",)).pocket("electricity")
    assert locked_fields(session, estate) == {}
    update_estate(session, estate, {"currency": "EUR", "country": "FR"})  # no posting yet: allowed
    assert (estate.currency, estate.currency_minor_units, pocket.commodity) == ("EUR", 2, "EUR")
    assert estate.feature_enabled("credit_control"), "a save that did not show the flags leaves them"
    factories.make_topup(session, pocket, "10.00")
    session.commit()
    locked = locked_fields(session, estate)
    assert set(locked) == {"currency", "wallet_denomination", "code", "timezone"}
    assert "already has 2 postings in EUR" in locked["currency"]
    for change in ({"currency": "XOF"}, {"wallet_denomination": "units"}, {"code": "NEW"},
                   {"timezone": "Africa/Maseru"}):
        with pytest.raises(EstateMoneyLocked) as refused:
            update_estate(session, estate, change)
        session.rollback()
        assert list(refused.value.errors) == list(change)
    assert (estate.currency, estate.wallet_denomination, estate.code) == ("EUR", "currency", "KWA-01")
    update_estate(session, estate, {"currency": "EUR", "name": "Still editable"})  # unchanged currency is fine
    assert estate.name == "Still editable"


def test_denomination_change_before_postings_moves_idle_pockets_to_units(session):
    estate = _create(session, currency="LSL", country="LS", timezone="Africa/Maseru")
    unit = factories.make_unit(session, estate)
    water = open_wallet(session, unit, ("water",)).pocket("water")
    clearing = system_account(session, estate, "clearing", "mpesa")
    update_estate(session, estate, {"wallet_denomination": "units"})
    assert (water.commodity, clearing.commodity) == ("KL", "LSL")


def test_an_estate_created_here_takes_money_like_a_seeded_one(app, session):
    """Nothing only the seed creates is missing: a payment credits, the ledger verifies."""
    from app.ledger.verify import verify_ledger
    from app.models import Payment
    from app.payments.credit import credit_payment

    estate = _create(session, currency="ZAR", country="ZA", timezone="Africa/Johannesburg",
                     minimum_activation_amount="0")
    unit = factories.make_unit(session, estate, number="1")
    payment = Payment(provider="eft", provider_ref="REF-1", unit_id=unit.id,
                      amount=Decimal("150.00"), currency="ZAR", status="pending", utility="electricity")
    session.add(payment)
    session.flush()
    assert credit_payment(session, payment)
    session.commit()
    pocket = session.scalar(select(Account).where(Account.estate_id == estate.id, Account.kind == "pocket"))
    assert (pocket.balance, pocket.commodity) == (Decimal("150.00"), "ZAR")
    report = verify_ledger(session)
    assert report.ok, report


def test_the_base_error_carries_the_field_messages():
    error = InvalidEstateField({"name": "enter the estate's name"})
    assert isinstance(error, EstateError) and "name: enter the estate's name" in str(error)
