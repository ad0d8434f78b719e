"""Daily reconciliation of a SparkMeter estate: our credit pushes against Koios' payments, both ways."""
from datetime import timedelta
from decimal import Decimal

import pytest

from app.analytics import daily_reconciliation as recon
from app.models.payments import Payment
from app.models.sources import KoiosPayment
from app.payments.credit import credit_payment
from tests.factories import make_estate_with_wallet, make_meter, make_user


@pytest.fixture
def minigrid(session):
    """An LSL estate whose unit is metered by SparkMeter; `pay(ref, amount, push=...)` credits an EFT
    payment yesterday and records its push (no job runs: the push's outcome is set as told)."""
    kit = make_estate_with_wallet(session, currency="LSL")
    make_meter(session, kit.unit, protocol="sparkmeter", serial="SM010001")
    session.commit()
    day = recon.yesterday(kit.estate)
    start, _ = recon.day_bounds(kit.estate, day)

    def pay(ref: str, amount: str, push: str | None = "pushed", hour: int = 9) -> Payment:
        payment = Payment(provider="eft", provider_ref=ref, unit_id=kit.unit.id, amount=Decimal(amount),
                          status="to_confirm", paid_at=start + timedelta(hours=hour),
                          credited_at=start + timedelta(hours=hour, minutes=1))
        session.add(payment)
        session.flush()
        credit_payment(session, payment)
        session.info["jobs_after_commit"] = [job for job in session.info.get("jobs_after_commit", [])
                                             if job[1] != "vendor_credit_push"]
        payment.vendor_push_status = push
        payment.vendor_push_result = "Koios refused the payment (422): unknown customer" if push == "failed" else None
        session.flush()
        return payment

    def listed(koios_id: str, amount: str, payment: Payment | None = None, external_id: str | None = None,
               hour: int = 9) -> KoiosPayment:
        row = KoiosPayment(koios_id=koios_id, origin="meterwise" if payment else "vendor",
                           customer_code="C-SM010001", amount=Decimal(amount), currency="LSL",
                           paid_at=start + timedelta(hours=hour, minutes=2),
                           external_id=external_id or (f"meterwise:{payment.id}" if payment else None),
                           payment_id=payment.id if payment else None, estate_id=kit.estate.id,
                           unit_id=kit.unit.id, meter_serial="SM010001")
        session.add(row)
        session.flush()
        return row

    return kit, day, pay, listed


def _koios(session, kit, day):
    return {r.check: r for r in recon.reconcile_estate(session, kit.estate, day)}["koios"]


def test_matched_pushes_pass_and_vendor_payments_are_counted(session, minigrid):
    kit, day, pay, listed = minigrid
    first, second = pay("FNB-1", "50.00"), pay("FNB-2", "20.00", hour=23)
    listed("kp-1", "50.00", first)
    listed("kp-2", "20.00", second, hour=25)  # Koios dated it after midnight: matched by its id all the same
    listed("kv-9", "15.00")  # paid at a SparkMeter cash agent
    session.commit()
    result = _koios(session, kit, day)
    assert result.ok and result.checked == 2 and result.items == []
    assert result.summary == "2 checked, all matched; 1 paid at SparkMeter itself (recorded, not ours to push)"


def test_each_constructed_fault_is_named_both_ways(session, minigrid):
    kit, day, pay, listed = minigrid
    lost = pay("FNB-LOST", "30.00")  # pushed, Koios never listed it
    failed = pay("FNB-FAIL", "40.00", push="failed")
    short = pay("FNB-SHORT", "60.00")
    listed("kp-short", "6.00", short)
    twice = pay("FNB-TWICE", "10.00")
    listed("kp-a", "10.00", twice)
    listed("kp-b", "10.00", twice)
    stray = listed("kp-stray", "25.00", external_id="meterwise:999999")  # our external id, no such push
    unsure = pay("FNB-UNSURE", "15.00", push="failed")  # the answer was lost, yet Koios has it
    listed("kp-unsure", "15.00", unsure)
    session.commit()
    result = _koios(session, kit, day)
    assert not result.ok and result.checked == 6
    found = {(i["kind"], i["ref"]): i["detail"] for i in result.items}
    assert found == {
        ("payment", lost.id): f"pushed to SparkMeter, but Koios lists no payment with its external id (meterwise:{lost.id})",
        ("payment", failed.id): "the push to SparkMeter failed: Koios refused the payment (422): unknown customer "
                                f"(meterwise:{failed.id})",
        ("payment", short.id): "Koios kp-short has M 6.00, credited M 60.00",
        ("payment", twice.id): "Koios lists it 2 times (kp-a, kp-b): credited twice at SparkMeter",
        ("koios", stray.koios_id): "Koios lists M 25.00 under our external id meterwise:999999 (customer C-SM010001), "
                                   "but we never pushed it",
        ("payment", unsure.id): "Koios kp-unsure lists it, but our push is recorded as failed",
    }
    assert result.summary == "6 of 6 do not match"


def test_a_koios_copy_of_a_payment_no_longer_credited_here_fails(session, minigrid):
    kit, day, pay, listed = minigrid
    earlier = pay("FNB-OLD", "80.00", hour=-30)  # credited the day before, Koios dated it in this day
    earlier.status = "failed"
    listed("kp-old", "80.00", earlier)
    session.commit()
    result = _koios(session, kit, day)
    assert [(i["label"], i["detail"]) for i in result.items] == [
        ("Koios kp-old", f"Koios has our push of payment #{earlier.id}, which is failed here")]


def test_an_estate_without_sparkmeter_passes_saying_why(session):
    kit = make_estate_with_wallet(session)
    session.commit()
    result = _koios(session, kit, recon.yesterday(kit.estate))
    assert result.ok and result.summary == "no SparkMeter meters in this estate"


def test_the_dashboard_shows_the_check_and_links_its_items(session, minigrid, app):
    from tests.helpers import sign_in

    kit, day, pay, listed = minigrid
    lost = pay("FNB-LOST", "30.00")
    listed("kp-stray", "25.00", external_id="meterwise:999999")
    staff = make_user(session, "staff")
    session.commit()
    recon.reconcile_estate(session, kit.estate, day)
    client = app.test_client()
    assert sign_in(client, staff.email).status_code == 302
    html = client.get(f"/staff/reconciliation?estate_id={kit.estate.id}&day={day.isoformat()}").get_data(as_text=True)
    assert "Pushes vs Koios payments" in html and 'id="check-koios"' in html
    assert "EFT FNB-LOST" in html and f"/staff/payments?estate_id={kit.estate.id}" in html
    assert 'href="/staff/sources#koios-payment-list">Koios kp-stray</a>' in html


def test_a_reversed_payment_must_be_reversed_at_sparkmeter_too(session, minigrid):
    from app.models.corrections import Correction

    kit, day, pay, listed = minigrid
    staff = make_user(session, "staff")
    early = pay("FNB-EARLY", "12.00", push=None)  # reversed before it was ever pushed
    stuck = pay("FNB-STUCK", "18.00")
    listed("kp-stuck", "18.00", stuck)
    for payment, vendor_status in ((early, "none"), (stuck, "failed")):
        payment.status = "reversed"
        session.add(Correction(estate_id=kit.estate.id, kind="reverse", transaction_id=payment.transaction_id,
                               payment_id=payment.id, reason="posted twice", amount=payment.amount, status="done",
                               requested_by_user_id=staff.id, vendor_status=vendor_status))
    session.commit()
    result = _koios(session, kit, day)
    assert [(i["ref"], i["detail"]) for i in result.items] == [
        (stuck.id, "reversed here, the reversal at SparkMeter is failed")]
