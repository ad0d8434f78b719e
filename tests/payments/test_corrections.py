"""Staff corrections (issue 14 item 7): a reversal is the exact mirror of its transaction and
brings the balances back; above the estate threshold a second, different staff member
approves; a payment credited to the wrong unit moves in one transaction (or not at all);
on a SparkMeter estate the Koios push is reversed too, once."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.extensions import db
from app.models import Account, AuditLog, LedgerTransaction, Unit
from app.models.corrections import Correction
from app.models.payments import Payment
from app.payments import PaymentError
from app.payments.corrections import (NotReversible, ReasonRequired, SelfApproval, approve_correction,
                                      request_reversal)
from app.payments.credit import credit_payment
from app.settings import put_setting
from tests import factories
from tests.emulators import serving
from tests.helpers import csrf_from, make_login


@dataclass
class Book:
    estate_id: int
    unit_id: int
    other_unit_id: int
    small_tx: int        # R 200 credited to unit (below the threshold)
    large_tx: int        # R 1 500 credited to unit (above the R 1 000 default)
    small_payment: int
    staff: int
    other_staff: int
    staff_email: str
    other_staff_email: str


def _credit(s, unit: Unit, ref: str, amount: str) -> Payment:
    payment = Payment(provider="eft", provider_ref=ref, amount=Decimal(amount), status="to_confirm",
                      unit_id=unit.id, estate_id=unit.estate_id, utility="electricity",
                      paid_at=datetime(2026, 11, 20, 9, tzinfo=UTC))
    s.add(payment)
    s.flush()
    credit_payment(s, payment)
    return payment


@pytest.fixture
def book(committed) -> Book:
    with committed() as s:
        kit = factories.make_estate_with_wallet(s)
        other = factories.make_unit(s, kit.estate)
        factories.make_wallet(s, other)
        small = _credit(s, kit.unit, "BANK-200", "200.00")
        large = _credit(s, kit.unit, "BANK-1500", "1500.00")
        staff, other_staff = make_login(s, "staff"), make_login(s, "staff")
        return Book(kit.estate.id, kit.unit.id, other.id, small.transaction_id, large.transaction_id,
                    small.id, staff.id, other_staff.id, staff.email, other_staff.email)


def _pocket_balance(unit_id: int) -> Decimal:
    from app.models import Wallet
    return db.session.scalar(select(Account.balance).join(Wallet, Wallet.id == Account.wallet_id)
                             .where(Wallet.unit_id == unit_id, Account.utility == "electricity"))


def test_reversal_posts_the_exact_mirror_and_the_balances_return(app, book):
    with app.app_context():
        before = {a.id: a.balance for a in db.session.scalars(select(Account))}
        original = [(p.account_id, p.amount) for p in db.session.get(LedgerTransaction, book.small_tx).postings]
        outcome = request_reversal(db.session, book.small_tx, "  Deposit   recorded twice ", user_id=book.staff)
        reversal = db.session.get(LedgerTransaction, outcome.correction.reversal_transaction_id)
        assert sorted((p.account_id, p.amount) for p in reversal.postings) == sorted((a, -x) for a, x in original)
        assert reversal.reverses_id == book.small_tx and "Deposit recorded twice" in reversal.memo
        after = {a.id: a.balance for a in db.session.scalars(select(Account))}
        for account_id, amount in original:
            assert after[account_id] == before[account_id] - amount
        assert _pocket_balance(book.unit_id) == Decimal("1500")
        payment = db.session.get(Payment, book.small_payment)
        assert (payment.status, payment.status_reason) == ("reversed", "Deposit recorded twice")
        assert db.session.scalar(select(func.count()).select_from(AuditLog)
                                 .where(AuditLog.action == "correction.reverse")) == 1

        with pytest.raises(NotReversible, match="already reversed"):
            request_reversal(db.session, book.small_tx, "again", user_id=book.other_staff)
        db.session.rollback()
        with pytest.raises(NotReversible, match="itself the reversal"):
            request_reversal(db.session, reversal.id, "undo the undo", user_id=book.staff)
        db.session.rollback()
        with pytest.raises(ReasonRequired):
            request_reversal(db.session, book.large_tx, " \n ", user_id=book.staff)
        db.session.rollback()
        db.session.remove()


def test_above_the_threshold_a_second_staff_member_approves(app, book):
    with app.app_context():
        outcome = request_reversal(db.session, book.large_tx, "Wrong amount keyed", user_id=book.staff)
        assert outcome.pending and outcome.correction.reversal_transaction_id is None
        assert _pocket_balance(book.unit_id) == Decimal("1700")  # nothing posted yet
        with pytest.raises(NotReversible, match="already waiting"):
            request_reversal(db.session, book.large_tx, "twice", user_id=book.other_staff)
        db.session.rollback()
        with pytest.raises(SelfApproval):
            approve_correction(db.session, outcome.correction.id, user_id=book.staff)
        db.session.rollback()
        done = approve_correction(db.session, outcome.correction.id, user_id=book.other_staff)
        assert done.correction.status == "done" and done.correction.decided_by_user_id == book.other_staff
        assert _pocket_balance(book.unit_id) == Decimal("200")
        db.session.remove()


def test_the_threshold_is_an_estate_setting(app, book, committed):
    with committed() as s:
        put_setting(s, "reversal_approval_threshold", "100", book.estate_id)
    with app.app_context():
        assert request_reversal(db.session, book.small_tx, "Bank recall", user_id=book.staff).pending
        db.session.remove()


def test_reassignment_moves_the_money_to_the_right_unit(app, book):
    with app.app_context():
        outcome = request_reversal(db.session, book.small_tx, "Quoted the neighbour's unit", user_id=book.staff,
                                   target_unit_id=book.other_unit_id, target_utility="electricity")
        assert (_pocket_balance(book.unit_id), _pocket_balance(book.other_unit_id)) == (Decimal("1500"), Decimal("200"))
        old = db.session.get(Payment, book.small_payment)
        new = db.session.get(Payment, outcome.correction.new_payment_id)
        assert old.status == "reversed" and new.status == "credited"
        assert (new.unit_id, new.reassigned_from_id, new.idempotency_key) == (book.other_unit_id, old.id,
                                                                              "eft:BANK-200/R1")
        # The right unit's tenants get a receipt as for any credit (credit_payment's rules).
        assert db.session.get(LedgerTransaction, new.transaction_id).idempotency_key == "eft:BANK-200/R1"
        db.session.remove()


def test_a_failed_reassignment_leaves_nothing_half_done(app, book, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise PaymentError("the payment ceiling says no")
    monkeypatch.setattr("app.payments.credit.credit_payment", refuse)
    with app.app_context():
        transactions = db.session.scalar(select(func.count()).select_from(LedgerTransaction))
        with pytest.raises(PaymentError, match="ceiling"):
            request_reversal(db.session, book.small_tx, "Quoted the neighbour's unit", user_id=book.staff,
                             target_unit_id=book.other_unit_id)
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == transactions
        assert db.session.scalar(select(func.count()).select_from(Correction)) == 0
        assert db.session.get(Payment, book.small_payment).status == "credited"
        assert _pocket_balance(book.unit_id) == Decimal("1700")
        db.session.remove()


# --- SparkMeter (Koios emulator) ---------------------------------------------------------

@pytest.fixture
def koios_estate(app, committed, monkeypatch):
    from tests.emulators.koios import build, create_app
    emulator = build(sites=1, meters_per_site=2)
    emulator.api_key, emulator.api_secret = "k", "s"
    first, second = emulator.meters[emulator.sites[0]]
    with committed() as s:
        kit = factories.make_estate_with_wallet(s, currency="LSL")
        other = factories.make_unit(s, kit.estate)
        factories.make_wallet(s, other)
        factories.make_meter(s, kit.unit, protocol="sparkmeter", serial=first)
        factories.make_meter(s, other, protocol="sparkmeter", serial=second)
        put_setting(s, "sparkmeter_customer_code", "C-{serial}", kit.estate.id)
        staff = make_login(s, "staff")
        ids = (kit.unit.id, other.id, staff.id)
    with serving(create_app(emulator)) as base:
        monkeypatch.setitem(app.config, "KOIOS_URL", base)
        monkeypatch.setitem(app.config, "KOIOS_API_KEY", "k")
        monkeypatch.setitem(app.config, "KOIOS_API_SECRET", "s")
        yield emulator, ids, (first, second)


def _pushed_payment(unit_id: int) -> Payment:
    unit = db.session.get(Unit, unit_id)
    payment = _credit(db.session, unit, "MPESA-77", "25.00")
    db.session.commit()  # the push job runs inline once this commits
    db.session.refresh(payment)
    assert payment.vendor_push_status == "pushed"
    return payment


def test_reversing_a_sparkmeter_payment_reverses_its_koios_push_once(app, koios_estate):
    from app.jobs import REGISTRY
    from app.payments.vendor_credit import reverse_vendor_payment
    emulator, (unit_id, _other, staff), _serials = koios_estate
    with app.app_context():
        payment = _pushed_payment(unit_id)
        outcome = request_reversal(db.session, payment.transaction_id, "Paid at the wrong kiosk", user_id=staff)
        correction = db.session.get(Correction, outcome.correction.id)
        db.session.refresh(correction)
        assert correction.vendor_status == "reversed", correction.vendor_result
        reversal = emulator.payments[f"meterwise:reversal:{payment.id}"]
        assert reversal["amount"] == "-25.00" and emulator.payments[f"meterwise:{payment.id}"]["reversed_by"]
        # A retry (staff, or the job run again after a lost answer) finds it and sends nothing new.
        correction.vendor_status = "failed"
        db.session.commit()
        assert reverse_vendor_payment(db.session, correction).ok
        correction.vendor_status = "queued"
        db.session.commit()
        REGISTRY["vendor_credit_reversal"](db.session, None, correction.id)
        assert len([p for p in emulator.payments.values() if p.get("reverses")]) == 1
        assert "Koios reversal" in correction.vendor_result
        db.session.remove()


def test_reassignment_pushes_the_credit_to_the_new_units_meter(app, koios_estate):
    emulator, (unit_id, other_id, staff), (first, second) = koios_estate
    with app.app_context():
        payment = _pushed_payment(unit_id)
        outcome = request_reversal(db.session, payment.transaction_id, "Wrong meter number quoted", user_id=staff,
                                   target_unit_id=other_id)
        new_id, old_id = outcome.correction.new_payment_id, payment.id
        db.session.remove()
    pushed = emulator.payments[f"meterwise:{new_id}"]
    assert (pushed["customer_code"], pushed["amount"]) == (f"C-{second}", "25.00")
    assert emulator.payments[f"meterwise:reversal:{old_id}"]["customer_code"] == f"C-{first}"


# --- the pages -----------------------------------------------------------------------------

def test_staff_reverse_from_the_transaction_page_and_approve_on_the_corrections_page(app, book, login):
    asker, approver = login(book.staff_email), login(book.other_staff_email)
    page = asker.get(f"/staff/transactions/{book.small_tx}")
    assert page.status_code == 200 and "Reverse" in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    refused = asker.post(f"/staff/transactions/{book.small_tx}/reverse",
                         data={"csrf_token": token, "action": "reverse", "reason": ""})
    assert refused.status_code == 400 and "Say why" in refused.get_data(as_text=True)
    done = asker.post(f"/staff/transactions/{book.small_tx}/reverse",
                      data={"csrf_token": token, "action": "reverse", "reason": "Bank recalled it"},
                      follow_redirects=True)
    assert "reversed by" in done.get_data(as_text=True)

    asker.post(f"/staff/transactions/{book.large_tx}/reverse",
               data={"csrf_token": token, "action": "reassign", "reason": "Neighbour's unit",
                     "unit_id": str(book.other_unit_id), "utility": "electricity"})
    with app.app_context():
        correction_id = db.session.scalar(select(Correction.id).where(Correction.status == "pending"))
        db.session.remove()
    own = asker.get("/staff/corrections").get_data(as_text=True)
    assert "another staff member approves" in own
    assert asker.post(f"/staff/corrections/{correction_id}/approve",
                      data={"csrf_token": token}).status_code == 400
    other_token = csrf_from(approver.get("/staff/corrections").get_data(as_text=True))
    approved = approver.post(f"/staff/corrections/{correction_id}/approve", data={"csrf_token": other_token},
                             follow_redirects=True)
    assert "moved to unit" in approved.get_data(as_text=True)
    with app.app_context():
        assert _pocket_balance(book.other_unit_id) == Decimal("1500")
        db.session.remove()
    csv = approver.get("/staff/corrections?format=csv&table=recent")
    assert csv.mimetype == "text/csv"
    lines = csv.get_data(as_text=True).splitlines()
    assert len(lines) == 3 and "Neighbour's unit" in csv.get_data(as_text=True)
    pdf = approver.get(f"/staff/transactions/{book.small_tx}?format=pdf")
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    postings = approver.get(f"/staff/transactions/{book.small_tx}?format=csv").get_data(as_text=True)
    assert len(postings.splitlines()) == 3 and "200.00" in postings


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reason=st.text(max_size=400), unit_id=st.one_of(st.text(max_size=12), st.integers().map(str)),
       utility=st.text(max_size=20), action=st.sampled_from(["reverse", "reassign", "", "x"]),
       tx=st.one_of(st.just(None), st.integers(min_value=0, max_value=2**70)))
def test_the_reversal_form_never_fails_with_a_500(app, book, login, reason, unit_id, utility, action, tx):
    client = _fuzz_client(login, book)
    token = csrf_from(client.get("/staff/corrections").get_data(as_text=True))
    target = book.small_tx if tx is None else tx
    response = client.post(f"/staff/transactions/{target}/reverse",
                           data={"csrf_token": token, "reason": reason, "unit_id": unit_id,
                                 "utility": utility, "action": action})
    assert response.status_code in (302, 400, 404), response.status_code
    for path in (f"/staff/corrections/{tx or 1}/approve", f"/staff/corrections/{tx or 1}/decline"):
        assert client.post(path, data={"csrf_token": token, "note": reason}).status_code in (302, 400, 404)


_CLIENTS: dict = {}


def _fuzz_client(login, book):
    """One signed-in client per test run (signing in costs a rate-limited request)."""
    key = book.staff_email
    if key not in _CLIENTS:
        _CLIENTS.clear()
        _CLIENTS[key] = login(key)
    return _CLIENTS[key]


def test_postings_table_and_corrections_link_from_the_payments_page(app, book, login):
    client = login(book.staff_email)
    html = client.get("/staff/payments").get_data(as_text=True)
    assert f"/staff/transactions/{book.small_tx}" in html


def test_a_reversal_that_lost_a_race_credits_nothing_twice(app, book, monkeypatch):
    """Two staff submit at once: both pass the checks, the ledger's key lets one reversal through."""
    from app.ledger import reverse
    with app.app_context():
        reverse(db.session, book.small_tx, memo="the other staff member's reversal")
        db.session.commit()
        monkeypatch.setattr("app.payments.corrections.why_not_reversible", lambda *_: None)
        with pytest.raises(NotReversible, match="already reversed"):
            request_reversal(db.session, book.small_tx, "Neighbour's unit", user_id=book.staff,
                             target_unit_id=book.other_unit_id)
        db.session.rollback()
        assert _pocket_balance(book.other_unit_id) == Decimal("0")
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 2
        db.session.remove()
