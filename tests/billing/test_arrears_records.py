"""Arrears records (A4): the debt moves onto the record's own account; paying it down closes it."""
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.billing.arrears import ArrearsError, open_arrears, open_records, pay_arrears
from app.ledger.accounts import owner_pocket, system_account
from app.metering.ingest import ingest
from app.models import LedgerTransaction, Person
from tests.factories import make_estate_with_wallet
from tests.metering.conftest import at, balance, direct


def test_a_negative_pocket_becomes_an_arrears_record_and_is_paid_down(session, metered):
    ingest(session, [direct("23022673", at(90), "100"), direct("23022673", at(60), "175")])  # R100 - R150
    person = Person(full_name="Lerato Outgoing")
    session.add(person)
    session.flush()
    assert balance(session, metered.pocket) == Decimal("-50.00")
    record = open_arrears(session, estate=metered.estate, person=person, amount=Decimal("50"),
                          reason="Balance at move-out", source="move_out", source_ref="tenancy:1:electricity",
                          against=metered.pocket, unit=metered.unit, utility="electricity")
    session.commit()
    assert balance(session, metered.pocket) == 0 and record.outstanding == Decimal("50.00")
    again = open_arrears(session, estate=metered.estate, person=person, amount=Decimal("50"), reason="again",
                         source="move_out", source_ref="tenancy:1:electricity", against=metered.pocket)
    assert again.id == record.id and balance(session, metered.pocket) == 0  # nothing posted twice

    clearing = system_account(session, metered.estate, "clearing", "payments")
    assert pay_arrears(session, record, Decimal("30"), source=clearing, key="recovery:p1:1") == Decimal("30.00")
    assert pay_arrears(session, record, Decimal("30"), source=clearing, key="recovery:p1:1") == 0  # replay
    assert record.status == "open" and open_records(session, person_id=person.id) == [record]
    assert pay_arrears(session, record, Decimal("99"), source=clearing, key="recovery:p2:1") == Decimal("20.00")
    session.commit()
    assert record.status == "paid" and record.closed_at is not None and record.outstanding == 0
    assert open_records(session, person_id=person.id) == []
    kinds = dict(session.execute(select(LedgerTransaction.kind, func.count()).group_by(LedgerTransaction.kind)).all())
    assert kinds["arrears"] == 1 and kinds["arrears_payment"] == 2


def test_records_refuse_nothing_owed_and_units_pockets(session):
    kit = make_estate_with_wallet(session, denomination="units")
    person = Person(full_name="Units Person")
    session.add(person)
    session.flush()
    with pytest.raises(ArrearsError):
        open_arrears(session, estate=kit.estate, person=person, amount=Decimal("0"), reason="x",
                     source="manual", source_ref="a", against=kit.accounts.clearing)
    with pytest.raises(ArrearsError, match="ZAR account"):  # a kWh pocket is valued first, by the caller
        open_arrears(session, estate=kit.estate, person=person, amount=Decimal("5"), reason="x",
                     source="manual", source_ref="b", against=kit.pocket("electricity"))


def test_an_owner_pocket_is_the_units_own_and_outside_its_wallet(session, metered):
    levy = owner_pocket(session, metered.unit, "levy")
    assert owner_pocket(session, metered.unit, "levy").id == levy.id
    assert levy.wallet_id is None and levy.kind == "owner_pocket" and levy.commodity == "ZAR"
    with pytest.raises(ValueError):
        owner_pocket(session, metered.unit, "gas")
