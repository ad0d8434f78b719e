"""EFT statements (P3): per-row report; only good, confirmed rows credit, and only once."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Account, LedgerTransaction
from app.models.payments import Payment
from app.payments import PaymentError
from app.payments.eft import StatementError, confirm_payments, import_statement, record_deposit


def statement(unit_number: str) -> str:
    return "\n".join([
        "Date,Amount,Reference,Bank_Ref",
        f"2026-11-02,250.00,{unit_number},FNB001",          # good, matched
        f"03/11/2026,\"1,000.00\",{unit_number.lower()},FNB002",  # good (comma amount, lower-case ref)
        "2026-11-04,abc,X,FNB003",                          # bad amount
        f"2026-11-05,-10.00,{unit_number},FNB004",          # negative
        f"2026-13-45,10.00,{unit_number},FNB005",           # bad date
        f"2026-11-06,99.00,{unit_number},FNB001",           # duplicate within the file
        "2026-11-07,40.00,NOBODY,FNB006",                   # good, unmatched
        f"2026-11-08,12.00,{unit_number},",                 # no bank reference
        "",
    ])


def pocket_balance(account_id: int) -> Decimal:
    return db.session.scalar(select(Account.balance).where(Account.id == account_id))


def test_statement_rows_are_reported_and_only_confirmed_good_rows_credit(app, kit):
    with app.app_context():
        report = import_statement(db.session, statement(kit.unit_number), user_id=None)
        assert [(r.line, r.status) for r in report.rows] == [
            (2, "imported"), (3, "imported"), (4, "error"), (5, "error"), (6, "error"),
            (7, "duplicate"), (8, "imported"), (9, "error")]
        assert "'abc' is not a number" in report.rows[2].message
        assert "not a positive number" in report.rows[3].message
        assert "is not YYYY-MM-DD" in report.rows[4].message
        assert "bank reference of 1 to 64" in report.rows[7].message
        assert report.rows[6].message == "unmatched"
        assert pocket_balance(kit.pocket_id) == 0  # nothing credits before a person confirms

        ids = [r.payment_id for r in report.rows if r.status == "imported"]
        outcomes = dict(confirm_payments(db.session, ids, user_id=None))
        assert list(outcomes.values()) == ["credited", "credited", "unmatched: assign it to a unit first"]
        assert pocket_balance(kit.pocket_id) == Decimal("1250.00")

        # Confirming again and importing the same file again change nothing.
        assert set(dict(confirm_payments(db.session, ids, user_id=None)).values()) >= {"already credited"}
        again = import_statement(db.session, statement(kit.unit_number), user_id=None)
        assert again.count("imported") == 0
        assert again.count("duplicate") == 4
        assert pocket_balance(kit.pocket_id) == Decimal("1250.00")
        keys = db.session.scalars(select(LedgerTransaction.idempotency_key)
                                  .order_by(LedgerTransaction.id)).all()
        assert keys == ["eft:FNB001", "eft:FNB002"]
        db.session.remove()


def test_statement_without_required_columns_is_refused_whole(app, kit):
    with app.app_context():
        with pytest.raises(StatementError, match="no bank_ref column"):
            import_statement(db.session, "Date,Amount,Reference\n2026-11-02,5.00,A\n", user_id=None)
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
        db.session.remove()


def test_recorded_deposit_waits_for_confirmation(app, kit):
    with app.app_context():
        payment = record_deposit(db.session, bank_ref="DEP-77", amount="80", reference=kit.unit_number,
                                 paid_on="2026-11-20", user_id=None)
        assert payment.status == "to_confirm"
        assert pocket_balance(kit.pocket_id) == 0
        confirm_payments(db.session, [payment.id], user_id=None)
        assert pocket_balance(kit.pocket_id) == Decimal("80.00")
        db.session.remove()


def test_units_mode_estate_sells_units_at_the_price_in_force(app, committed):
    from datetime import date as day

    from app.models.metering import TariffVersion
    from tests import factories
    with committed() as s:
        made = factories.make_estate_with_wallet(s, currency="LSL", denomination="units")
        s.add(TariffVersion(estate_id=made.estate.id, utility="electricity", effective_from=day(2026, 1, 1),
                            kind="flat", rates={"rate": "2.00"}))
        s.add(TariffVersion(estate_id=made.estate.id, utility="electricity", effective_from=day(2026, 11, 10),
                            kind="flat", rates={"rate": "2.50"}))
        number, pocket_id = made.unit.number, made.pocket("electricity").id
    with app.app_context():
        paid = record_deposit(db.session, bank_ref="U-1", amount="100", reference=number,
                              paid_on="2026-11-05", user_id=None)
        late = record_deposit(db.session, bank_ref="U-2", amount="100", reference=number,
                              paid_on="2026-11-12", user_id=None)
        confirm_payments(db.session, [paid.id, late.id], user_id=None)
        # 100 / 2.00 = 50 kWh before the rise, 100 / 2.50 = 40 kWh after it.
        assert pocket_balance(pocket_id) == Decimal("90.000")
        db.session.remove()


def test_unreadable_and_oversized_rows_are_refused_one_by_one(app, kit):
    # Each of these gave a 500 for the whole upload (issue 11 item 6); now each is its row's error.
    lines = [
        "Date,Amount,Reference,Bank_Ref",
        f"2026-11-02,10.00,{kit.unit_number},OK1",
        f"2026-11-02,10.00,{kit.unit_number}\rX,CR1",          # line break in an unquoted field
        f"2026-11-02,10.00,{'x' * 140_000},BIG1",                # over the csv module's field limit
        f"2026-11-02,1{'0' * 20}.00,{kit.unit_number},OVER1",              # beyond numeric(20, 6)
        f"2026-11-02,10.00,{kit.unit_number},NUL\x001",          # NUL in the bank reference
        f"2026-11-02,10.00,A\x00B,NUL2",                         # NUL in the reference
        f"2026-11-02,0.0000001,{kit.unit_number},TINY1",         # more places than the column keeps
        f"2026-11-02,{'9' * 2000},{kit.unit_number},LONG1",      # an absurdly long amount
        f"2026-11-03,20.00,{kit.unit_number},OK2",
    ]
    with app.app_context():
        report = import_statement(db.session, "\n".join(lines) + "\n", user_id=None)
        assert [(r.line, r.status) for r in report.rows] == [
            (2, "imported"), (3, "error"), (4, "error"), (5, "error"), (6, "error"), (7, "error"),
            (8, "error"), (9, "error"), (10, "imported")]
        messages = [r.message for r in report.rows]
        assert "a line break inside a field that is not in quotes" in messages[1]
        assert "longer than the CSV reader's limit" in messages[2]
        assert "not a bank amount" in messages[3]
        assert "bank reference contains a NUL character" in messages[4]
        assert "reference contains a NUL character" in messages[5]
        assert "not a bank amount" in messages[6]
        assert "amount is longer than 1000 characters" in messages[7]
        refs = db.session.scalars(select(Payment.provider_ref).order_by(Payment.id)).all()
        assert refs == ["OK1", "OK2"]
        db.session.remove()


def test_a_deposit_beyond_the_amount_column_is_refused(app, kit):
    with app.app_context():
        with pytest.raises(PaymentError, match="not a bank amount"):
            record_deposit(db.session, bank_ref="DEP-1", amount="123456789012345678", reference="x",
                           paid_on="2026-11-20", user_id=None)
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_one_ceiling_refuses_oversized_rows_and_credits(app, kit):
    from app.settings import put_setting
    from app.payments import PaymentError
    from app.payments.credit import credit_payment
    with app.app_context():
        report = import_statement(db.session, "\n".join([
            "Date,Amount,Reference,Bank_Ref",
            f"2026-11-02,99999999999.00,{kit.unit_number},BIG1",
            "2026-11-02,50000.01,NOBODY,BIG2",                   # unmatched: the global ceiling
            f"2026-11-02,50000.00,{kit.unit_number},OK1",
            f"2026-11-02,1e3,{kit.unit_number},EXP1",
        ]), user_id=None)
        assert [(r.line, r.status) for r in report.rows] == [
            (2, "error"), (3, "error"), (4, "imported"), (5, "error")]
        assert "above the largest payment accepted (M 50\u202f000.00)" in report.rows[0].message, [r.message for r in report.rows]
        assert "above the largest payment accepted (50000.00)" in report.rows[1].message
        assert "exponents" in report.rows[3].message
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
        # The ceiling is one setting per estate, and the crediting path checks it too.
        put_setting(db.session, "payment_max_amount", "1000", kit.estate_id)
        db.session.commit()
        payment = db.session.get(Payment, report.rows[2].payment_id)
        with pytest.raises(PaymentError, match="above the largest payment accepted"):
            credit_payment(db.session, payment)
        db.session.rollback()
        assert pocket_balance(kit.pocket_id) == 0
        with pytest.raises(PaymentError, match=r"M 1\u202f000.00"):
            record_deposit(db.session, bank_ref="DEP-9", amount="1000.50", reference=kit.unit_number,
                           paid_on="2026-11-20", user_id=None)
        db.session.remove()
