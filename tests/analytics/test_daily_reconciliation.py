"""Daily reconciliation (U6) on constructed faults: each is reported failing with its item named."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from app.analytics import daily_reconciliation as recon
from app.metering.ingest import ingest
from app.models import LedgerTransaction, Reading
from app.models.metering import TariffVersion
from app.models.payments import Payment, SmsMessage
from app.models.settlement import ReconciliationResult
from app.payments.credit import credit_payment
from tests.factories import make_estate_with_wallet, make_meter, make_topup, make_user
from tests.metering.conftest import direct


def _sms(txn: str, amount: str) -> str:
    return (f"{txn} Confirmed. on 9/12/18 at 8:59 AM R{amount} received from 26657755403 - Tamer Teker "
            f"26657755403.New M-Pesa balance is M387.80 Reference: 315103084.")


@pytest.fixture
def day_estate(session):
    """A ZAR estate on R2.00/kWh with a metered unit; yesterday (local) read half-hourly and billed,
    and one M-PESA payment credited yesterday with its confirmation SMS."""
    kit = make_estate_with_wallet(session)
    estate = kit.estate
    session.add(TariffVersion(estate_id=estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="flat", rates={"rate": "2.00"}))
    meter = make_meter(session, kit.unit, serial="000023022673")
    make_topup(session, kit.pocket("electricity"), "500.00", clearing=kit.accounts.clearing,
               occurred_at=datetime.now(UTC) - timedelta(days=3))
    session.commit()
    day = recon.yesterday(estate)
    start, _ = recon.day_bounds(estate, day)
    report = ingest(session, [direct(meter.serial, start + timedelta(hours=8, minutes=30 * n), f"{100 + n}.0")
                              for n in range(6)])
    session.commit()
    assert report.accepted == 6 if hasattr(report, "accepted") else True
    payment = Payment(provider="mpesa", provider_ref="QAB1CDE2FG", unit_id=kit.unit.id, amount=Decimal("10.00"),
                      status="unmatched", paid_at=start + timedelta(hours=9))
    session.add(payment)
    session.flush()
    credit_payment(session, payment)
    payment.credited_at = start + timedelta(hours=9, minutes=1)
    session.add(SmsMessage(gateway_id="g-1", from_number="MPESA", content=_sms("QAB1CDE2FG", "10.00"),
                           outcome="payment", payment_id=payment.id, received_at=start + timedelta(hours=9)))
    session.commit()
    return kit, meter, day, start


def _by_check(results):
    return {r.check: r for r in results}


def test_a_clean_day_passes_every_check(session, day_estate):
    kit, meter, day, start = day_estate
    results = _by_check(recon.reconcile_estate(session, kit.estate, day))
    assert {name: r.ok for name, r in results.items()} == {
        "readings": True, "payments": True, "mpesa": True, "koios": True, "bulk": True, "ledger": True}
    assert results["readings"].checked == 5  # the first reading has no consumption: a documented zero
    assert results["payments"].checked == 1
    assert results["ledger"].checked >= 6


def test_a_reading_with_no_bill_is_named(session, day_estate):
    kit, meter, day, start = day_estate
    session.add(Reading(meter_id=meter.id, taken_at=start + timedelta(hours=20), register=Decimal("120"),
                        consumption=Decimal("14.5")))
    session.commit()
    result = _by_check(recon.reconcile_estate(session, kit.estate, day))["readings"]
    assert not result.ok
    assert [(i["kind"], i["ref"], i["label"]) for i in result.items] == [("meter", meter.id, f"Reading on meter {meter.serial}")]
    assert "14.5 used, has no bill" in result.items[0]["detail"]


def test_payments_without_gateway_records_and_records_without_credit_are_named(session, day_estate):
    kit, meter, day, start = day_estate
    bare = Payment(provider="mpesa", provider_ref="QZZ9NOSMS", unit_id=kit.unit.id, amount=Decimal("25.00"),
                   status="unmatched", paid_at=start + timedelta(hours=10))
    waiting = Payment(provider="mpesa", provider_ref="QWAIT0001", amount=Decimal("7.00"), status="unmatched",
                      estate_id=kit.estate.id, paid_at=start + timedelta(hours=11))
    session.add_all([bare, waiting])
    session.flush()
    credit_payment(session, bare)
    bare.credited_at = start + timedelta(hours=10)
    session.add(SmsMessage(gateway_id="g-2", from_number="MPESA", content=_sms("QWAIT0001", "7.00"),
                           outcome="payment", payment_id=waiting.id, received_at=start + timedelta(hours=11)))
    session.commit()
    result = _by_check(recon.reconcile_estate(session, kit.estate, day))["payments"]
    assert not result.ok
    assert sorted((i["label"], i["detail"].split(" (")[0]) for i in result.items) == [
        ("M-PESA QWAIT0001", "confirmation SMS #2 was never credited"),
        ("M-PESA QZZ9NOSMS", "no M-PESA confirmation SMS for this payment"),
    ]


def test_a_tampered_posting_fails_the_ledger_check(session, day_estate):
    kit, meter, day, start = day_estate
    bill = session.scalar(select(LedgerTransaction).where(LedgerTransaction.kind == "consumption")
                          .order_by(LedgerTransaction.id))
    legs = sorted(bill.postings, key=lambda p: p.amount)
    session.execute(text("ALTER TABLE postings DISABLE TRIGGER postings_append_only"))
    session.execute(text("UPDATE postings SET amount = amount - 1 WHERE id = :a"), {"a": legs[0].id})
    session.execute(text("UPDATE postings SET amount = amount + 1 WHERE id = :b"), {"b": legs[1].id})
    session.execute(text("ALTER TABLE postings ENABLE TRIGGER postings_append_only"))
    session.commit()
    result = _by_check(recon.reconcile_estate(session, kit.estate, day))["ledger"]
    assert not result.ok
    assert [(i["kind"], i["ref"]) for i in result.items] == [("transaction", bill.id)]
    assert "no longer matches its hash" in result.items[0]["detail"]


def test_the_mpesa_statement_is_matched_both_ways(session, day_estate):
    kit, meter, day, start = day_estate
    local = start.astimezone(kit.estate.tz)
    csv = ("Receipt No.,Completion Time,Details,Transaction Status,Paid In,Withdrawn,Balance\n"
           f"QAB1CDE2FG,{local + timedelta(hours=9):%Y-%m-%d %H:%M:%S},Pay from 2665,Completed,10.00,,\n"
           f"QNOTOURS01,{local + timedelta(hours=12):%Y-%m-%d %H:%M:%S},Pay from 2666,Completed,30.00,,\n"
           f"QOUT000001,{local + timedelta(hours=12):%Y-%m-%d %H:%M:%S},Withdrawal,Completed,,50.00,\n")
    upload = recon.upload_mpesa_statement(session, kit.estate, csv.encode())
    assert (upload.added, upload.already, len(upload.skipped)) == (2, 0, 1)
    again = recon.upload_mpesa_statement(session, kit.estate, csv.encode())
    assert (again.added, again.already) == (0, 2)
    result = _by_check(recon.reconcile_estate(session, kit.estate, day))["mpesa"]
    assert not result.ok and [(i["label"], i["detail"]) for i in result.items] == [
        ("M-PESA QNOTOURS01", "on the statement, never credited")]
    with pytest.raises(recon.StatementError):
        recon.upload_mpesa_statement(session, kit.estate, b"Date,Amount\n")


def test_the_job_stores_the_day_and_emails_administrators_and_staff_on_failure(session, day_estate):
    from app.models import Notification
    from app.jobs import enqueue

    kit, meter, day, start = day_estate
    agent = make_user(session, "agent", estate=kit.estate)
    make_user(session, "staff")
    session.add(Reading(meter_id=meter.id, taken_at=start + timedelta(hours=20), register=Decimal("120"),
                        consumption=Decimal("1")))
    session.commit()
    run = enqueue(recon.JOB_KIND, kit.estate.id, day.isoformat(), target="test")
    assert run.status == "done", run.errors
    stored = session.scalars(select(ReconciliationResult).where(ReconciliationResult.day == day)).all()
    assert {r.check: r.ok for r in stored}["readings"] is False
    emails = session.scalars(select(Notification).where(Notification.channel == "email",
                                                        Notification.template == "daily_reconciliation")).all()
    assert len(emails) == 2 and {e.user_id for e in emails} >= {agent.id}
    assert "1 check(s) failing" in emails[0].subject


def test_the_staff_dashboard_lists_failing_items_with_links(session, day_estate, app):
    from tests.helpers import sign_in

    kit, meter, day, start = day_estate
    staff = make_user(session, "staff")
    session.commit()
    staff_client = app.test_client()
    assert sign_in(staff_client, staff.email).status_code == 302
    session.add(Reading(meter_id=meter.id, taken_at=start + timedelta(hours=20), register=Decimal("120"),
                        consumption=Decimal("3")))
    session.commit()
    recon.reconcile_estate(session, kit.estate, day)
    page = staff_client.get(f"/staff/reconciliation?estate_id={kit.estate.id}&day={day.isoformat()}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'href="/staff/meters/{meter.id}"' in html and "has no bill" in html and "1 failing" in html
    assert staff_client.get(f"/staff/reconciliation?estate_id={kit.estate.id}&day=notaday").status_code == 400
    assert staff_client.get("/staff/reconciliation?estate_id=987654").status_code == 404


def test_a_day_bill_of_the_replaced_meter_covers_the_new_meters_readings(session, day_estate):
    """The demo bills a meter once a day by serial; after a swap those bills keep the old serial."""
    from app.ledger import Entry, post

    kit, meter, day, start = day_estate
    new = make_meter(session, kit.unit, serial="000099990001")
    meter.replaced_by_meter_id = new.id
    session.add(Reading(meter_id=new.id, taken_at=start + timedelta(hours=20), register=Decimal("3"),
                        consumption=Decimal("3")))
    session.commit()
    assert not _by_check(recon.reconcile_estate(session, kit.estate, day))["readings"].ok  # no bill yet
    post(session, Entry(kit.estate.id, "consumption", f"{recon.DAY_BILL_PREFIX}{meter.serial}:{day.isoformat()}",
                        [(kit.pocket("electricity").id, Decimal("-6.00")),
                         (kit.accounts.revenue["electricity"].id, Decimal("6.00"))],
                        occurred_at=start + timedelta(hours=23)))
    session.commit()
    result = _by_check(recon.reconcile_estate(session, kit.estate, day))["readings"]
    assert result.ok, result.items
