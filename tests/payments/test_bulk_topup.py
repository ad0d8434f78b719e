"""Agents' bulk top-up (A2): plan, confirm, credit each wallet once, however often it is submitted."""
import threading
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.extensions import db
from app.ledger.accounts import open_wallet
from app.models import Account, LedgerTransaction
from app.models.moves import BulkTopup
from app.payments import bulk_topup
from app.payments.bulk_topup import BulkTopupError, UnitFilter
from tests import factories


@pytest.fixture
def block(session):
    """An estate with units A1..A3 (electricity meters, A3 also water) and B1; A2 holds R80."""
    estate = factories.make_estate(session)
    units = {}
    for number in ("A1", "A2", "A3", "B1"):
        units[number] = factories.make_unit(session, estate, number=number)
        factories.make_meter(session, units[number], utility="electricity")
    factories.make_meter(session, units["A3"], utility="water")
    for unit in units.values():
        open_wallet(session, unit)
    factories.make_topup(session, open_wallet(session, units["A2"]).pocket("electricity"), "80.00")
    session.commit()
    return estate, units


def balances(session, units, utility="electricity"):
    session.expire_all()
    return {n: open_wallet(session, u).pocket(utility).balance for n, u in units.items()
            if any(p.utility == utility for p in open_wallet(session, u).pockets)}


def test_a_filtered_batch_credits_each_wallet_once_even_when_run_twice(session, block):
    estate, units = block
    rows = bulk_topup.rows_from_filter(session, estate, "electricity", "50.00", UnitFilter(prefix="a", below=Decimal("60")))
    batch = bulk_topup.plan_bulk_topup(session, estate, rows)
    assert (batch.count, batch.total) == (2, Decimal("100.00"))  # A1 and A3; A2 holds 80, B1 is another block
    bulk_topup.run_bulk_topup(session, batch.id)
    again = bulk_topup.run_bulk_topup(session, batch.id)
    assert balances(session, units) == {"A1": Decimal("50.00"), "A2": Decimal("80.00"), "A3": Decimal("50.00"),
                                        "B1": Decimal("0")}
    assert [(r["unit"], r["outcome"]) for r in again.results] == [("A1", "credited"), ("A3", "credited")]
    float_account = session.scalar(select(Account).where(Account.code == "clearing:agent"))
    assert float_account.balance == Decimal("-100.00") and "float" in float_account.name.lower()
    assert session.scalar(select(func.count()).select_from(LedgerTransaction).where(
        LedgerTransaction.idempotency_key.like("agent:bulk:%"))) == 2


def test_a_csv_batch_lists_the_rows_it_leaves_out_with_the_reason(session, block):
    estate, units = block
    data = ("unit,utility,amount\nA1,Electricity,25\nA3,water,10.50\nZ9,electricity,5\nB1,water,5\n"
            "A1,electricity,7\nB1,electricity,-3\n").encode()
    batch = bulk_topup.plan_bulk_topup(session, estate, bulk_topup.rows_from_csv(session, estate, data))
    assert [(r["unit"], r["utility"], r["amount"]) for r in batch.rows] == [
        ("A1", "electricity", "25.00"), ("A3", "water", "10.50")]
    reasons = [(s["unit"], s["reason"]) for s in batch.skipped]
    assert reasons[0] == ("Z9", f"not a unit of {estate.name}")
    assert reasons[1] == ("B1", "unit B1 has no water meter")
    assert reasons[2] == ("A1", "this unit and utility are already in the batch")
    assert reasons[3][0] == "B1"
    bulk_topup.run_bulk_topup(session, batch.id)
    assert balances(session, units, "water") == {"A3": Decimal("10.50")}


def test_eight_concurrent_runs_of_one_batch_credit_once(app, session, block):
    estate, units = block
    batch = bulk_topup.plan_bulk_topup(session, estate, bulk_topup.rows_from_filter(
        session, estate, "electricity", "10.00", UnitFilter()))
    batch_id = batch.id
    session.commit()  # no transaction of ours is open while the threads run
    barrier = threading.Barrier(8)
    failures = []

    def run():
        with app.app_context():
            try:
                barrier.wait()
                bulk_topup.run_bulk_topup(db.session, batch_id)
            except Exception as error:  # noqa: BLE001 - the test reports it
                failures.append(repr(error))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert balances(session, units) == {"A1": Decimal("10.00"), "A2": Decimal("90.00"), "A3": Decimal("10.00"),
                                        "B1": Decimal("10.00")}
    assert session.get(BulkTopup, batch_id).credited == 4


def test_nothing_to_top_up_is_a_field_message(session, block):
    estate, _units = block
    with pytest.raises(BulkTopupError) as refused:
        bulk_topup.plan_bulk_topup(session, estate, bulk_topup.rows_from_filter(
            session, estate, "electricity", "10", UnitFilter(prefix="nope")))
    assert "units" in refused.value.errors
    with pytest.raises(BulkTopupError, match="columns"):
        bulk_topup.rows_from_csv(session, estate, b"a,b\n1,2\n")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.text(max_size=200))
def test_any_csv_is_rows_or_a_field_message(session, block, body):
    estate, _units = block
    try:
        rows = bulk_topup.rows_from_csv(session, estate, ("unit,utility,amount\n" + body).encode())
    except BulkTopupError as refused:
        assert set(refused.errors) == {"file"}
        return
    try:
        batch = bulk_topup.plan_bulk_topup(session, estate, rows)
    except BulkTopupError as refused:
        assert set(refused.errors) == {"units"}
        session.rollback()
        return
    assert batch.count + len(batch.skipped) == len(rows)
    assert batch.total == sum(Decimal(r["amount"]) for r in batch.rows)


def test_a_batch_recovers_arrears_sends_receipts_and_webhooks_per_wallet_and_keeps_caps(session, block):
    """credit_payments() does for each wallet what credit_payment() does, and a cap refuses its row."""
    from datetime import date

    from app.billing.arrears import open_arrears
    from app.settings import put_setting
    from app.ledger.accounts import system_account
    from app.models import Notification, Person, Posting, Tenancy
    from app.models.families import WalletGrant
    from app.models.payments import Payment
    from app.models.api import WebhookDelivery
    from app.notify import webhooks_out

    estate, units = block
    tenant = Person(full_name="Thandi", email="thandi@example.test", estate_id=estate.id)
    session.add(tenant)
    session.flush()
    session.add(Tenancy(unit_id=units["A1"].id, person_id=tenant.id, move_in=date(2024, 1, 1)))
    record = open_arrears(session, estate=estate, person=tenant, amount=Decimal("30"), reason="old debt",
                          source="migration", source_ref="m-1", against=system_account(
                              session, estate, "opening_balance", "migration"), unit=units["A1"])
    put_setting(session, "arrears_recovery_mode", "percent", estate.id)
    put_setting(session, "arrears_recovery_percent", "20", estate.id)
    webhooks_out.add_endpoint(session, url="https://hooks.example.test/in", events="wallet.topup",
                              estate=estate, issuer=None)
    agent = factories.make_user(session, "agent", estate=estate)
    # The agent also holds a capped grant on B1's wallet (say, a relative's): the cap binds them there.
    session.add(WalletGrant(unit_id=units["B1"].id, user_id=agent.id, level="topup", topup_daily_cap=Decimal("20")))
    session.commit()

    rows = bulk_topup.rows_from_filter(session, estate, "electricity", "50.00", UnitFilter())
    batch = bulk_topup.plan_bulk_topup(session, estate, rows, user_id=agent.id)
    done = bulk_topup.run_bulk_topup(session, batch.id, user_id=agent.id)
    outcomes = {r["unit"]: (r["outcome"], r["reason"]) for r in done.results}
    assert outcomes["B1"][0] == "skipped" and "top-up limit" in outcomes["B1"][1] and "20.00" in outcomes["B1"][1]
    assert {n for n, (o, _) in outcomes.items() if o == "credited"} == {"A1", "A2", "A3"}
    assert done.credited == 3
    # A1's top-up paid 20% (R10) of its arrears in the same transaction; the rest reached the pocket.
    payment = session.scalar(select(Payment).where(Payment.provider_ref == bulk_topup.payment_ref(
        batch.id, units["A1"].id, "electricity")))
    legs = dict(session.execute(select(Posting.account_id, Posting.amount).where(
        Posting.transaction_id == payment.transaction_id)).all())
    assert legs[record.account_id] == Decimal("10") and sum(legs.values()) == 0
    assert balances(session, units)["A1"] == Decimal("40.00")
    # The receipt job ran after the commit (inline without Redis): Thandi has her receipt by email.
    receipts = session.scalars(select(Notification).where(Notification.template == "payment_receipt")).all()
    assert [(r.to_address, r.channel) for r in receipts] == [("thandi@example.test", "email")]
    assert "10.00" in receipts[0].body  # the share that paid arrears is on the receipt
    events = session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_type == "wallet.topup")).all()
    assert sorted(e.payload["data"]["unit"] for e in events) == ["A1", "A2", "A3"]
    # A second run posts nothing more, sends no second receipt and no second event.
    bulk_topup.run_bulk_topup(session, batch.id, user_id=agent.id)
    assert session.scalar(select(func.count()).select_from(Notification).where(
        Notification.template == "payment_receipt")) == 1
    assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 3
