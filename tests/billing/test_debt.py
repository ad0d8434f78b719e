"""Arrears and debt (A4): aging buckets, credit limits in credit control, recovery on top-up."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from app.billing.arrears import open_arrears
from app.billing.debt import bucket_of, debts, set_pocket_limit, unit_debts
from app.billing.recovery import plan_recovery
from app.ledger.accounts import system_account
from app.metering.credit_control import after_pocket_change
from app.models import Account, LedgerTransaction, Person, Posting, Tenancy
from app.models.arrears import ArrearsRecord
from app.models.metering import RelayCommand, TariffVersion
from app.models.payments import Payment
from app.payments.credit import credit_payment
from app.settings import put_setting
from tests.factories import make_estate_with_wallet, make_meter, make_topup, unique


def local_noon(estate, days_ago: int, today: date) -> datetime:
    """Noon, local time in the estate, `days_ago` local days before `today`."""
    day = today - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, 12, tzinfo=estate.tz).astimezone(UTC)


def spend(session, kit, amount: str, moment: datetime, utility: str = "electricity"):
    """A charge out of the pocket at `moment` (as billing posts it)."""
    make_topup(session, kit.accounts.revenue[utility], amount, clearing=kit.pocket(utility), occurred_at=moment)


@pytest.mark.parametrize("days,bucket", [(0, "current"), (29, "current"), (30, "30"), (31, "30"), (59, "30"),
                                         (60, "60"), (89, "60"), (90, "90"), (119, "90"), (120, "120")])
def test_bucket_boundaries(days, bucket):
    assert bucket_of(days) == bucket


def test_in_debt_since_is_the_last_crossing_below_zero_in_local_days(session):
    # Kiribati-like far-east zone: the local day differs from the UTC day around midnight.
    kit = make_estate_with_wallet(session, timezone="Pacific/Kiritimati")
    estate = kit.estate
    today = date(2026, 6, 30)
    now = datetime(2026, 6, 30, 10, tzinfo=estate.tz).astimezone(UTC)
    make_topup(session, kit.pocket(), "50", clearing=kit.accounts.clearing, occurred_at=local_noon(estate, 100, today))
    spend(session, kit, "80", local_noon(estate, 95, today))  # below zero on day -95
    make_topup(session, kit.pocket(), "40", clearing=kit.accounts.clearing, occurred_at=local_noon(estate, 70, today))
    # back above zero on day -70; below again 31 local days ago, just after local midnight
    day = today - timedelta(days=31)
    crossing = datetime(day.year, day.month, day.day, 0, 5, tzinfo=estate.tz).astimezone(UTC)
    spend(session, kit, "30", crossing)
    spend(session, kit, "5", local_noon(estate, 3, today))
    session.commit()
    [found] = debts(session, [estate], today=today, now=now)
    assert found.kind == "pocket" and found.owed == Decimal("25.00")
    assert found.since == day and found.days == 31 and found.bucket == "30"
    assert crossing.date() != day  # the UTC date of the crossing is another day


def test_records_of_every_source_age_alike_and_sum_per_unit(session):
    kit = make_estate_with_wallet(session)
    person = Person(full_name="Thandi Debtor")
    session.add(person)
    session.flush()
    today = date(2026, 6, 30)
    opening = system_account(session, kit.estate, "opening_balance", "migration")
    for source, days, amount in (("levy", 60, "100"), ("migration", 90, "40"), ("manual", 29, "5")):
        open_arrears(session, estate=kit.estate, person=person, amount=Decimal(amount), reason=source,
                     source=source, source_ref=unique("ref"), against=opening, unit=kit.unit,
                     occurred_at=local_noon(kit.estate, days, today))
    session.commit()
    found = debts(session, [kit.estate], today=today, now=local_noon(kit.estate, 0, today))
    assert [(d.source, d.bucket) for d in found] == [("migration", "90"), ("levy", "60"), ("manual", "current")]
    total = unit_debts(found)[kit.unit.id]
    assert total.owed == Decimal("145.00") and total.days == 90


def _credit_control_unit(session, **options):
    kit = make_estate_with_wallet(session, features={"credit_control": True}, **options)
    session.add(TariffVersion(estate_id=kit.estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="flat", rates={"rate": "2.00"}))
    meter = make_meter(session, kit.unit)
    meter.relay_state = "on"
    return kit, meter


def test_a_pocket_credit_limit_lets_it_go_that_far_below_zero(session):
    kit, meter = _credit_control_unit(session)
    spend(session, kit, "30", datetime.now(UTC) - timedelta(hours=1))  # -30
    session.flush()
    set_pocket_limit(session, kit.pocket(), "50")
    after_pocket_change(session, [kit.pocket().id])
    assert meter.relay_state == "on"  # -30 is within a limit of 50
    spend(session, kit, "20", datetime.now(UTC))  # -50: at the limit
    after_pocket_change(session, [kit.pocket().id])
    assert meter.relay_state == "off"
    set_pocket_limit(session, kit.pocket(), "60")  # a larger limit lets supply back on
    after_pocket_change(session, [kit.pocket().id])
    assert meter.relay_state == "on"
    set_pocket_limit(session, kit.pocket(), "")  # back to the estate default, 0
    after_pocket_change(session, [kit.pocket().id])
    assert meter.relay_state == "off"
    put_setting(session, "credit_limit", "100", kit.estate.id)
    after_pocket_change(session, [kit.pocket().id])
    assert meter.relay_state == "on"
    states = session.scalars(select(RelayCommand.state).order_by(RelayCommand.id)).all()
    assert states == ["off", "on", "off", "on"]


def _tenant_payment(session, kit, amount: str, ref: str | None = None) -> Payment:
    payment = Payment(provider="eft", provider_ref=ref or unique("EFT"), unit_id=kit.unit.id, utility="electricity",
                      amount=Decimal(amount), status="pending", paid_at=datetime.now(UTC))
    session.add(payment)
    session.flush()
    return payment


def _two_records(session, kit, amounts=("30", "100")):
    person = Person(full_name="Sipho Tenant")
    session.add(person)
    session.flush()
    session.add(Tenancy(unit_id=kit.unit.id, person_id=person.id, move_in=date(2020, 1, 1)))
    opening = system_account(session, kit.estate, "opening_balance", "migration")
    older = open_arrears(session, estate=kit.estate, person=person, amount=Decimal(amounts[0]), reason="old",
                         source="migration", source_ref=unique("m"), against=opening, unit=kit.unit,
                         occurred_at=datetime(2025, 1, 1, tzinfo=UTC))
    # the tenant's own record without a unit (a levy, say) is paid from this unit's top-ups too
    newer = open_arrears(session, estate=kit.estate, person=person, amount=Decimal(amounts[1]), reason="levy",
                         source="levy", source_ref=unique("l"), against=opening,
                         occurred_at=datetime(2025, 6, 1, tzinfo=UTC))
    return older, newer


def test_recovery_pays_the_oldest_record_first_in_the_topup_transaction(session):
    kit = make_estate_with_wallet(session)
    older, newer = _two_records(session, kit)
    put_setting(session, "arrears_recovery_mode", "percent", kit.estate.id)
    put_setting(session, "arrears_recovery_percent", "40", kit.estate.id)
    payment = _tenant_payment(session, kit, "100.00")
    assert credit_payment(session, payment)
    session.commit()
    legs = dict(session.execute(select(Posting.account_id, Posting.amount).where(
        Posting.transaction_id == payment.transaction_id)).all())
    assert legs[older.account_id] == Decimal("30") and legs[newer.account_id] == Decimal("10")
    assert legs[kit.pocket().id] == Decimal("60") and sum(legs.values()) == 0
    assert older.status == "paid" and newer.status == "open" and newer.outstanding == Decimal("90")
    memo = session.get(LedgerTransaction, payment.transaction_id).memo
    assert memo.endswith("R 40.00 paid arrears")
    assert not credit_payment(session, payment)  # a replay posts nothing and recovers nothing more
    assert newer.outstanding == Decimal("90")


def test_fixed_recovery_never_takes_more_than_is_owed_or_paid(session):
    kit = make_estate_with_wallet(session)
    older, newer = _two_records(session, kit, ("3", "2"))
    put_setting(session, "arrears_recovery_mode", "fixed", kit.estate.id)
    put_setting(session, "arrears_recovery_fixed", "20", kit.estate.id)
    payment = _tenant_payment(session, kit, "8")
    credit_payment(session, payment)
    session.commit()
    assert older.status == newer.status == "paid"
    assert session.get(Account, kit.pocket().id).balance == Decimal("3")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.integers(min_value=1, max_value=10**7), percent=st.integers(min_value=0, max_value=1000),
       owed=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=3))
def test_xof_recovery_splits_into_whole_francs_that_sum_to_the_payment(session, amount, percent, owed):
    kit = make_estate_with_wallet(session, currency="XOF")
    opening = system_account(session, kit.estate, "opening_balance", "migration")
    person = Person(full_name="Awa")
    session.add(person)
    session.flush()
    records = [open_arrears(session, estate=kit.estate, person=person, amount=Decimal(o), reason="x", source="manual",
                            source_ref=unique("x"), against=opening, unit=kit.unit,
                            occurred_at=datetime(2025, 1, 1 + i, tzinfo=UTC)) for i, o in enumerate(owed)]
    put_setting(session, "arrears_recovery_mode", "percent", kit.estate.id)
    put_setting(session, "arrears_recovery_percent", str(Decimal(percent) / 10), kit.estate.id)
    recovery = plan_recovery(session, kit.estate, kit.unit, Decimal(amount))
    share = Decimal(amount) * Decimal(percent) / 1000
    assert all(value == value.to_integral_value() and value > 0 for _, value in recovery.shares)
    assert recovery.total == min(int(share), sum(owed)) <= amount
    # oldest first: every record before the last one paid is paid in full
    paid = [record for record, _ in recovery.shares]
    assert paid == records[:len(paid)]
    assert all(value == record.outstanding for record, value in recovery.shares[:-1])
    session.rollback()
