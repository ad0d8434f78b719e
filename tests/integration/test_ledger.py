"""The ledger's rules as a user of the money core sees them (C2, C3, C4, C8, C9).

These tests commit for real: the zero-sum trigger is deferred to COMMIT, and "nothing was
written" is only proven by counting committed rows.
"""
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import exc, func, select, text

from app.ledger import (
    Entry, IdempotencyConflict, InvalidEntry, Leg, PeriodClosed, PeriodLocked,
    UnbalancedTransaction, UnknownAccount, post, post_many, reverse,
)
from app.models import Account, LedgerTransaction, Posting
from tests.factories import make_estate_with_wallet, make_period, make_topup

JAN_15 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


@pytest.fixture
def kit(session):
    kit = make_estate_with_wallet(session)
    session.commit()
    return kit


def counts(session) -> tuple[int, int]:
    """(transactions, postings) committed or pending in this session."""
    return (session.scalar(select(func.count()).select_from(LedgerTransaction)),
            session.scalar(select(func.count()).select_from(Posting)))


def balance(session, account: Account) -> Decimal:
    return session.scalar(select(Account.balance).where(Account.id == account.id))


def topup_entry(kit, amount, key="payfast:1001", **options) -> Entry:
    pocket, clearing = kit.pocket(), kit.accounts.clearing
    return Entry(estate_id=kit.estate.id, kind=options.pop("kind", "topup"), idempotency_key=key,
                 legs=[Leg(pocket.id, Decimal(amount)), Leg(clearing.id, -Decimal(amount))],
                 **options)


# --- balanced posts ---------------------------------------------------------------------


def test_balanced_post_updates_cached_balances(session, kit):
    first = post(session, topup_entry(kit, "150.00"))
    post(session, topup_entry(kit, "49.50", key="payfast:1002"))
    session.commit()

    assert first.created is True
    assert balance(session, kit.pocket()) == Decimal("199.50")
    assert balance(session, kit.accounts.clearing) == Decimal("-199.50")
    assert balance(session, kit.pocket("water")) == 0
    assert counts(session) == (2, 4)
    txn = session.get(LedgerTransaction, first.transaction_id)
    assert txn.kind == "topup" and txn.seq == 1 and txn.hash == first.hash
    assert sorted(p.amount for p in txn.postings) == [Decimal("-150"), Decimal("150")]


def test_loaded_account_objects_see_the_new_balance(session, kit):
    pocket = kit.pocket()
    assert pocket.balance == 0
    make_topup(session, pocket, "20.00", clearing=kit.accounts.clearing)
    assert pocket.balance == Decimal("20.00")


def test_three_leg_transaction(session, kit):
    pocket, revenue = kit.pocket(), kit.accounts.revenue["electricity"]
    levy_pocket = kit.pocket("water")
    post(session, Entry(kit.estate.id, "topup", "split:1", [
        (pocket.id, "60"), (levy_pocket.id, "40"), (kit.accounts.clearing.id, "-100"),
    ]))
    post(session, Entry(kit.estate.id, "consumption", "reading:1", [
        (pocket.id, "-12.34"), (revenue.id, "12.34"),
    ]))
    session.commit()
    assert balance(session, pocket) == Decimal("47.66")
    assert balance(session, levy_pocket) == Decimal("40")
    assert balance(session, revenue) == Decimal("12.34")


# --- refused entries write nothing ------------------------------------------------------


def assert_refused(session, kit, entry, error, match):
    before = counts(session)
    with pytest.raises(error, match=match):
        post(session, entry)
    # Even a caller that commits after the error gets nothing into the ledger.
    session.commit()
    assert counts(session) == before
    assert balance(session, kit.pocket()) == 0
    assert balance(session, kit.accounts.clearing) == 0


def test_unbalanced_transaction_is_refused_with_nothing_written(session, kit):
    entry = Entry(kit.estate.id, "topup", "k1",
                  [(kit.pocket().id, "100.00"), (kit.accounts.clearing.id, "-99.99")])
    assert_refused(session, kit, entry, UnbalancedTransaction, r"ZAR \+0\.01")


def test_amounts_that_balance_only_before_rounding_are_refused(session, kit):
    # 0.015 + 0.015 rounds to 0.04 but 0.03 stays 0.03: rounding must never create money.
    entry = Entry(kit.estate.id, "topup", "k1", [
        (kit.pocket().id, "0.015"), (kit.pocket("water").id, "0.015"),
        (kit.accounts.clearing.id, "-0.03"),
    ])
    assert_refused(session, kit, entry, UnbalancedTransaction, "do not sum to zero")


@pytest.mark.parametrize(("legs", "match"), [
    ([("pocket", "10")], "at least two legs"),
    ([], "at least two legs"),
    ([("pocket", "10"), ("clearing", "-10"), ("water", "0")], "zero"),
    ([("pocket", "0.001"), ("clearing", "-0.001")], "zero"),  # rounds to nothing
    ([("pocket", 10.0), ("clearing", "-10")], "float"),
    ([("pocket", "ten"), ("clearing", "-10")], "not a plain decimal number"),
])
def test_malformed_entries_are_refused(session, kit, legs, match):
    ids = {"pocket": kit.pocket().id, "clearing": kit.accounts.clearing.id,
           "water": kit.pocket("water").id}
    entry = Entry(kit.estate.id, "topup", "k1", [(ids[name], amount) for name, amount in legs])
    assert_refused(session, kit, entry, InvalidEntry, match)


def test_entry_without_idempotency_key_is_refused(session, kit):
    assert_refused(session, kit, topup_entry(kit, "5", key=""), InvalidEntry, "idempotency key")


def test_naive_occurred_at_is_refused(session, kit):
    entry = topup_entry(kit, "5", occurred_at=datetime(2026, 1, 1, 12, 0))
    assert_refused(session, kit, entry, InvalidEntry, "timezone-aware")


def test_unknown_account_is_refused(session, kit):
    entry = Entry(kit.estate.id, "topup", "k1", [(kit.pocket().id, "5"), (999_999, "-5")])
    assert_refused(session, kit, entry, UnknownAccount, "999999 does not exist")


def test_account_of_another_estate_is_refused(session, kit):
    other = make_estate_with_wallet(session)
    session.commit()
    entry = Entry(kit.estate.id, "topup", "k1",
                  [(kit.pocket().id, "5"), (other.accounts.clearing.id, "-5")])
    assert_refused(session, kit, entry, UnknownAccount, "another estate")
    assert balance(session, other.accounts.clearing) == 0


def test_unknown_estate_is_refused(session, kit):
    entry = Entry(424242, "topup", "k1", [(kit.pocket().id, "5"), (kit.accounts.clearing.id, "-5")])
    assert_refused(session, kit, entry, UnknownAccount, "424242")


# --- idempotency ------------------------------------------------------------------------


def test_replayed_key_returns_the_original_and_writes_nothing(session, kit):
    first = post(session, topup_entry(kit, "100"))
    session.commit()

    again = post(session, topup_entry(kit, "100.00"))  # same amount, written differently
    session.commit()

    assert again.transaction_id == first.transaction_id
    assert again.hash == first.hash
    assert (first.created, again.created) == (True, False)
    assert counts(session) == (1, 2)
    assert balance(session, kit.pocket()) == Decimal("100")


def test_a_key_said_new_that_is_not_is_refused_by_the_database(session, kit):
    post(session, topup_entry(kit, "100"))
    session.commit()

    with pytest.raises(exc.IntegrityError):  # the replay lookup is skipped; the unique index is not
        post(session, topup_entry(kit, "100", new_key=True))
    session.rollback()
    assert counts(session) == (1, 2)
    assert balance(session, kit.pocket()) == Decimal("100")


def test_same_key_with_different_legs_is_a_conflict(session, kit):
    post(session, topup_entry(kit, "100"))
    session.commit()

    with pytest.raises(IdempotencyConflict, match="payfast:1001"):
        post(session, topup_entry(kit, "120"))
    session.rollback()
    assert counts(session) == (1, 2)
    assert balance(session, kit.pocket()) == Decimal("100")


def test_duplicate_keys_inside_one_batch_post_once(session, kit):
    results = post_many(session, [
        topup_entry(kit, "10", key="mpesa:A"),
        topup_entry(kit, "20", key="mpesa:B"),
        topup_entry(kit, "10", key="mpesa:A"),
    ])
    session.commit()

    assert [r.created for r in results] == [True, True, False]
    assert results[2].transaction_id == results[0].transaction_id
    assert results[1].transaction_id != results[0].transaction_id
    assert counts(session) == (2, 4)
    assert balance(session, kit.pocket()) == Decimal("30")


def test_batch_replaying_an_earlier_key_posts_only_the_new_ones(session, kit):
    earlier = post(session, topup_entry(kit, "10", key="mpesa:A"))
    session.commit()
    results = post_many(session, [topup_entry(kit, "10", key="mpesa:A"),
                                  topup_entry(kit, "5", key="mpesa:C")])
    session.commit()
    assert [(r.transaction_id == earlier.transaction_id, r.created) for r in results] == [
        (True, False), (False, True)]
    assert balance(session, kit.pocket()) == Decimal("15")


def test_duplicate_key_with_different_legs_inside_one_batch_writes_nothing(session, kit):
    before = counts(session)
    with pytest.raises(IdempotencyConflict, match="mpesa:A"):
        post_many(session, [topup_entry(kit, "10", key="mpesa:A"),
                            topup_entry(kit, "11", key="mpesa:A")])
    session.commit()
    assert counts(session) == before
    assert balance(session, kit.pocket()) == 0


def test_conflict_in_one_estate_of_a_batch_writes_nothing_in_the_other(session, kit):
    other = make_estate_with_wallet(session)
    post(session, topup_entry(other, "7", key="mpesa:X"))
    session.commit()
    before = counts(session)
    with pytest.raises(IdempotencyConflict, match="mpesa:X"):
        post_many(session, [topup_entry(kit, "10", key="mpesa:Y"),
                            topup_entry(other, "8", key="mpesa:X")])
    session.commit()
    assert counts(session) == before
    assert balance(session, kit.pocket()) == 0


# --- reversals --------------------------------------------------------------------------


def test_reverse_restores_balances_and_is_idempotent(session, kit):
    original = make_topup(session, kit.pocket(), "75.25", clearing=kit.accounts.clearing)
    make_topup(session, kit.pocket(), "10", clearing=kit.accounts.clearing)
    session.commit()

    reversal = reverse(session, original.transaction_id, memo="paid twice")
    session.commit()
    assert reversal.created
    assert balance(session, kit.pocket()) == Decimal("10")
    assert balance(session, kit.accounts.clearing) == Decimal("-10")
    row = session.get(LedgerTransaction, reversal.transaction_id)
    assert (row.kind, row.reverses_id, row.memo) == ("reversal", original.transaction_id, "paid twice")

    again = reverse(session, original.transaction_id)
    session.commit()
    assert (again.transaction_id, again.created) == (reversal.transaction_id, False)
    assert counts(session) == (3, 6)
    assert balance(session, kit.pocket()) == Decimal("10")


def test_a_reversal_cannot_be_reversed(session, kit):
    original = make_topup(session, kit.pocket(), "5", clearing=kit.accounts.clearing)
    reversal = reverse(session, original.transaction_id)
    session.commit()
    with pytest.raises(InvalidEntry, match="itself a reversal"):
        reverse(session, reversal.transaction_id)
    with pytest.raises(InvalidEntry, match="does not exist"):
        reverse(session, 987654)


# --- units-mode estates: several commodities in one transaction --------------------------


@pytest.fixture
def units_kit(session):
    kit = make_estate_with_wallet(session, currency="LSL", denomination="units")
    session.commit()
    return kit


def test_units_mode_purchase_balances_per_commodity(session, units_kit):
    pocket = units_kit.pocket("electricity")
    assert pocket.commodity == "KWH"
    clearing, revenue = units_kit.accounts.clearing, units_kit.accounts.revenue["electricity"]
    issued = units_kit.accounts.units_issued["electricity"]
    # M100 buys 40.3456 kWh at the tariff of the day; kWh are kept to the watt-hour.
    post(session, Entry(units_kit.estate.id, "topup", "payfast:u1", [
        (clearing.id, "-100"), (revenue.id, "100"),
        (pocket.id, "40.3456"), (issued.id, "-40.3456"),
    ]))
    session.commit()
    assert balance(session, pocket) == Decimal("40.346")
    assert balance(session, issued) == Decimal("-40.346")
    assert balance(session, revenue) == Decimal("100")
    commodities = session.scalars(select(Posting.commodity).order_by(Posting.id)).all()
    assert commodities == ["LSL", "LSL", "KWH", "KWH"]


def test_units_mode_with_one_commodity_unbalanced_is_refused(session, units_kit):
    accounts = units_kit.accounts
    entry = Entry(units_kit.estate.id, "topup", "payfast:u2", [
        (accounts.clearing.id, "-100"), (accounts.revenue["electricity"].id, "100"),
        (units_kit.pocket("electricity").id, "40"), (accounts.units_issued["electricity"].id, "-39"),
    ])
    with pytest.raises(UnbalancedTransaction, match=r"KWH \+1"):
        post(session, entry)
    session.commit()
    assert counts(session) == (0, 0)


def test_money_and_units_never_offset_each_other(session, units_kit):
    # +40 kWh against -40 LSL sums to zero numerically but is two unbalanced commodities.
    entry = Entry(units_kit.estate.id, "topup", "payfast:u3", [
        (units_kit.pocket("electricity").id, "40"), (units_kit.accounts.clearing.id, "-40"),
    ])
    with pytest.raises(UnbalancedTransaction, match="KWH.*LSL"):
        post(session, entry)


# --- rounding to minor units ------------------------------------------------------------


def test_zar_amounts_are_rounded_half_to_even(session, kit):
    make_topup(session, kit.pocket(), "1.005", clearing=kit.accounts.clearing, key="r1")
    make_topup(session, kit.pocket("water"), "1.015", clearing=kit.accounts.clearing, key="r2")
    session.commit()
    assert balance(session, kit.pocket()) == Decimal("1.00")
    assert balance(session, kit.pocket("water")) == Decimal("1.02")
    amounts = set(session.scalars(select(Posting.amount)))
    assert amounts == {Decimal("1.00"), Decimal("-1.00"), Decimal("1.02"), Decimal("-1.02")}


def test_xof_amounts_have_no_minor_units(session):
    kit = make_estate_with_wallet(session, currency="XOF")
    session.commit()
    make_topup(session, kit.pocket(), "1500.5", clearing=kit.accounts.clearing, key="x1")
    make_topup(session, kit.pocket("water"), "1501.5", clearing=kit.accounts.clearing, key="x2")
    session.commit()
    assert balance(session, kit.pocket()) == Decimal("1500")
    assert balance(session, kit.pocket("water")) == Decimal("1502")
    assert balance(session, kit.accounts.clearing) == Decimal("-3002")


# --- append-only, enforced by the database ----------------------------------------------


@pytest.mark.parametrize("statement", [
    "UPDATE postings SET amount = amount * 2",
    "DELETE FROM postings",
    "UPDATE ledger_transactions SET memo = 'edited'",
    "DELETE FROM ledger_transactions",
])
def test_ledger_rows_cannot_be_updated_or_deleted(session, kit, statement):
    make_topup(session, kit.pocket(), "50", clearing=kit.accounts.clearing)
    session.commit()
    with pytest.raises(exc.DBAPIError, match="append-only"):
        session.execute(text(statement))
    session.rollback()
    assert counts(session) == (1, 2)
    assert set(session.scalars(select(Posting.amount))) == {Decimal("50"), Decimal("-50")}


def test_unbalanced_raw_insert_fails_at_commit(session, kit):
    session.execute(text(
        "INSERT INTO ledger_transactions (estate_id, seq, kind, idempotency_key, occurred_at, "
        "recorded_at, period, memo, prev_hash, hash) VALUES (:estate, 1, 'topup', 'raw:1', now(), "
        "now(), '2026-01', '', :zero, :zero)"), {"estate": kit.estate.id, "zero": "0" * 64})
    session.execute(text(
        "INSERT INTO postings (transaction_id, account_id, amount, commodity) "
        "SELECT id, :account, 5, 'ZAR' FROM ledger_transactions WHERE idempotency_key = 'raw:1'"),
        {"account": kit.pocket().id})
    session.flush()  # the deferred trigger lets the statement through...
    with pytest.raises(exc.IntegrityError, match="does not sum to zero"):
        session.commit()  # ...and refuses the transaction as a whole
    session.rollback()
    assert counts(session) == (0, 0)


# --- financial periods (C8) -------------------------------------------------------------


def test_post_into_a_locked_period_is_refused_and_writes_nothing(session, kit):
    make_topup(session, kit.pocket(), "10", clearing=kit.accounts.clearing)  # today: open
    make_period(session, kit.estate, "2026-01", "locked")
    session.commit()
    before = counts(session)

    with pytest.raises(PeriodLocked, match="period 2026-01 is locked"):
        post(session, topup_entry(kit, "25", occurred_at=JAN_15))
    session.commit()
    assert counts(session) == before
    assert balance(session, kit.pocket()) == Decimal("10")


def test_an_estates_first_post_into_a_locked_period_leaves_no_chain_head(session, kit):
    from app.models import LedgerChain

    make_period(session, kit.estate, "2026-01", "locked")
    session.commit()

    with pytest.raises(PeriodLocked):
        post(session, topup_entry(kit, "25", occurred_at=JAN_15))
    assert session.get(LedgerChain, kit.estate.id) is None  # nothing left in the unit of work


def test_period_follows_the_estate_timezone(session, kit):
    # 23:30 UTC on 31 January is already 1 February in Johannesburg.
    make_period(session, kit.estate, "2026-02", "locked")
    session.commit()
    late_january_utc = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
    with pytest.raises(PeriodLocked, match="2026-02"):
        post(session, topup_entry(kit, "25", occurred_at=late_january_utc))
    session.rollback()
    posted = post(session, topup_entry(kit, "25", occurred_at=datetime(2026, 1, 31, 21, 30, tzinfo=UTC)))
    session.commit()
    assert session.get(LedgerTransaction, posted.transaction_id).period == "2026-01"


def test_database_refuses_a_raw_insert_into_a_locked_period(session, kit):
    make_period(session, kit.estate, "2026-01", "locked")
    session.commit()
    with pytest.raises(exc.IntegrityError, match="locked"):
        session.execute(text(
            "INSERT INTO ledger_transactions (estate_id, seq, kind, idempotency_key, occurred_at, "
            "recorded_at, period, memo, prev_hash, hash) VALUES (:estate, 1, 'topup', 'raw:2', "
            "now(), now(), '2026-01', '', :zero, :zero)"), {"estate": kit.estate.id, "zero": "0" * 64})
    session.rollback()
    assert counts(session) == (0, 0)


@pytest.mark.parametrize("statement", [
    "UPDATE financial_periods SET status = 'open'",
    "UPDATE financial_periods SET status = 'closed'",
    "DELETE FROM financial_periods",
])
def test_a_locked_period_cannot_be_reopened(session, kit, statement):
    make_period(session, kit.estate, "2026-01", "locked")
    session.commit()
    with pytest.raises(exc.DBAPIError, match="cannot be reopened"):
        session.execute(text(statement))
    session.rollback()
    assert session.scalar(text("SELECT status FROM financial_periods")) == "locked"


def test_an_open_period_can_be_closed_then_locked(session, kit):
    period = make_period(session, kit.estate, "2026-01", "open")
    session.commit()
    period.status = "closed"
    session.commit()
    period.status = "locked"
    session.commit()
    assert session.scalar(text("SELECT status FROM financial_periods")) == "locked"


def test_closed_period_takes_adjustments_but_not_topups(session, kit):
    make_period(session, kit.estate, "2026-01", "closed")
    session.commit()
    with pytest.raises(PeriodClosed, match="2026-01 is closed"):
        post(session, topup_entry(kit, "25", occurred_at=JAN_15))
    session.rollback()
    assert counts(session) == (0, 0)

    adjustment = post(session, topup_entry(kit, "25", key="adj:1", kind="adjustment",
                                           occurred_at=JAN_15))
    session.commit()
    assert adjustment.created
    reversal = reverse(session, adjustment.transaction_id, occurred_at=JAN_15)
    session.commit()
    assert reversal.created
    assert balance(session, kit.pocket()) == 0
